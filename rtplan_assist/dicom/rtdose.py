"""RTDOSE: dose grid geometry from the header, dose in Gy from the pixels.

Geometry follows DICOM PS3.3 C.8.8.3.2 (Grid Frame Offset Vector): when the first offset is
0 the offsets are relative to ImagePositionPatient along the slice normal (row × column
direction); when the first offset equals the z of ImagePositionPatient they are absolute
patient z. Arrays come out ``[z, y, x]`` with every coordinate ascending with the index.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rtplan_assist.dicom._common import (
    axial_signs,
    check_coordinates,
    check_grid_size,
    check_spacing,
    ds_float,
    ds_floats,
    ds_int,
    ds_items,
    ds_str,
    malformed_as_input_error,
    median,
    pixel_frames,
    read_full,
)
from rtplan_assist.dicom._raw import RawDataset
from rtplan_assist.errors import DicomInputError
from rtplan_assist.model import Dose, Grid

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: Offsets within this distance (mm) count as equal when classifying GridFrameOffsetVector.
OFFSET_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class DoseGeometry:
    """Where the stored voxels go.

    Attributes
    ----------
    grid : Grid
        Ascending grid in patient coordinates.
    frame_order : (nz,) int array
        Stored frame index of each ascending plane.
    flip_x, flip_y : bool
        Whether columns (x) / rows (y) must be reversed for ascending coordinates.
    """

    grid: Grid
    frame_order: np.ndarray
    flip_x: bool
    flip_y: bool

    def to_ascending(self, frames: np.ndarray) -> np.ndarray:
        """Reorder a stored ``(frames, rows, cols)`` array to ascending ``[z, y, x]``."""
        out = frames[self.frame_order]
        if self.flip_y:
            out = out[:, ::-1, :]
        if self.flip_x:
            out = out[:, :, ::-1]
        return np.ascontiguousarray(out)


def dose_geometry(ds: Dataset, path: str | Path) -> DoseGeometry:
    """Grid of an RTDOSE from its header (no pixel data needed).

    Voxel ``(frame k, row i, column j)`` sits at ``IPP + j·dx·row_dir + i·dy·col_dir +
    offset_k·normal`` (relative offsets) where ``PixelSpacing = [dy (between rows), dx
    (between columns)]`` in mm. Only axis-aligned HFS/FFS/HFP/FFP orientations are accepted.

    Parameters
    ----------
    ds : Dataset
        RTDOSE header (pixels not required).
    path : str or Path
        File name for error messages.

    Returns
    -------
    DoseGeometry

    Raises
    ------
    GeometryError
        Oblique or non-axial ImageOrientationPatient.
    DicomInputError
        Missing/inconsistent geometry elements (PixelSpacing, ImagePositionPatient,
        GridFrameOffsetVector of the wrong length or neither relative nor absolute, two
        frames at the same z).
    """
    for keyword in ("Rows", "Columns", "PixelSpacing", "ImagePositionPatient"):
        if keyword not in ds:
            raise DicomInputError(
                f"RTDOSE has no {keyword}; the dose grid cannot be placed. Re-export the dose "
                "with its grid from the planning system.",
                path=path,
            )
    sx, sy = axial_signs(ds.get("ImageOrientationPatient"), path)
    # Typed, finite values and a bounded grid before anything is sized from the header
    # (issue 6 fuzzing: text in IS/DS, one PixelSpacing value, NaN, 10^12-voxel headers).
    rows, cols = ds_int(ds, "Rows", path=path), ds_int(ds, "Columns", path=path)
    n_frames = ds_int(ds, "NumberOfFrames", 1, path=path)
    check_grid_size((n_frames, rows, cols), "RTDOSE", path)
    dy, dx = ds_floats(ds, "PixelSpacing", path=path, count=2)  # [row, column spacing]
    check_spacing(np.array([dy, dx]), "PixelSpacing", path)
    ipp = ds_floats(ds, "ImagePositionPatient", path=path, count=3)
    check_coordinates(ipp, "ImagePositionPatient", path)

    offsets_raw = ds_floats(ds, "GridFrameOffsetVector", path=path)
    if offsets_raw is None or len(offsets_raw) == 0:
        if n_frames > 1:
            raise DicomInputError(
                f"RTDOSE has {n_frames} frames but no GridFrameOffsetVector (3004,000C); the "
                "plane positions are unknown.",
                path=path,
            )
        offsets = np.zeros(1)
    else:
        offsets = offsets_raw
        check_coordinates(offsets, "GridFrameOffsetVector", path)
    if len(offsets) != n_frames:
        raise DicomInputError(
            f"GridFrameOffsetVector has {len(offsets)} values for {n_frames} frames.",
            path=path,
        )

    normal_z = sx * sy  # z component of row_dir × col_dir for the four axial orientations
    if abs(offsets[0]) <= OFFSET_TOLERANCE_MM:
        z = ipp[2] + normal_z * offsets  # relative (option a, recommended by the standard)
    elif abs(offsets[0] - ipp[2]) <= OFFSET_TOLERANCE_MM:
        z = offsets.copy()  # absolute patient z (option b)
    else:
        raise DicomInputError(
            f"GridFrameOffsetVector starts at {offsets[0]:g} mm, which is neither 0 (relative "
            f"offsets) nor the ImagePositionPatient z {ipp[2]:g} mm (absolute z), so the plane "
            "positions are ambiguous (DICOM PS3.3 C.8.8.3.2). Re-export the dose.",
            path=path,
        )

    order = np.argsort(z, kind="stable")
    z_sorted = z[order]
    steps = np.diff(z_sorted)
    if np.any(steps <= OFFSET_TOLERANCE_MM):
        raise DicomInputError(
            "GridFrameOffsetVector places two dose planes at the same z; the grid is invalid.",
            path=path,
        )
    if n_frames > 1:
        dz = median(steps)
    else:
        thickness = ds_float(ds, "SliceThickness", path=path)
        if not thickness or thickness <= 0:
            raise DicomInputError(
                "single-plane RTDOSE without SliceThickness: the plane thickness is unknown, "
                "so no volume can be computed. Export a 3D dose grid.",
                path=path,
            )
        dz = thickness

    # Patient x of column j is ipp_x + sx*j*dx; after flipping, x ascends from the far end.
    origin_x = ipp[0] if sx > 0 else ipp[0] - (cols - 1) * dx
    origin_y = ipp[1] if sy > 0 else ipp[1] - (rows - 1) * dy
    far = [origin_x + (cols - 1) * dx, origin_y + (rows - 1) * dy, z_sorted[-1]]
    check_coordinates(np.array(far), "the far corner of the dose grid", path)
    grid = Grid(
        origin=np.array([origin_x, origin_y, z_sorted[0]], dtype=np.float64),
        spacing=np.array([dx, dy, dz], dtype=np.float64),
        shape=(n_frames, rows, cols),
        z_mm=z_sorted,
    )
    return DoseGeometry(grid=grid, frame_order=order, flip_x=sx < 0, flip_y=sy < 0)


def dose_unit_factor(ds: Dataset, path: str | Path, prescription_gy: float | None = None) -> float:
    """Factor from ``pixel × DoseGridScaling`` to Gy.

    ``GY`` → 1, ``CGY`` → 0.01, ``RELATIVE`` → ``prescription_gy`` (a relative dose of 1.0 is
    taken to be the prescription).

    Raises
    ------
    DicomInputError
        RELATIVE dose without a prescription, or an unknown DoseUnits.
    """
    units = ds_str(ds, "DoseUnits").upper()
    if units == "GY":
        return 1.0
    if units == "CGY":
        return 0.01
    if units == "RELATIVE":
        if prescription_gy is None or not prescription_gy > 0:
            raise DicomInputError(
                "DoseUnits is RELATIVE and no prescription is known to convert it to Gy: the "
                "RTPLAN this dose references (ReferencedRTPlanSequence) is missing or has no "
                "TargetPrescriptionDose. Add the RTPLAN to the folder or export the dose in GY.",
                path=path,
            )
        return float(prescription_gy)
    raise DicomInputError(
        f"DoseUnits {units!r} is not GY, CGY or RELATIVE; the dose cannot be converted to Gy.",
        path=path,
    )


def referenced_plan_uid(ds: Dataset) -> str | None:
    """SOPInstanceUID of the first item of ReferencedRTPlanSequence, if any."""
    seq = ds_items(ds, "ReferencedRTPlanSequence")
    if seq:
        uid = seq[0].get("ReferencedSOPInstanceUID", None)
        if uid:
            return str(uid)
    return None


def has_dose_grid(ds: Dataset) -> bool:
    """True when the RTDOSE carries a pixel grid (some carry only DVHs)."""
    return "Rows" in ds and "Columns" in ds


def read_dose(
    path: str | Path,
    header: Dataset | None = None,
    *,
    prescription_gy: float | None = None,
) -> Dose:
    """Read one RTDOSE as Gy on an ascending grid.

    Parameters
    ----------
    path : str or Path
        The RTDOSE file (opened read-only).
    header : Dataset or RawDataset, optional
        Header already read while indexing; checked against the file's SOPInstanceUID. A
        :class:`~rtplan_assist.dicom._raw.RawDataset` (the loader's fast path) is used as it
        is, its pixels read from the file where indexing found them.
    prescription_gy : float, optional
        Prescription in Gy of the linked plan; required only for ``DoseUnits = RELATIVE``.

    Returns
    -------
    Dose
        ``dose_gy`` is float32 ``(nz, ny, nx)`` in Gy = stored value × DoseGridScaling ×
        unit factor.

    Raises
    ------
    DicomInputError
        Missing DoseGridScaling, unknown units, RELATIVE without prescription, damaged pixels.
    GeometryError
        Oblique grid.
    """
    if isinstance(header, RawDataset):
        with malformed_as_input_error(path, "RTDOSE"):
            return _read_dose(header, path, None, prescription_gy)
    ds = read_full(path)
    with malformed_as_input_error(path, "RTDOSE"):
        return _read_dose(ds, path, header, prescription_gy)


def _read_dose(ds: Dataset, path, header: Dataset | None, prescription_gy: float | None) -> Dose:
    if header is not None and ds_str(header, "SOPInstanceUID") != ds_str(ds, "SOPInstanceUID"):
        raise DicomInputError(
            "SOPInstanceUID differs from the one read while indexing; the file changed during "
            "loading. Load the case again.",
            path=path,
        )
    if ds_str(ds, "Modality") != "RTDOSE":
        raise DicomInputError("is not an RTDOSE (Modality is not RTDOSE).", path=path)
    if not has_dose_grid(ds):
        raise DicomInputError(
            "RTDOSE has no dose grid (Rows/Columns absent; it may carry DVHs only).", path=path
        )
    geometry = dose_geometry(ds, path)
    scaling = ds_float(ds, "DoseGridScaling", path=path)
    if scaling is None:
        raise DicomInputError(
            "RTDOSE has no DoseGridScaling (3004,000E), so stored values cannot be converted to "
            "dose. Re-export the dose from the planning system.",
            path=path,
        )
    if scaling <= 0:
        raise DicomInputError(
            f"DoseGridScaling is {scaling:g}; a positive factor is needed to convert stored "
            "values to dose.",
            path=path,
        )
    factor = dose_unit_factor(ds, path, prescription_gy)
    frames = pixel_frames(ds, path)
    if frames.shape[0] != geometry.grid.shape[0]:
        raise DicomInputError(
            f"pixel data has {frames.shape[0]} frames, NumberOfFrames says "
            f"{geometry.grid.shape[0]}.",
            path=path,
        )
    # stored value x scaling in float64, rounded once to float32: one pass into the float32
    # grid (the same numbers as .astype(float64) * s then a float32 copy, without two 10 MB
    # float64 temporaries per dose; kernels/scale.py)
    from ..kernels.scale import scale_to_float32

    dose_gy = scale_to_float32(geometry.to_ascending(frames), scaling * factor)
    dose_gy.flags.writeable = False  # the case is immutable (and DVHs memoise its range)
    return Dose(
        path=str(path),
        sop_instance_uid=ds_str(ds, "SOPInstanceUID"),
        frame_of_reference_uid=ds_str(ds, "FrameOfReferenceUID"),
        grid=geometry.grid,
        dose_gy=dose_gy,
        summation_type=ds_str(ds, "DoseSummationType").upper(),
        dose_type=ds_str(ds, "DoseType").upper(),
        referenced_plan_uid=referenced_plan_uid(ds),
        comment=ds_str(ds, "DoseComment"),
        series_description=ds_str(ds, "SeriesDescription"),
    )
