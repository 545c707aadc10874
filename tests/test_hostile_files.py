"""Hostile files in a patient folder (issue 18): deflate bombs, zero-filled files, bounded
work before pydicom parses anything."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from test_dicom_synthetic import square, write_struct

from rtplan_assist.dicom import _common, load_case
from rtplan_assist.dicom._index import index_files

DEFLATED = "1.2.840.10008.1.2.1.99"


def write_deflate_bomb(path: Path, inflated_bytes: int) -> Path:
    """A Part 10 file, Deflated Explicit VR Little Endian, whose data set (one plausible
    first element, then zeros) inflates to ``inflated_bytes``; written in steps."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.2"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = DEFLATED
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with open(path, "wb") as fh:
        fh.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(fh, meta, enforce_standard=True)
        fh.write(deflater.compress(b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100"))
        block = bytes(1 << 24)
        left = inflated_bytes
        while left > 0:
            fh.write(deflater.compress(block[: min(left, len(block))]))
            left -= len(block)
        fh.write(deflater.flush())
    return path


def test_deflate_bomb_is_refused_before_inflating(tmp_path, monkeypatch):
    # On main pydicom inflated the whole data set in memory (a 3 MB file: 6.3 GB).
    monkeypatch.setattr(_common, "MAX_INFLATED_BYTES", 32 << 20)
    bomb = write_deflate_bomb(tmp_path / "RD.dcm", 64 << 20)
    assert bomb.stat().st_size < 200_000
    index = index_files([bomb], tmp_path)
    assert [u.path for u in index.unreadable] == [bomb]
    assert "inflates to more than" in index.unreadable[0].reason


def test_zero_filled_files_cost_no_parsing(tmp_path):
    # On main pydicom parsed zeros as empty elements: ~0.8 s per MB per index pass.
    write_struct(tmp_path / "rs.dcm", [(1, "PTV", "PTV", [("CLOSED_PLANAR", square(0.0))])])
    (tmp_path / "zeros.bin").write_bytes(bytes(6 << 20))
    (tmp_path / "zeros-dicm.dcm").write_bytes(b"\0" * 128 + b"DICM" + bytes(6 << 20))
    start = time.perf_counter()
    case = load_case(tmp_path)
    assert time.perf_counter() - start < 1.5
    assert [s.name for s in case.structures] == ["PTV"]
    index = index_files(sorted(tmp_path.iterdir()), tmp_path, light=True)
    assert [p.name for p in index.not_dicom] == ["zeros.bin"]
    assert [u.path.name for u in index.unreadable] == ["zeros-dicm.dcm"]


@pytest.mark.parametrize("head, plausible", [
    (b"\x08\x00\x05\x00", True),    # (0008,0005) little endian
    (b"\x00\x08\x00\x05", True),    # big endian
    (b"\x02\x00\x00\x00", True),    # File Meta group without the prefix
    (b"\x00\x00\x00\x00", False),   # zeros
    (b"\xff\xd8\xff\xe0", False),  # a JPEG
    (b"\xfe\xff\x00\xe0", False),   # an item tag
])
def test_first_tag_plausibility(head, plausible):
    assert _common._plausible_first_tag(head) is plausible
