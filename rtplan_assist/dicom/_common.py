"""Helpers shared by the modality readers: orientation checks, value parsing, pixel access."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from rtplan_assist.errors import DicomInputError, GeometryError

#: Tolerance on direction cosines when deciding that a grid is axis-aligned.
ORIENTATION_TOLERANCE = 1e-4

#: The four axial patient orientations the loader accepts, by (row x sign, column y sign).
AXIAL_ORIENTATIONS = {
    (1, 1): "HFS",
    (-1, 1): "FFS",
    (-1, -1): "HFP",
    (1, -1): "FFP",
}


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
    if iop is None or len(iop) != 6:
        raise GeometryError(
            "ImageOrientationPatient (0020,0037) is missing or does not have 6 values; "
            "the grid cannot be placed in patient coordinates. Re-export the file from the "
            "planning system.",
            path=path,
        )
    cosines = np.asarray([float(v) for v in iop], dtype=np.float64)
    row, col = cosines[:3], cosines[3:]
    sx = 1 if row[0] > 0 else -1
    sy = 1 if col[1] > 0 else -1
    expected_row = np.array([sx, 0.0, 0.0])
    expected_col = np.array([0.0, sy, 0.0])
    if not (
        np.allclose(row, expected_row, atol=ORIENTATION_TOLERANCE)
        and np.allclose(col, expected_col, atol=ORIENTATION_TOLERANCE)
    ):
        values = "\\".join(f"{v:g}" for v in cosines)
        raise GeometryError(
            f"ImageOrientationPatient {values} is not an axial HFS/FFS/HFP/FFP orientation "
            "(rows along ±x, columns along ±y); oblique, sagittal, coronal and decubitus grids "
            "are not supported. Resample the data onto an axial grid in the planning system.",
            path=path,
        )
    return sx, sy


def ds_float(ds: Dataset, keyword: str, default: float | None = None) -> float | None:
    """A numeric element as float, ``default`` when absent or empty."""
    value = ds.get(keyword, None)
    if value is None or value == "":
        return default
    return float(value)


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
    try:
        arr = ds.pixel_array
    except Exception as exc:
        raise DicomInputError(
            f"pixel data cannot be decoded ({type(exc).__name__}: {exc}); the file may be "
            "truncated or damaged. Re-export it from the planning system.",
            path=path,
        ) from exc
    rows, cols = int(ds.Rows), int(ds.Columns)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3 or arr.shape[1:] != (rows, cols):
        raise DicomInputError(
            f"pixel array has shape {arr.shape}, expected (frames, {rows}, {cols}) from "
            "Rows/Columns; colour or multi-sample pixel data is not a dose or CT image.",
            path=path,
        )
    return arr
