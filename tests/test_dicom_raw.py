"""The loader's pydicom-free fast path (rtplan_assist/dicom/_raw.py) reads exactly what
pydicom reads.

The reference is pydicom 3's own parse of the same files: the loader's pydicom path
(``fast=False``, the code the fast path short-cuts) and pydicom's ``Dataset.get`` /
``pixel_array``, never the fast path's own output. Files cover explicit and implicit VR little
endian, sequences and items of defined and undefined length, odd value lengths (padded DS) and
the real exports of the shared data folder; files outside the plain subset must be handed to
pydicom (NotClean), which gives the errors and warnings of the damaged-file suites.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from test_dicom_synthetic import square, write_ct, write_dose, write_plan, write_struct

from rtplan_assist.demo import demo_case_folder
from rtplan_assist.dicom import _raw
from rtplan_assist.dicom._index import index_files, input_paths
from rtplan_assist.dicom.case import _load_case, load_case
from rtplan_assist.errors import DicomInputError


def _same(a, b, where="case") -> None:
    """Recursive equality of the case model: arrays bit for bit (dtype and shape too)."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}[{k!r}]")
    else:
        assert type(a) is type(b) and a == b, (where, a, b)


def _fast_and_pydicom(path):
    """(fast path, pydicom path) of one input; the fast path must not fall back."""
    root, paths = input_paths(path)
    fast = _load_case(root, paths, None, False, fast=True)  # raises NotClean if it would
    slow = _load_case(root, paths, None, False, fast=False)
    return fast, slow


def _load_case_and_pydicom_path(inp) -> list:
    """What load_case (fast path first) and the pydicom path give: a case or (error type,
    message)."""
    root, paths = input_paths(inp)
    outcomes = []
    for run in (lambda: load_case(inp), lambda: _load_case(root, paths, None, False, fast=False)):
        try:
            outcomes.append(run())
        except Exception as exc:  # noqa: BLE001 - compared by the caller
            outcomes.append((type(exc), str(exc)))
    return outcomes


def _values_as_pydicom(raw: _raw.RawDataset, ref: Dataset, where: str) -> int:
    """Every element of KEYWORDS present in ``ref`` reads the same from ``raw`` (recursing into
    sequences); returns how many values were compared."""
    n = 0
    for keyword, (_, vr) in _raw.KEYWORDS.items():
        assert (keyword in raw) == (keyword in ref), (where, keyword)
        if keyword not in ref:
            continue
        ours, theirs = raw.get(keyword), ref.get(keyword)
        if vr == "SQ":
            assert len(ours) == len(theirs), (where, keyword)
            for i, (a, b) in enumerate(zip(ours, theirs)):
                n += _values_as_pydicom(a, b, f"{where}.{keyword}[{i}]")
            continue
        if isinstance(theirs, pydicom.multival.MultiValue):
            assert isinstance(ours, _raw.MultiValue), (where, keyword)
            assert [type(v)(x) for v, x in zip(theirs, ours)] == list(theirs), (where, keyword)
            assert all(float(x) == float(v) for x, v in zip(ours, theirs))
        elif theirs is None:
            assert ours is None, (where, keyword)
        elif isinstance(theirs, (int, float)):  # IS / DS / US: the number pydicom gives
            assert type(ours) in (int, float) and ours == theirs, (where, keyword)
            assert float(ours).hex() == float(theirs).hex(), (where, keyword)
        else:
            assert ours == str(theirs) and str(ours).strip() == str(theirs).strip(), (
                where, keyword)
        n += 1
    return n


