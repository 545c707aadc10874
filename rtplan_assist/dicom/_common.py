"""Helpers shared by the modality readers: orientation checks, value parsing, pixel access."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rtplan_assist.dicom import _raw
from rtplan_assist.errors import DicomInputError, GeometryError, RtplanAssistError

if TYPE_CHECKING:  # pydicom is imported where it is used: the plain files never need it
    from pydicom.dataset import Dataset

#: Largest image or dose grid the loader accepts (voxels). A stated memory bound: loading a
#: dose grid costs about 20 bytes per voxel at its peak (stored, reordered, float64, float32),
#: so 2e8 voxels stay under 4 GB; clinical dose grids are below 3e7 and CT series below 2e8.
MAX_GRID_VOXELS = 200_000_000

#: Coordinates (mm) beyond this magnitude are not a patient (100 m): refused as damaged
#: rather than carried into grid extents, where they overflow or explode the work.
MAX_ABS_COORDINATE_MM = 1.0e5

#: Smallest pixel or plane spacing accepted (mm): below this a grid is a damaged header.
MIN_SPACING_MM = 1.0e-3

#: What pydicom raises when it parses an element on first access (unknown VR, a sequence
#: cut short, undecodable text) and what a malformed value raises in a conversion. Turned
#: into a DicomInputError naming the file at the readers' boundaries (issue 6 fuzzing).
PARSE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    NotImplementedError,
    OSError,
    EOFError,
    struct.error,
)

#: Tolerance on direction cosines when deciding that a grid is axis-aligned.
ORIENTATION_TOLERANCE = 1e-4

#: The four axial patient orientations the loader accepts, by (row x sign, column y sign).
AXIAL_ORIENTATIONS = {
    (1, 1): "HFS",
    (-1, 1): "FFS",
    (-1, -1): "HFP",
    (1, -1): "FFP",
}


def median(values: np.ndarray) -> float:
    """``float(np.median(values))`` of a 1-D array, without ``np.median``, whose NaN check
    imports ``numpy.ma`` (7 ms of every command that reads a dose or a CT series). The same
    value: the middle element, or the two middle ones added and halved as ``np.mean`` does;
    NaN if any value is NaN."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = ordered.shape[0]
    if n == 0 or np.isnan(ordered[-1]):
        return math.nan
    if n % 2:
        return float(ordered[n // 2])
    return float((ordered[n // 2 - 1] + ordered[n // 2]) / 2.0)


def display_name(path: str | Path, root: str | Path | None = None) -> str:
    """File name for warnings and errors: relative to ``root`` when possible (never PHI)."""
    path = Path(path)
    if root is not None:
        try:
            return str(path.relative_to(root))
        except ValueError:
            pass
    return path.name


def axial_signs(iop, path: str | Path) -> tuple[int, int]:
    """Signs of the row (x) and column (y) direction cosines of an axial grid.

    Parameters
    ----------
    iop : sequence of 6 floats
        ImageOrientationPatient: row direction cosines then column direction cosines.
    path : str or Path
        File the orientation comes from (named in the error).

    Returns
    -------
    (sx, sy) : tuple of int
        ``+1`` or ``-1``: x increases (``+1``) or decreases with the column index, and y with
        the row index. (1, 1) is HFS, (-1, 1) FFS, (-1, -1) HFP, (1, -1) FFP.

    Raises
    ------
    GeometryError
        When the orientation is missing, oblique, or rows/columns are not along x/y
        (sagittal, coronal, decubitus).
    """
    n_values = 1 if isinstance(iop, (str, bytes)) or not hasattr(iop, "__len__") else len(iop)
    if iop is None or n_values != 6:
        raise GeometryError(
            "ImageOrientationPatient (0020,0037) is missing or does not have 6 values; "
            "the grid cannot be placed in patient coordinates. Re-export the file from the "
            "planning system.",
            path=path,
        )
    cosines = as_floats(iop, "ImageOrientationPatient", path, count=6)
    row, col = cosines[:3], cosines[3:]
    sx = 1 if row[0] > 0 else -1
    sy = 1 if col[1] > 0 else -1
    expected = np.array([sx, 0.0, 0.0, 0.0, sy, 0.0])
    # np.allclose(cosines, expected, atol=ORIENTATION_TOLERANCE) (its rtol 1e-5 included),
    # without its overhead (~30 µs, twice per CT slice); the cosines are finite (as_floats)
    if not np.all(np.abs(cosines - expected) <= ORIENTATION_TOLERANCE + 1e-5 * np.abs(expected)):
        values = "\\".join(f"{v:g}" for v in cosines)
        raise GeometryError(
            f"ImageOrientationPatient {values} is not an axial HFS/FFS/HFP/FFP orientation "
            "(rows along ±x, columns along ±y); oblique, sagittal, coronal and decubitus grids "
            "are not supported. Resample the data onto an axial grid in the planning system.",
            path=path,
        )
    return sx, sy


@contextmanager
def malformed_as_input_error(path: str | Path | None, what: str) -> Iterator[None]:
    """Report a header that pydicom cannot parse, or a value of the wrong type, as a
    :class:`DicomInputError` naming the file (instead of a raw ``ValueError``, ...)."""
    try:
        yield
    except RtplanAssistError:
        raise
    except PARSE_ERRORS as exc:
        detail = " ".join(str(exc).split())[:200]
        raise DicomInputError(
            f"{what} cannot be interpreted ({type(exc).__name__}: {detail}); the file is "
            "damaged or does not follow the DICOM standard. Re-export it from the planning "
            "system.",
            path=path,
        ) from exc


def _get(ds: Dataset, keyword: str, path):
    with malformed_as_input_error(path, f"element {keyword}"):
        return ds.get(keyword, None)


def ds_float(
    ds: Dataset, keyword: str, default: float | None = None, *, path: str | Path | None = None
) -> float | None:
    """A numeric element as a finite float, ``default`` when absent or empty.

    Raises
    ------
    DicomInputError
        The value is not a number (text, several values) or not finite.
    """
    value = _get(ds, keyword, path)
    if value is None or (isinstance(value, (str, bytes)) and not value.strip()):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise DicomInputError(
            f"{keyword} {str(value)[:40]!r} is not a number; the file is damaged or not standard.",
            path=path,
        ) from None
    if not math.isfinite(number):
        raise DicomInputError(f"{keyword} is {number}; a finite number is needed.", path=path)
    return number


def ds_int(
    ds: Dataset, keyword: str, default: int | None = None, *, path: str | Path | None = None
) -> int | None:
    """An integer element (IS, US, ...), ``default`` when absent or empty.

    Raises
    ------
    DicomInputError
        The value is not an integer.
    """
    value = _get(ds, keyword, path)
    if value is None or (isinstance(value, (str, bytes)) and not value.strip()):
        return default
    try:
        number = float(value)
        if not number.is_integer():
            raise ValueError
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise DicomInputError(
            f"{keyword} {str(value)[:40]!r} is not an integer; the file is damaged or not "
            "standard.",
            path=path,
        ) from None


def as_floats(value, keyword: str, path, count: int | None = None) -> np.ndarray:
    """A multi-valued numeric element as a finite float64 array (a single value counts as
    one; ``count`` values exactly when given).

    Raises
    ------
    DicomInputError
        A value is not a number or not finite, or the number of values is wrong.
    """
    if value is None:
        values = []
    elif isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        values = [value]
    else:
        values = list(value)
    try:
        arr = np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise DicomInputError(
            f"{keyword} holds a value that is not a number; the file is damaged or not standard.",
            path=path,
        ) from None
    if count is not None and arr.size != count:
        raise DicomInputError(f"{keyword} has {arr.size} values, expected {count}.", path=path)
    if not np.all(np.isfinite(arr)):
        raise DicomInputError(f"{keyword} holds NaN or infinite values.", path=path)
    return arr


def ds_floats(
    ds: Dataset, keyword: str, *, path: str | Path | None = None, count: int | None = None
) -> np.ndarray | None:
    """A multi-valued numeric element (see :func:`as_floats`), ``None`` when absent."""
    value = _get(ds, keyword, path)
    if value is None or (isinstance(value, (str, bytes)) and not value.strip()):
        return None
    return as_floats(value, keyword, path, count)


def ds_items(ds: Dataset, keyword: str, *, path: str | Path | None = None) -> list[Dataset]:
    """The items of a sequence element (``[]`` when absent or empty).

    Raises
    ------
    DicomInputError
        The element is present but not a sequence of items (damaged file or wrong VR).
    """
    value = _get(ds, keyword, path)
    if value is None or (isinstance(value, (str, bytes)) and not value):
        return []
    if type(value) is list and all(isinstance(i, _raw.RawDataset) for i in value):
        return list(value)  # read by the fast path (dicom/_raw.py)
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    if not isinstance(value, Sequence) or not all(isinstance(i, Dataset) for i in value):
        raise DicomInputError(
            f"{keyword} is not a sequence of items; the file is damaged or not standard.",
            path=path,
        )
    return list(value)


def check_coordinates(values: np.ndarray, keyword: str, path) -> None:
    """Refuse coordinates beyond :data:`MAX_ABS_COORDINATE_MM` (not a patient)."""
    if values.size and float(np.max(np.abs(values))) > MAX_ABS_COORDINATE_MM:
        raise DicomInputError(
            f"{keyword} holds a coordinate of {float(np.max(np.abs(values))):.3g} mm, beyond "
            f"±{MAX_ABS_COORDINATE_MM:g} mm: not a patient position. The file is damaged.",
            path=path,
        )


def check_spacing(values, keyword: str, path) -> None:
    """Refuse a spacing that is not at least :data:`MIN_SPACING_MM` (zero, negative, 1e-300)."""
    if float(np.min(values)) < MIN_SPACING_MM:
        shown = "\\".join(f"{float(v):g}" for v in np.atleast_1d(values))
        raise DicomInputError(
            f"{keyword} {shown} is not a positive spacing of at least {MIN_SPACING_MM:g} mm; "
            "the header is damaged.",
            path=path,
        )


def check_grid_size(shape: tuple[int, ...], what: str, path) -> None:
    """Refuse an empty grid or one of more than :data:`MAX_GRID_VOXELS` voxels, before
    anything of that size is allocated."""
    if any(n < 1 for n in shape):
        raise DicomInputError(f"{what} grid has shape {tuple(shape)}: no voxels.", path=path)
    voxels = math.prod(int(n) for n in shape)
    if voxels > MAX_GRID_VOXELS:
        raise DicomInputError(
            f"{what} grid {' × '.join(str(n) for n in shape)} = {voxels:.3g} voxels exceeds "
            f"the limit of {MAX_GRID_VOXELS:.0e}; the header is damaged or the grid is "
            "finer than any plan needs. Re-export it on a coarser grid.",
            path=path,
        )


#: Most bytes a deflate-compressed DICOM file may inflate to (1 GiB: a dose grid of
#: :data:`MAX_GRID_VOXELS` 32-bit voxels is 800 MB). Checked by streaming the inflation in
#: 16 MiB steps before pydicom inflates the file in memory: a 3 MB file of zeros inflates to
#: over 3 GB, which pydicom would hold at once.
MAX_INFLATED_BYTES = 1 << 30

#: Bytes read to decide whether a file without a DICM prefix may be DICOM (its first tag).
HEADER_PROBE_BYTES = 8

DEFLATED_SYNTAX = "1.2.840.10008.1.2.1.99"

_INFLATE_STEP = 1 << 24


def _plausible_first_tag(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a data set) starts with a tag a DICOM data set can
    start with: an even group from 0x0002 to 0x7FE0, little or big endian. A file of zeros
    (group 0, one empty element every 8 bytes: pydicom would parse ~0.8 s per MB) or of text
    is not."""
    if len(head) < 4:
        return False
    for order in ("<", ">"):
        group = struct.unpack(order + "H", head[:2])[0]
        if group % 2 == 0 and 0x0002 <= group <= 0x7FE0:
            return True
    return False


#: Modality of a file by its MediaStorageSOPClassUID (a refused file is still named by kind).
SOP_CLASS_MODALITY = {
    "1.2.840.10008.5.1.4.1.1.2": "CT",
    "1.2.840.10008.5.1.4.1.1.481.2": "RTDOSE",
    "1.2.840.10008.5.1.4.1.1.481.3": "RTSTRUCT",
    "1.2.840.10008.5.1.4.1.1.481.5": "RTPLAN",
}


def screen_file(path: str | Path) -> tuple[str, str, str]:
    """A bounded look at a file before pydicom parses it: ``(kind, reason, modality)`` with
    kind ``"dicom"``, ``"not_dicom"`` or ``"unreadable"``, and the modality its File Meta
    SOP class names (``""`` when unknown).

    Reads the 132-byte prefix and, with a DICM prefix, the File Meta group only. A file
    without the prefix whose first tag is implausible (:func:`_plausible_first_tag`) is not
    DICOM. A deflate-compressed data set is inflated in steps, counting and discarding, and
    refused beyond :data:`MAX_INFLATED_BYTES` (a decompression bomb); memory stays ~16 MiB.
    """
    from pydicom.filereader import _read_file_meta_info

    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
            if len(head) < 132 or head[128:132] != b"DICM":
                if not _plausible_first_tag(head[:HEADER_PROBE_BYTES]):
                    return "not_dicom", "no DICM prefix and no DICOM tag at the start", ""
                return "dicom", "", ""
            try:
                meta = _read_file_meta_info(fh)
                syntax = str(meta.get("TransferSyntaxUID", "") or "")
                modality = SOP_CLASS_MODALITY.get(
                    str(meta.get("MediaStorageSOPClassUID", "") or ""), "")
            except Exception as exc:  # noqa: BLE001 - a damaged meta group: pydicom decides
                return "dicom", f"{type(exc).__name__}: {exc}", ""
            start = fh.tell()
            if syntax != DEFLATED_SYNTAX:
                if not _plausible_first_tag(fh.read(HEADER_PROBE_BYTES)):
                    return "unreadable", (
                        "after the File Meta group there is no DICOM data set (zeros or "
                        "foreign bytes)"), modality
                return "dicom", "", modality
            fh.seek(start)
            kind, reason = _screen_deflated(fh)
            return kind, reason, modality
    except OSError as exc:
        return "unreadable", f"cannot be read ({exc.strerror or type(exc).__name__})", ""


def _screen_deflated(fh) -> tuple[str, str]:
    import zlib

    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    first = b""
    try:
        while chunk := fh.read(1 << 20):
            while chunk:
                out = inflater.decompress(chunk, _INFLATE_STEP)
                if len(first) < HEADER_PROBE_BYTES:
                    first += out[: HEADER_PROBE_BYTES - len(first)]
                total += len(out)
                if total > MAX_INFLATED_BYTES:
                    return "unreadable", (
                        f"deflate-compressed data set inflates to more than "
                        f"{MAX_INFLATED_BYTES / 2**30:g} GiB (a decompression bomb or a "
                        "damaged file); refused before inflating it")
                chunk = inflater.unconsumed_tail
    except zlib.error as exc:
        return "unreadable", f"deflate-compressed data set is damaged ({exc})"
    if not _plausible_first_tag(first):
        return "unreadable", "the inflated data set does not start with a DICOM tag"
    return "dicom", ""


def ds_str(ds: Dataset, keyword: str, default: str = "") -> str:
    """A string element stripped, ``default`` when absent."""
    value = ds.get(keyword, None)
    if value is None:
        return default
    return str(value).strip()


def read_full(path: str | Path) -> Dataset:
    """Read a file with its pixel data (read-only) and make it decodable.

    Files written without a File Meta header (read with ``force=True``) have no Transfer
    Syntax UID; it is set in memory from the encoding pydicom detected while reading.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    kind, reason, _ = screen_file(path)
    if kind != "dicom":
        raise DicomInputError(
            f"is not a readable DICOM file: {reason}. Re-export it from the planning system.",
            path=path)
    try:
        ds = pydicom.dcmread(str(path), force=True)
    except Exception as exc:  # pydicom raises many types for damaged files
        raise DicomInputError(
            f"cannot be read as DICOM ({type(exc).__name__}: {exc}); the file may be damaged. "
            "Re-export it from the planning system.",
            path=path,
        ) from exc
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        if meta is None:
            ds.file_meta = FileMetaDataset()
        implicit, little = ds.original_encoding
        if implicit:
            uid = ImplicitVRLittleEndian
        elif little:
            uid = ExplicitVRLittleEndian
        else:
            uid = ExplicitVRBigEndian
        ds.file_meta.TransferSyntaxUID = uid
    return ds


def pixel_frames(ds: Dataset, path: str | Path) -> np.ndarray:
    """Raw stored pixel values as ``(frames, rows, cols)``.

    Raises
    ------
    DicomInputError
        When the pixel data is missing, truncated or cannot be decoded.
    """
    rows, cols = ds_int(ds, "Rows", 0, path=path), ds_int(ds, "Columns", 0, path=path)
    frames = ds_int(ds, "NumberOfFrames", 1, path=path) or 1
    samples = ds_int(ds, "SamplesPerPixel", 1, path=path) or 1
    bits = ds_int(ds, "BitsAllocated", 0, path=path)
    check_grid_size((frames, rows, cols), "pixel", path)
    if "PixelData" not in ds:
        raise DicomInputError("has no PixelData (7FE0,0010).", path=path)
    if isinstance(ds, _raw.RawDataset):
        return _raw.pixel_frames(ds, path, rows, cols, frames, samples, bits)
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID", None) if meta is not None else None
    try:
        native = syntax is not None and not syntax.is_compressed
    except ValueError:  # not a known transfer syntax: pydicom's decoder decides
        native = False
    if bits in (8, 16, 32, 64) and native:
        # Check the header's claim against the bytes present before anything is decoded.
        needed = frames * rows * cols * samples * bits // 8
        have = len(ds.PixelData)
        if have < needed:
            raise DicomInputError(
                f"PixelData holds {have} bytes but Rows × Columns × NumberOfFrames × "
                f"BitsAllocated/8 = {rows} × {cols} × {frames} × {bits // 8} needs {needed}; "
                "the file is truncated or its header is damaged.",
                path=path,
            )
    try:
        arr = ds.pixel_array
    except Exception as exc:
        raise DicomInputError(
            f"pixel data cannot be decoded ({type(exc).__name__}: {exc}); the file may be "
            "truncated or damaged. Re-export it from the planning system.",
            path=path,
        ) from exc
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3 or arr.shape[1:] != (rows, cols):
        raise DicomInputError(
            f"pixel array has shape {arr.shape}, expected (frames, {rows}, {cols}) from "
            "Rows/Columns; colour or multi-sample pixel data is not a dose or CT image.",
            path=path,
        )
    return arr
