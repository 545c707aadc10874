"""The case model: plain dataclasses of numpy arrays, shared by every stage.

Conventions (see ARCHITECTURE.md):

* coordinates are DICOM patient coordinates in mm (x, y, z);
* every voxel array is indexed ``[z, y, x]`` and the loader reorders it so that the
  index increases with the coordinate on every axis (HFS, FFS, HFP and FFP grids all end
  up ascending; oblique grids are refused);
* dose is in Gy, volumes in cm³ (cc).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Grid:
    """An axis-aligned voxel grid with ascending coordinates.

    Attributes
    ----------
    origin : (3,) float array
        Patient coordinates (x, y, z) in mm of the centre of voxel ``[0, 0, 0]``.
    spacing : (3,) float array
        Voxel size (dx, dy, dz) in mm, all positive. ``dz`` is the nominal spacing; when the
        planes are not uniformly spaced, ``z_mm`` holds the true positions.
    shape : tuple (nz, ny, nx)
        Array shape.
    z_mm : (nz,) float array
        Plane positions in mm, strictly ascending (uniform or not).
    """

    origin: np.ndarray
    spacing: np.ndarray
    shape: tuple[int, int, int]
    z_mm: np.ndarray

    @classmethod
    def uniform(cls, origin, spacing, shape) -> Grid:
        """Grid with uniformly spaced planes; ``shape`` is (nz, ny, nx)."""
        origin = np.asarray(origin, dtype=np.float64)
        spacing = np.asarray(spacing, dtype=np.float64)
        nz = int(shape[0])
        z = origin[2] + spacing[2] * np.arange(nz, dtype=np.float64)
        return cls(origin, spacing, (nz, int(shape[1]), int(shape[2])), z)

    @property
    def x_mm(self) -> np.ndarray:
        """(nx,) voxel-centre x coordinates in mm."""
        return self.origin[0] + self.spacing[0] * np.arange(self.shape[2], dtype=np.float64)

    @property
    def y_mm(self) -> np.ndarray:
        """(ny,) voxel-centre y coordinates in mm."""
        return self.origin[1] + self.spacing[1] * np.arange(self.shape[1], dtype=np.float64)

    @property
    def voxel_volume_cc(self) -> float:
        """Nominal voxel volume in cm³."""
        return float(np.prod(self.spacing)) / 1000.0

    def extent_mm(self) -> np.ndarray:
        """(3, 2) array of [min, max] voxel *edges* in mm along x, y, z."""
        x, y, z = self.x_mm, self.y_mm, self.z_mm
        dz_lo = (z[1] - z[0]) / 2 if len(z) > 1 else self.spacing[2] / 2
        dz_hi = (z[-1] - z[-2]) / 2 if len(z) > 1 else self.spacing[2] / 2
        return np.array(
            [
                [x[0] - self.spacing[0] / 2, x[-1] + self.spacing[0] / 2],
                [y[0] - self.spacing[1] / 2, y[-1] + self.spacing[1] / 2],
                [z[0] - dz_lo, z[-1] + dz_hi],
            ]
        )

    def same_geometry(self, other: Grid, tol_mm: float = 1e-3) -> bool:
        """True when both grids have the same shape and voxel positions (within ``tol_mm``)."""
        return (
            self.shape == other.shape
            and np.allclose(self.origin, other.origin, atol=tol_mm)
            and np.allclose(self.spacing, other.spacing, atol=tol_mm)
            and np.allclose(self.z_mm, other.z_mm, atol=tol_mm)
        )


@dataclass
class Structure:
    """One ROI of an RTSTRUCT as closed planar polygons on axial planes.

    Attributes
    ----------
    roi_number : int
    name : str
        ROIName exactly as exported.
    roi_type : str
        RTROIInterpretedType (``PTV``, ``GTV``, ``ORGAN``, ``EXTERNAL``, ...) or ``""``.
    plane_z_mm : (P,) float array
        z of each contour plane, ascending, one entry per distinct plane.
    polygons : list of list of (N, 2) float arrays
        ``polygons[p]`` holds every closed polygon (x, y in mm) of plane ``p``; holes and
        islands follow from the even-odd rule over all polygons of the plane.
    color : tuple of 3 ints or None
    slice_thickness_mm : float or None
        Nominal plane spacing used for end caps and single-plane structures (the CT slice
        thickness, else the modal contour spacing of the structure set).
    """

    roi_number: int
    name: str
    roi_type: str
    plane_z_mm: np.ndarray
    polygons: list[list[np.ndarray]]
    color: tuple[int, int, int] | None = None
    slice_thickness_mm: float | None = None

    @property
    def is_empty(self) -> bool:
        return len(self.plane_z_mm) == 0

    def bounds_mm(self) -> np.ndarray:
        """(3, 2) array [min, max] of the polygon vertices along x, y, z (no slab margin)."""
        pts = np.concatenate([p for plane in self.polygons for p in plane])
        return np.array(
            [
                [pts[:, 0].min(), pts[:, 0].max()],
                [pts[:, 1].min(), pts[:, 1].max()],
                [self.plane_z_mm.min(), self.plane_z_mm.max()],
            ]
        )


@dataclass
class Dose:
    """One RTDOSE grid in Gy.

    Attributes
    ----------
    grid : Grid
    dose_gy : (nz, ny, nx) float32 array
        Dose in Gy after DoseGridScaling, ascending axes.
    summation_type : str
        DoseSummationType (``PLAN``, ``FRACTION``, ``BEAM``, ``MULTI_PLAN``, ...). A ``FRACTION``
        dose is the dose of one fraction: totals are ``dose_gy * fractions``.
    dose_type : str
        DoseType (``PHYSICAL``, ``EFFECTIVE``, ``ERROR``) or ``""`` when absent.
    referenced_plan_uid : str or None
    """

    path: str
    sop_instance_uid: str
    frame_of_reference_uid: str
    grid: Grid
    dose_gy: np.ndarray
    summation_type: str = "PLAN"
    dose_type: str = "PHYSICAL"
    referenced_plan_uid: str | None = None
    comment: str = ""
    series_description: str = ""


@dataclass
class Plan:
    """The parts of an RTPLAN that the evaluation needs.

    ``prescription_gy`` is the total prescription (all fractions) and ``target_roi_number``
    the ROI it is prescribed to, when the plan says so.
    """

    path: str
    sop_instance_uid: str
    label: str
    name: str
    fractions: int | None
    prescription_gy: float | None
    target_roi_number: int | None = None
    referenced_structure_set_uid: str | None = None
    frame_of_reference_uid: str = ""
    #: Every ROI of a TARGET dose reference at the prescription (a plan treating several
    #: targets: one lesion each); empty when the plan names none.
    target_roi_numbers: tuple[int, ...] = ()


@dataclass
class CTSeries:
    """An image series: geometry and files; pixels are read on demand (``load_ct_pixels``)."""

    series_instance_uid: str
    frame_of_reference_uid: str
    grid: Grid
    paths: list[str]
    slice_thickness_mm: float | None = None


@dataclass
class Case:
    """Everything known about one patient in one frame of reference."""

    folder: str
    patient_id: str
    patient_name: str
    study_instance_uid: str
    frame_of_reference_uid: str
    structures: list[Structure]
    doses: list[Dose]
    plans: list[Plan]
    structure_set_path: str | None = None
    structure_set_uid: str | None = None
    ct: CTSeries | None = None
    warnings: list[str] = field(default_factory=list)

    def structure(self, name: str) -> Structure:
        """The structure called ``name`` (exact match); ``KeyError`` when absent."""
        for s in self.structures:
            if s.name == name:
                return s
        raise KeyError(name)

    def plan_for_dose(self, dose: Dose) -> Plan | None:
        """The RTPLAN an RTDOSE references, if it is in the case."""
        for p in self.plans:
            if dose.referenced_plan_uid and p.sop_instance_uid == dose.referenced_plan_uid:
                return p
        return None