# ----------------------------------------------------------------- synthetic encodings
def _write_case(folder: Path) -> None:
    """A small case: two ROIs (odd point counts, a closing vertex, a point ROI, an empty ROI),
    a plan, a dose and two CT slices."""
    pts5 = np.array([(0.0, 0.0, 1.5), (10.25, 0.0, 1.5), (12.0, 7.5, 1.5), (5.0, 11.0, 1.5),
                     (-2.125, 6.0, 1.5)])
    write_struct(folder / "RS.dcm", [
        (1, "PTV", "PTV", [("CLOSED_PLANAR", square(1.5)), ("CLOSED_PLANAR", square(4.5))]),
        (2, "Cord", "ORGAN", [("CLOSED_PLANAR", pts5), ("CLOSED_PLANAR", square(3.0, close=True)),
                              ("POINT", np.array([[1.0, 2.0, 3.0]]))]),
        (3, "Empty", "ORGAN", None),
    ], sop_uid="1.2.9.7")
    write_plan(folder / "RP.dcm", structure_set_uid="1.2.9.7", sop_uid="1.2.9.8")
    k, i, j = np.mgrid[0:3, 0:4, 0:5]
    write_dose(folder / "RD.dcm", (1000 * k + 10 * i + j).astype(np.uint32),
               plan_uid="1.2.9.8", ipp=(-10.0, -20.0, 0.0), offsets=[0.0, 3.0, 6.0])
    write_ct(folder, [0.0, 3.0, 6.0])


def _reencode(folder: Path, *, implicit: bool, undefined: bool) -> None:
    """Rewrite every file of ``folder`` in (implicit or explicit) VR little endian, with every
    sequence and item of undefined length when ``undefined``."""
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)

        def mark(dataset):
            for elem in dataset:
                if elem.VR == "SQ":
                    elem.is_undefined_length = undefined
                    for item in elem.value:
                        item.is_undefined_length_sequence_item = undefined
                        mark(item)

        mark(ds)
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian)
        ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("undefined", [False, True], ids=["defined", "undefined"])
def test_synthetic_case_reads_as_pydicom_reads_it(tmp_path, implicit, undefined):
    _write_case(tmp_path)
    _reencode(tmp_path, implicit=implicit, undefined=undefined)
    raw = (tmp_path / "RS.dcm").read_bytes()
    assert (b"\xfe\xff\xdd\xe0" in raw) == undefined  # sequence delimiters written or not
    fast, slow = _fast_and_pydicom(tmp_path)
    _same(fast, slow)
    assert {s.name for s in fast.structures} == {"PTV", "Cord", "Empty"}
    assert fast.doses and fast.plans and fast.ct is not None
    index = index_files(sorted(tmp_path.iterdir()), tmp_path, fast=True)
    assert all(isinstance(f.header, _raw.RawDataset) for f in index.files)
    for f in index.files:
        ref = pydicom.dcmread(f.path, stop_before_pixels=True)
        assert _values_as_pydicom(f.header, ref, f.path.name) > 5


def test_demo_case_reads_as_pydicom_reads_it():
    folder = demo_case_folder()
    fast, slow = _fast_and_pydicom(folder)
    _same(fast, slow)
    pair = [folder / "RS.dcm", folder / "RD.L1.dcm"]
    fast, slow = _fast_and_pydicom(pair)
    _same(fast, slow)
    for name in ("RP.L1.dcm", "RD.L1.dcm", "CT.1.dcm"):  # (RS: the synthetic cases; 4 s)
        raw = _raw.read_header(folder / name)
        assert _values_as_pydicom(raw, pydicom.dcmread(folder / name), name) > 5


@pytest.mark.parametrize("inputs", [
    ["dicompyler-core-example"],
    ["nelms-dvh/structures/Sphere_10_X05Z05.dcm", "nelms-dvh/dose/Linear_AntPost_2mm_Aligned.dcm"],
    ["nelms-dvh/structures/RtCone_20_0.dcm", "nelms-dvh/dose/Linear_SupInf_3mm_Aligned.dcm"],
])
def test_real_exports_read_as_pydicom_reads_them(shared_data, inputs):
    paths = [shared_data / p for p in inputs]
    fast, slow = _fast_and_pydicom(paths if len(paths) > 1 else paths[0])
    _same(fast, slow)
    assert fast.structures and fast.doses


