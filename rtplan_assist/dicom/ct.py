"""CT image series: geometry from headers, Hounsfield units on demand."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from rtplan_assist.dicom import _raw
from rtplan_assist.dicom._common import (
    axial_signs,
    check_coordinates,
    check_grid_size,
    check_spacing,
    display_name,
    ds_float,
    ds_floats,
    ds_int,
    ds_str,
    malformed_as_input_error,
    median,
    pixel_frames,
    read_full,
)
from rtplan_assist.errors import DicomInputError, GeometryError
from rtplan_assist.model import CTSeries, Grid

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: In-plane position/spacing tolerance (mm) between slices of one series.
SLICE_TOLERANCE_MM = 1e-3


def ct_series_from_headers(headers: list[tuple[str, Dataset]]) -> CTSeries:
    """Geometry of one CT series from its slice headers (pixels are not read).

    Parameters
    ----------
    headers : list of (path, Dataset)
        The slices of one SeriesInstanceUID, in any order.

    Returns
    -------
    CTSeries
        ``paths`` sorted by ImagePositionPatient z, ascending; ``grid`` ascending on every axis
        with the true slice positions in ``grid.z_mm`` and the median step as nominal ``dz``.

    Raises
    ------
    GeometryError
        Oblique/non-axial orientation, slices that disagree on orientation, in-plane position,
        size or pixel spacing, or two slices at the same z.
    DicomInputError
        Missing geometry elements.
    """
    if not headers:
        raise DicomInputError("empty CT series")
    with malformed_as_input_error(headers[0][0], "CT series"):
        return _ct_series_from_headers(headers)


def _ct_series_from_headers(headers: list[tuple[str, Dataset]]) -> CTSeries:
    slices = []
    for path, ds in headers:
        for keyword in ("ImagePositionPatient", "PixelSpacing", "Rows", "Columns"):
            if keyword not in ds:
                raise DicomInputError(
                    f"CT slice has no {keyword}; it cannot be placed in patient coordinates.",
                    path=path,
                )
        signs = axial_signs(ds.get("ImageOrientationPatient"), path)
        ipp = ds_floats(ds, "ImagePositionPatient", path=path, count=3)
        check_coordinates(ipp, "ImagePositionPatient", path)
        dy, dx = ds_floats(ds, "PixelSpacing", path=path, count=2)
        check_spacing(np.array([dy, dx]), "PixelSpacing", path)
        rows, cols = ds_int(ds, "Rows", path=path), ds_int(ds, "Columns", path=path)
        slices.append((ipp[2], path, ds, signs, ipp, dx, dy, rows, cols))
    slices.sort(key=lambda s: s[0])
    _, first_path, first, signs, ipp0, dx, dy, rows, cols = slices[0]
    for z, path, _ds, s_signs, ipp, s_dx, s_dy, s_rows, s_cols in slices[1:]:
        if (
            s_signs != signs
            or (s_rows, s_cols) != (rows, cols)
            or abs(s_dx - dx) > SLICE_TOLERANCE_MM
            or abs(s_dy - dy) > SLICE_TOLERANCE_MM
            or np.abs(ipp[:2] - ipp0[:2]).max() > SLICE_TOLERANCE_MM
        ):
            raise GeometryError(
                f"CT slice at z {z:g} mm does not share the orientation, size, pixel spacing "
                f"or in-plane position of {display_name(first_path)}; the series is not one "
                "regular volume.",
                path=path,
            )
    z_mm = np.array([s[0] for s in slices], dtype=np.float64)
    if len(z_mm) > 1 and np.any(np.diff(z_mm) <= SLICE_TOLERANCE_MM):
        dup = z_mm[1:][np.diff(z_mm) <= SLICE_TOLERANCE_MM][0]
        raise GeometryError(
            f"two CT slices of series {ds_str(first, 'SeriesInstanceUID')} are at z {dup:g} mm "
            "(duplicate slices); remove the duplicates.",
            path=first_path,
        )
    # The series grid sizes the HU array of load_ct_pixels: bounded before anything is read.
    check_grid_size((len(slices), rows, cols), "CT series", first_path)
    thickness = ds_float(first, "SliceThickness", path=first_path)
    if len(z_mm) > 1:
        dz = median(np.diff(z_mm))
    elif thickness and thickness > 0:
        dz = thickness
    else:
        raise DicomInputError(
            "single CT slice without SliceThickness: its thickness is unknown.", path=first_path
        )
    sx, sy = signs
    origin_x = ipp0[0] if sx > 0 else ipp0[0] - (cols - 1) * dx
    origin_y = ipp0[1] if sy > 0 else ipp0[1] - (rows - 1) * dy
    grid = Grid(
        origin=np.array([origin_x, origin_y, z_mm[0]], dtype=np.float64),
        spacing=np.array([dx, dy, dz], dtype=np.float64),
        shape=(len(slices), rows, cols),
        z_mm=z_mm,
    )
    return CTSeries(
        series_instance_uid=ds_str(first, "SeriesInstanceUID"),
        frame_of_reference_uid=ds_str(first, "FrameOfReferenceUID"),
        grid=grid,
        paths=[str(s[1]) for s in slices],
        slice_thickness_mm=thickness,
    )


def ct_plane_spacing(ct: CTSeries) -> float | None:
    """Slice spacing for contour slabs: the modal z step, else SliceThickness (mm)."""
    if len(ct.grid.z_mm) > 1:
        steps = Counter(round(float(s), 2) for s in np.diff(ct.grid.z_mm))
        return max(steps.items(), key=lambda kv: (kv[1], -kv[0]))[0]
    return ct.slice_thickness_mm


def load_ct_pixels(ct: CTSeries) -> np.ndarray:
    """Hounsfield units of a CT series on its ascending grid.

    Parameters
    ----------
    ct : CTSeries
        As returned in ``Case.ct``.

    Returns
    -------
    (nz, ny, nx) float32 array
        ``stored value × RescaleSlope + RescaleIntercept`` (HU), indexed ``[z, y, x]`` with
        x, y and z ascending (rows/columns reversed for FFS, HFP and FFP slices).

    Raises
    ------
    DicomInputError
        A slice is unreadable or its size differs from the series grid.
    GeometryError
        A slice's orientation or position no longer matches the grid.
    """
    nz, ny, nx = ct.grid.shape
    check_grid_size((nz, ny, nx), "CT series", ct.paths[0] if ct.paths else None)
    hu = np.empty((nz, ny, nx), dtype=np.float32)
    for k, path in enumerate(ct.paths):
        try:  # a plain slice without pydicom (dicom/_raw.py): the same values
            ds = _raw.read_header(path)
            with malformed_as_input_error(path, "CT slice"):
                hu[k] = _slice_hu(ds, path, ct.grid.z_mm[k], ny, nx)
            continue
        except _raw.NotClean:
            pass
        ds = read_full(path)
        with malformed_as_input_error(path, "CT slice"):
            hu[k] = _slice_hu(ds, path, ct.grid.z_mm[k], ny, nx)
    return hu


def _slice_hu(ds: Dataset, path, grid_z: float, ny: int, nx: int) -> np.ndarray:
    """One slice in HU on the ascending grid (rows/columns reversed for FFS, HFP, FFP)."""
    sx, sy = axial_signs(ds.get("ImageOrientationPatient"), path)
    z = float(ds_floats(ds, "ImagePositionPatient", path=path, count=3)[2])
    if abs(z - grid_z) > SLICE_TOLERANCE_MM:
        raise GeometryError(
            f"slice z {z:g} mm does not match the series grid ({grid_z:g} mm); "
            "the file changed since the case was loaded.",
            path=path,
        )
    frame = pixel_frames(ds, path)
    if frame.shape != (1, ny, nx):
        raise DicomInputError(
            f"CT slice pixels have shape {frame.shape[1:]}, expected ({ny}, {nx}).",
            path=path,
        )
    values = frame[0].astype(np.float64)
    values = values * (ds_float(ds, "RescaleSlope", 1.0, path=path) or 1.0) + (
        ds_float(ds, "RescaleIntercept", 0.0, path=path) or 0.0
    )
    if sy < 0:
        values = values[::-1, :]
    if sx < 0:
        values = values[:, ::-1]
    return values
