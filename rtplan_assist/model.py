"""The case model: plain dataclasses of numpy arrays, shared by every stage.

Conventions (see ARCHITECTURE.md):

* coordinates are DICOM patient coordinates in mm (x, y, z);
* every voxel array is indexed ``[z, y, x]`` and the loader reorders it so that the
  index increases with the coordinate on every axis (HFS, FFS, HFP and FFP grids all end
  up ascending; oblique grids are refused);
* dose is in Gy, volumes in cm³ (cc).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import StructureNotFoundError


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

    def __repr__(self) -> str:
        nz, ny, nx = self.shape
        dx, dy, dz = (float(v) for v in self.spacing)
        x0, y0 = float(self.origin[0]), float(self.origin[1])
        return (
            f"<Grid {nx}×{ny}×{nz} voxels of {dx:g}×{dy:g}×{dz:g} mm from "
            f"({x0:g}, {y0:g}, {float(self.z_mm[0]):g}) mm>"
        )

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

    def __repr__(self) -> str:
        if self.is_empty:
            where = "no contours"
        else:
            n = sum(len(plane) for plane in self.polygons)
            z = self.plane_z_mm
            where = f"{n} polygon(s) on {len(z)} plane(s), z {float(z[0]):g}..{float(z[-1]):g} mm"
        kind = f" {self.roi_type}" if self.roi_type else ""
        return f"<Structure {self.name!r} (ROI {self.roi_number}{kind}): {where}>"

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

    def __repr__(self) -> str:
        peak = float(np.max(self.dose_gy)) if self.dose_gy.size else float("nan")
        nz, ny, nx = self.grid.shape
        return (
            f"<Dose {Path(self.path).name or self.sop_instance_uid!r}: {self.summation_type} "
            f"{self.dose_type}, max {peak:.4g} Gy on {nx}×{ny}×{nz} voxels>"
        )

    @property
    def is_per_fraction(self) -> bool:
        """DoseSummationType ``FRACTION``: the values are the dose of one fraction."""
        return (self.summation_type or "").upper() == "FRACTION"


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

    def __repr__(self) -> str:
        rx = f"{self.prescription_gy:g} Gy" if self.prescription_gy else "no prescription"
        n = f"{self.fractions} fx" if self.fractions else "no fractions"
        return f"<Plan {self.label or self.name!r}: {rx} in {n}>"


@dataclass
class CTSeries:
    """An image series: geometry and files; pixels are read on demand (``load_ct_pixels``)."""

    series_instance_uid: str
    frame_of_reference_uid: str
    grid: Grid
    paths: list[str]
    slice_thickness_mm: float | None = None

    def __repr__(self) -> str:
        return f"<CTSeries {len(self.paths)} slice(s), {self.grid!r}>"


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

    def __repr__(self) -> str:
        names = [s.name for s in self.structures]
        shown = ", ".join(names[:6]) + (f", ... ({len(names)})" if len(names) > 6 else "")
        plans = ", ".join(p.label or p.name for p in self.plans[:4]) + (
            ", ..." if len(self.plans) > 4 else ""
        )
        return (
            f"<Case patient {self.patient_id!r}: {len(self.structures)} structure(s) [{shown}], "
            f"{len(self.doses)} dose(s), {len(self.plans)} plan(s) [{plans}]"
            + (f", {len(self.warnings)} warning(s)" if self.warnings else "")
            + ">"
        )

    def structure(self, name: str) -> Structure:
        """The structure called ``name`` (exact match).

        Raises
        ------
        StructureNotFoundError
            (a ``KeyError`` too) naming the structures the case has.
        """
        for s in self.structures:
            if s.name == name:
                return s
        raise StructureNotFoundError(name, [s.name for s in self.structures], self.folder)

    def total_dose(self, dose: Dose, fractions: int | None = None) -> tuple[Dose, str]:
        """The whole-plan dose of an RTDOSE, and a note when it had to be made.

        The one place of the FRACTION rule: a ``FRACTION`` dose (DoseSummationType: the dose
        of one fraction) is multiplied by ``fractions`` (default: the number of fractions of
        the RTPLAN it references; the evaluation passes a user's prescription when the plan
        has none) in float32, like the stored dose, and the note says so. Any other dose is returned as
        it is with an empty note; a ``FRACTION`` dose whose plan (or its number of fractions)
        is missing is returned as it is, and the note says that its values are of one fraction.

        Returns
        -------
        dose : Dose
            ``summation_type`` stays as read; ``dose_gy`` is the total.
        note : str
            ``""`` or ``"FILE: DoseSummationType FRACTION: ..."``.
        """
        if not dose.is_per_fraction:
            return dose, ""
        name = Path(dose.path).name if dose.path else dose.sop_instance_uid
        if fractions is None:
            plan = self.plan_for_dose(dose)
            fractions = plan.fractions if plan is not None else None
        if not fractions:
            return dose, (
                f"{name}: DoseSummationType FRACTION and no planned number of fractions: the "
                "values are the dose of one fraction"
            )
        values = dose.dose_gy * np.float32(fractions)
        values.flags.writeable = False  # as the loader's
        total = replace(dose, dose_gy=values)
        return total, (
            f"{name}: DoseSummationType FRACTION: the dose of one fraction was multiplied by "
            f"the {fractions} planned fractions"
        )

    def plan_for_dose(self, dose: Dose) -> Plan | None:
        """The RTPLAN an RTDOSE references, if it is in the case."""
        for p in self.plans:
            if dose.referenced_plan_uid and p.sop_instance_uid == dose.referenced_plan_uid:
                return p
        return None