def test_pixels_are_pydicoms_pixel_array(tmp_path):
    folder = demo_case_folder()
    for path in (folder / "RD.L2.dcm", folder / "CT.7.dcm"):  # uint16 dose, int16 CT
        raw = _raw.read_header(path)
        shape = (raw.get("Rows"), raw.get("Columns"))
        ours = _raw.pixel_frames(raw, path, *shape, raw.get("NumberOfFrames") or 1, 1,
                                 raw.get("BitsAllocated"))
        ref = pydicom.dcmread(path).pixel_array
        ref = ref[np.newaxis] if ref.ndim == 2 else ref
        assert ours.dtype == ref.dtype and ours.shape == ref.shape
        np.testing.assert_array_equal(ours, ref)


# ----------------------------------------------------------------- left to pydicom
def _one_struct(tmp_path) -> Path:
    return write_struct(tmp_path / "RS.dcm", [(1, "PTV", "PTV", [("CLOSED_PLANAR", square(1.0))])])


def test_big_endian_and_deflated_go_to_pydicom(tmp_path):
    path = _one_struct(tmp_path)
    for syntax in (ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian):
        ds = Dataset()
        read = pydicom.dcmread(path)
        for elem in read:  # converted values: a new data set without an original encoding
            ds.add(elem)
        ds.file_meta = read.file_meta
        ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(path, enforce_file_format=True)
        with pytest.raises(_raw.NotClean):
            _raw.read_header(path)
        names = [s.name for s in load_case([path]).structures]
        assert names == ["PTV"]


def test_no_file_meta_goes_to_pydicom(tmp_path):
    path = tmp_path / "RS.dcm"
    ds = pydicom.dcmread(_one_struct(tmp_path))
    ds.file_meta = FileMetaDataset()
    ds.save_as(path, implicit_vr=True, little_endian=True)  # no preamble, no File Meta
    with pytest.raises(_raw.NotClean):
        _raw.read_header(path)


@pytest.mark.parametrize("charset, names", [
    ("ISO_IR 100", ("Müller^Zoë", "Rückenmark", "Œil")),  # Œ is not in ISO 8859-1: written
    ("ISO_IR 192", ("Müller^Zoë", "Rückenmark", "Œsophage")),
    (None, ("Müller^Zoë", "Rückenmark", "Hüfte")),  # no character set: pydicom's ISO 8859-1
])
def test_non_ascii_text_reads_as_pydicom_reads_it(tmp_path, charset, names):
    patient, roi, second = names
    if charset == "ISO_IR 100":
        second = "Genou"
    path = write_struct(tmp_path / "RS.dcm", [
        (1, "A", "ORGAN", [("CLOSED_PLANAR", square(1.0))]),
        (2, "B", "ORGAN", [("CLOSED_PLANAR", square(2.0))])])
    ds = pydicom.dcmread(path)
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.StructureSetROISequence[0].ROIName = roi  # encoded in the character set on writing
    ds.StructureSetROISequence[1].ROIName = second
    ds.PatientName = patient
    ds.StructureSetLabel = roi
    ds.save_as(path, enforce_file_format=True)
    assert any(b > 0x7F for b in path.read_bytes())
    fast, slow = _fast_and_pydicom([path])  # no fallback
    _same(fast, slow)
    assert [s.name for s in fast.structures] == [roi, second]
    assert fast.patient_name == patient
    raw = _raw.read_header(path)
    assert _values_as_pydicom(raw, pydicom.dcmread(path), "RS") > 5


@pytest.mark.parametrize("change", ["bad utf-8", "non-ascii CS", "charset", "item charset",
                                    "VR", "bad DS", "nan DS", "bad IS"])
def test_values_pydicom_must_judge_give_the_pydicom_result(tmp_path, change):
    path = _one_struct(tmp_path)
    ds = pydicom.dcmread(path)
    contour = ds.ROIContourSequence[0].ContourSequence[0]
    with pydicom.config.disable_value_validation():
        if change == "bad utf-8":  # pydicom warns and decodes with replacement characters
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.StructureSetROISequence[0][0x30060026] = pydicom.dataelem.RawDataElement(
                pydicom.tag.Tag(0x30060026), "LO", 4, b"R\xfcck", 0, False, True)
        elif change == "non-ascii CS":
            ds.SpecificCharacterSet = "ISO_IR 100"
            ds.RTROIObservationsSequence[0].RTROIInterpretedType = "ORGÄN"
        elif change == "charset":
            ds.SpecificCharacterSet = "ISO_IR 13"
        elif change == "item charset":
            ds.StructureSetROISequence[0].SpecificCharacterSet = "ISO_IR 13"
        elif change == "VR":
            ds.StructureSetROISequence[0][0x30060022].VR = "US"
        elif change == "bad DS":
            text = b"1\\2\\abc\\" + b"\\".join([b"0"] * 9)
            contour[0x30060050] = pydicom.dataelem.RawDataElement(
                pydicom.tag.Tag(0x30060050), "DS", len(text), text, 0, False, True)
        elif change == "nan DS":
            contour.ContourData = ["nan"] + ["0"] * 11
        else:
            contour.NumberOfContourPoints = "4.5"
        ds.save_as(path, enforce_file_format=True)
    root, paths = input_paths([path])
    if change in ("bad utf-8", "non-ascii CS", "charset", "item charset", "VR",
                  "bad IS"):  # values the fast path does not convert
        try:
            _raw.read_header(path)
        except _raw.NotClean:
            pass
        else:
            with pytest.raises(_raw.NotClean):
                _load_case(root, paths, None, False, fast=True)
    # load_case gives what the pydicom path gives, an error included (ContourData is parsed
    # from its bytes on both paths: bad numbers fail the same way)
    ours, theirs = _load_case_and_pydicom_path([path])
    _same(ours, theirs)
    if change in ("bad DS", "nan DS", "bad IS"):
        assert isinstance(ours, tuple), "a damaged contour is an error"


def test_truncated_file_goes_to_pydicom(tmp_path):
    path = _one_struct(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    with pytest.raises(_raw.NotClean):
        _raw.read_header(path)


def test_keywords_are_pydicoms_dictionary():
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    for keyword, (tag, vr) in _raw.KEYWORDS.items():
        assert tag_for_keyword(keyword) == tag and dictionary_VR(tag) == vr, keyword


def test_importing_the_loader_does_not_import_pydicom():
    code = ("import sys, rtplan_assist.dicom, rtplan_assist.dicom.case; "
            "print(sorted(m for m in sys.modules if m.startswith(('pydicom', 'PIL'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_sequences_nested_thousands_deep_are_a_typed_error_not_a_crash(tmp_path):
    # a private sequence nested 3,000 deep (undefined lengths) after the RTSTRUCT's elements
    path = _one_struct(tmp_path)
    depth = 3000
    open_level = (b"\x01\x40\x01\x10SQ\x00\x00\xff\xff\xff\xff"  # (4001,1001) SQ, undefined
                  b"\xfe\xff\x00\xe0\xff\xff\xff\xff")  # item, undefined
    close_level = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    path.write_bytes(path.read_bytes() + open_level * depth + close_level * depth)
    with pytest.raises(_raw.NotClean):
        _raw.read_header(path)
    with pytest.raises(DicomInputError, match="RTSTRUCT"):
        load_case([path])


def test_damaged_bytes_give_the_pydicom_result(tmp_path, fuzz_scale):
    """Differential fuzzing: a byte of one file of a small case flipped, replaced, zeroed,
    repeated or the file cut short; load_case (fast path first) must give exactly what the
    pydicom path gives, the case or the error. Fixed seed in CI (200 mutations over the four
    encodings); ``--fuzz-long`` runs more with fresh draws."""
    import random
    import shutil
    import warnings

    rng = random.Random(None if fuzz_scale > 1 else 15)
    variants = []
    for implicit in (False, True):
        for undefined in (False, True):
            folder = tmp_path / f"v{int(implicit)}{int(undefined)}"
            folder.mkdir()
            _write_case(folder)
            _reencode(folder, implicit=implicit, undefined=undefined)
            variants.append(folder)
    for i in range(200 * fuzz_scale):
        work = tmp_path / f"w{i}"
        shutil.copytree(rng.choice(variants), work)
        target = rng.choice([work / "RS.dcm", work / "RD.dcm", work / "RP.dcm",
                             *sorted(work.glob("ct_*.dcm"))])
        data = bytearray(target.read_bytes())
        pos = rng.randrange(132, len(data))
        op = rng.choice(["flip", "byte", "cut", "repeat", "zero"])
        if op == "flip":
            data[pos] ^= 1 << rng.randrange(8)
        elif op == "byte":
            data[pos] = rng.randrange(256)
        elif op == "cut":
            del data[pos:]
        elif op == "repeat":
            data[pos:pos] = data[pos:pos + rng.randrange(1, 16)]
        else:
            data[pos:pos + 4] = bytes(4)
        target.write_bytes(bytes(data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours, theirs = _load_case_and_pydicom_path(work)
        _same(ours, theirs, f"{target.name} {op} at {pos}")
        shutil.rmtree(work)


def test_light_index_is_the_pydicom_light_index(tmp_path, shared_data, monkeypatch):
    """Patient pickers and folder discovery (index_files(light=True): list_patients,
    find_patient_folders, batch) read plain files without pydicom: the same index as
    pydicom's LIGHT_TAGS read, here forced by making every file look not plain."""
    from rtplan_assist.dicom import find_patient_folders, list_patients

    _write_case(tmp_path / "p1")
    _write_case(tmp_path / "p2")
    (tmp_path / "p2" / "notes.txt").write_text("not DICOM")
    (tmp_path / "p2" / "RD.dcm").write_bytes((tmp_path / "p2" / "RD.dcm").read_bytes()[:400])
    roots = [tmp_path, demo_case_folder(), shared_data / "dicompyler-core-example",
             shared_data / "rt-utils-mock"]
    ours = [(index_files(input_paths(r)[1], r, light=True), list_patients(r),
             find_patient_folders(r)) for r in roots]

    def not_plain(path):
        raise _raw.NotClean("forced")

    monkeypatch.setattr(_raw, "read_header", not_plain)
    theirs = [(index_files(input_paths(r)[1], r, light=True), list_patients(r),
               find_patient_folders(r)) for r in roots]
    _same(ours, theirs)
    assert ours[0][0].files and ours[0][0].not_dicom


def test_ct_pixels_are_the_pydicom_path_ones(tmp_path, monkeypatch):
    """load_ct_pixels reads plain slices without pydicom: the same HU as pydicom's
    pixel_array path (forced here by making every file look not plain)."""
    from rtplan_assist.dicom import load_ct_pixels

    write_ct(tmp_path / "hfs", [0.0, 3.0, 6.0])
    write_ct(tmp_path / "ffp", [0.0, 2.5], iop=[1, 0, 0, 0, -1, 0], slope=1.0)
    series = [load_case(demo_case_folder()).ct]
    for folder in ("hfs", "ffp"):
        write_struct(tmp_path / folder / "RS.dcm",
                     [(1, "PTV", "PTV", [("CLOSED_PLANAR", square(0.0))])])
        series.append(load_case(tmp_path / folder).ct)
    ours = [load_ct_pixels(ct) for ct in series]

    def not_plain(path):
        raise _raw.NotClean("forced")

    monkeypatch.setattr(_raw, "read_header", not_plain)
    for ct, hu in zip(series, ours):
        _same(hu, load_ct_pixels(ct))


def test_dvh_and_evaluate_of_the_demo_do_not_import_pydicom(tmp_path):
    folder = demo_case_folder()
    code = (
        "import sys\n"
        "from rtplan_assist.cli import main\n"
        f"assert main(['dvh', {str(folder / 'RS.dcm')!r}, {str(folder / 'RD.L1.dcm')!r},"
        f" '--out', {str(tmp_path / 'dvh.json')!r}]) == 0\n"
        f"assert main(['evaluate', {str(folder)!r}, '--format', 'json',"
        f" '--out', {str(tmp_path / 'eval.json')!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydicom', 'PIL')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_contour_data_parsed_in_pieces_reads_the_same(tmp_path, monkeypatch):
    from rtplan_assist.dicom import rtstruct

    _write_case(tmp_path)
    monkeypatch.setattr(rtstruct, "_PARSE_PIECE_VALUES", 7)  # a piece per contour or two
    fast, slow = _fast_and_pydicom(tmp_path)
    _same(fast, slow)
