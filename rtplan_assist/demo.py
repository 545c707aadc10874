"""Built-in synthetic demo patient, written as real DICOM (CT, RTSTRUCT, RTPLAN, RTDOSE).

A patient with oligoresidual NSCLC after chemo-immunotherapy: five residual lesions in three
organs (lung, mediastinal node, liver, bone), one plan and one dose per lesion. Everything is
analytic (ellipses, ellipsoids, tubes), so the expected volumes, distances and doses are known.

API
---
:func:`write_demo_patient` writes ``<out_dir>/RTPA-DEMO-<seed:04d>/`` and returns it;
:func:`demo_case_folder` returns a cached copy of seed 0 for the app and the CLI;
:data:`DEMO_LESIONS` labels the lesions; :data:`DEMO_NAME_QUIRKS` lists the non-TG-263 names.

Files (one study, one frame of reference, PatientID ``RTPA-DEMO-<seed>``, "Demo^Patient")
-------------------------------------------------------------------------------------------
* ``CT.1.dcm`` ... ``CT.100.dcm``: HFS axial CT, 224 x 224 pixels of 1.5 mm (FOV 336 mm;
  the body is 310 x 216 mm), 100 planes of 3 mm at z = -148.5 ... +148.5 mm, int16 with
  RescaleIntercept -1024. HU: air -1000, subcutaneous fat -90, soft tissue 40, lungs -820,
  liver 60, bone 700, tumours 25-40 (vertebral lesion 300), Gaussian noise 8 HU (seeded).
  The brief's 256 x 256 example was cropped to 224 x 224 to keep the patient under 30 MB.
* ``RS.dcm``: RTSTRUCT on the CT planes, CLOSED_PLANAR outlines with a vertex every
  0.5 + perimeter/300 mm (0.7 mm on a 2 cm GTV, 2 mm on the body), coordinates to 0.01 mm.
* ``RP.L<i>.dcm``: RTPLAN per lesion, RTPlanGeometry PATIENT, one fraction group, one TARGET
  dose reference pointing at the PTV ROI, TargetPrescriptionDose = total dose in Gy; no beams.
* ``RD.L<i>.dcm``: RTDOSE per plan, PHYSICAL, GY, PLAN, uint16 with DoseGridScaling on a
  2.5 mm isotropic grid covering the whole External (x -155..155, y -107.5..107.5,
  z -150..150 mm; 125 x 87 x 121 voxels), GridFrameOffsetVector relative (0, 2.5, ...).

Coordinates (DICOM patient, mm, HFS): +x patient left, +y posterior, +z superior.

Anatomy
-------
* External: elliptic cylinder 155 x 108 mm (semi-axes) over the whole scan.
* Chestwall (z -60..150): annulus between ellipses 152 x 105 and 140 x 93 mm, written as an
  outer and an inner contour on each plane (a hole by the even-odd rule).
* Rib: two lateral arcs (left and right: two contours per plane) in the chest wall between
  ellipses 142.5 x 95.5 and 148.5 x 101.5 mm, 9 mm of rib then 12 mm of intercostal space.
* Lung_R, Lung_L: ellipsoids centred (-80, 8, 50) and (72, 8, 50), semi-axes (52, 60, 95) and
  (45, 60, 95) mm (z -45..145). Lungs: both, two contours per plane.
* LUNGS-ITV's: the lungs with GTV_1 and GTV_2 (ITV = GTV here) cut out as holes.
* Heart: ellipsoid (6, -40, -10), semi-axes (38, 32, 38). Trachea: circle r 9 mm at (0, 8) from
  the carina (z 25) up. AirWay_Prox: the distal 2 cm of trachea (overlapping Trachea), then
  the main bronchi as two oblique tubes r 6.5 mm from (+-8.5, 8, 24) to (+-22, 10, 6).
* Esophagus: circle r 7 mm at (20, 30) down to z -40, then a tube to (52, -8, -64) next to the
  stomach. GreatVes: ascending aorta r 13 at (-8, -30), z 30..95, and descending aorta r 10 at
  (28, 66), z -150..95 (two contours per plane; no arch).
* Vertebral bodies: a bone column r 15 mm at (0, 58) (CT only, no ROI).
  "Spinal Cord": circle r 5 mm at (0, 82) over the whole scan.
* BrachialPlex_R: tube r 5 mm over the right lung apex, (-30, 55, 149) to (-80, 55, 125).
* Liver: ellipsoid (-40, -15, -115), semi-axes (85, 62, 72) (top at z -43). Stomach: ellipsoid
  (78, -25, -95), semi-axes (28, 28, 38). Kidney_L/R: ellipsoids (+-70, 62, -125), (22, 14, 45).
* No two organs overlap except on purpose (Lungs/Lung_L/Lung_R/LUNGS-ITV's, Trachea and
  AirWay_Prox, Rib inside Chestwall, lesions inside their organ, PTV_3 over the bronchi).

Lesions (seed 0; PTV = GTV + 5 mm, spheres)
-------------------------------------------
=====  ==================  =====================  =======  ============  ====================
id     site                centre (mm)            GTV r    plan          closest OARs to PTV
=====  ==================  =====================  =======  ============  ====================
L1     RUL, peripheral     (-116, -5, 79.5)       10 mm    54 Gy / 3     Lung_R, Chestwall
                                                  4.2 cc                 8.7 mm, Rib 12 mm
L2     LUL, central        (44.6, 21.7, 7.5)      10 mm    60 Gy / 8     AirWay_Prox 3.6 mm,
                                                  4.2 cc                 Esophagus 4.0 mm
L3     subcarinal node     (0, 18, 12)            8 mm     50 Gy / 5     AirWay_Prox overlap,
                                                  2.1 cc                 Trachea 3.0, Esoph. 3.4
L4     liver (left part)   (22, -20, -97.5)       12.5 mm  50 Gy / 5     Stomach 10.8 mm
                                                  8.2 cc
L5     T8 vertebral body   (0, 60, -46.5)         8.5 mm   27 Gy / 3     Spinal Cord 3.5 mm,
       (posterior half)                           2.6 cc                 GreatVes 5 mm
=====  ==================  =====================  =======  ============  ====================

L2 is the lesion a recommendation should de-escalate (60 Gy/8 next to the proximal airway and
the oesophagus); its centre is solved so that the PTV surface is 4 mm (3.5-4.5 mm for other
seeds) from the oesophagus and from the axis of the left main bronchus minus its radius (the
oblique bronchus's flat end brings the contours ~0.5 mm closer). L5's PTV surface is 3.5 mm (3-4 mm) in front of the cord surface. Distances in the table are
vertex-to-vertex minima of the written contours.

Other seeds scale the GTV radii by 0.9-1.1 and move L1, L3, L4 by up to 1.5 mm (L3 by 0.75 mm
in x and y), keeping every GTV inside its organ; names, plans and regimens do not change.

Dose model (per plan, relative to the prescription Rx, d = distance to the PTV surface)
--------------------------------------------------------------------------------------
Inside the PTV ``1.2 - 0.2 (r/R)^2`` (1.2 Rx at the centre, Rx on the surface, D95% = 1.007 Rx);
outside ``1 / (1 + (d / 9 mm)^1.355)``: 50 % at 9 mm, 20 % at 25 mm, 4 % at 100 mm. Smooth,
non-negative, no dose from the other lesions' plans.

Names written on purpose the way real exports write them
-------------------------------------------------------
* ``"Spinal Cord"`` is the cord itself; there is no ``SpinalCord`` ROI, so the evaluation
  has to go through the alias table (TG-263: ``SpinalCord``).
* ``"LUNGS-ITV's"`` (TG-263: ``Lungs-ITV``), interpreted type AVOIDANCE.
* Everything else uses TG-263 names (AirWay_Prox, not Bronchus_Prox; BrachialPlex_R; Rib).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    RTDoseStorage,
    RTPlanStorage,
    RTStructureSetStorage,
)

__all__ = [
    "DEMO_LESIONS",
    "DEMO_NAME_QUIRKS",
    "DEMO_VERSION",
    "DemoLesion",
    "demo_case_folder",
    "demo_file_names",
    "write_demo_patient",
]

DEMO_VERSION = "v2"
DEMO_MAP_FILE = "rtplan-assist-map.csv"  # rtplan_assist.names.FOLDER_MAP_FILE
"""Bumped whenever the written files change; part of the cache folder name and the UIDs."""

# --- CT grid (HFS, axial): 224 x 224 pixels of 1.5 mm (FOV 336 mm), 100 planes of 3 mm -------
_CT_ROWS = 224
_CT_COLS = 224
_CT_PIXEL_MM = 1.5
_CT_SLICE_MM = 3.0
_CT_NZ = 100
_CT_X0_MM = -(_CT_COLS - 1) * _CT_PIXEL_MM / 2  # centre of the first column, -167.25 mm
_CT_Y0_MM = -(_CT_ROWS - 1) * _CT_PIXEL_MM / 2
_CT_Z0_MM = -(_CT_NZ - 1) * _CT_SLICE_MM / 2  # -148.5 mm
_HU_INTERCEPT = -1024.0

# --- dose grid: 2.5 mm isotropic box around the External --------------------------------------
_DOSE_MM = 2.5
_DOSE_ORIGIN_MM = (-155.0, -107.5, -150.0)
_DOSE_SHAPE = (121, 87, 125)  # (nz, ny, nx): x -155..155, y -107.5..107.5, z -150..150

# --- fixed dates (deterministic output) ---------------------------------------------------------
_STUDY_DATE = "20250106"
_STUDY_TIME = "083000"
_PLAN_DATE = "20250110"
_PLAN_TIME = "141500"

# --- body outline (elliptic cylinder over the whole scan) ---------------------------------------
_BODY_SEMI_MM = (155.0, 108.0)
_SUBCUT_SEMI_MM = (152.0, 105.0)  # inside: muscle/organs; between: subcutaneous fat
_CHESTWALL_INNER_MM = (140.0, 93.0)
_RIB_INNER_MM = (142.5, 95.5)
_RIB_OUTER_MM = (148.5, 101.5)
_THORAX_Z_MM = (-60.0, 150.0)  # Chestwall planes
_RIB_Z_MM = (-60.0, 132.0)

_CORD_CENTRE_MM = (0.0, 82.0)
_CORD_RADIUS_MM = 5.0
_VB_CENTRE_MM = (0.0, 58.0)
_VB_RADIUS_MM = 15.0
_TRACHEA_CENTRE_MM = (0.0, 8.0)
_TRACHEA_RADIUS_MM = 9.0
_CARINA_Z_MM = 25.0
_ESOPHAGUS_CENTRE_MM = (20.0, 30.0)
_ESOPHAGUS_RADIUS_MM = 7.0
_BRONCHUS_RADIUS_MM = 6.5
_BRONCHUS_L = ((8.5, 8.0, 24.0), (22.0, 10.0, 6.0))
_BRONCHUS_R = ((-8.5, 8.0, 24.0), (-22.0, 10.0, 6.0))
_LUNG_R = ((-80.0, 8.0, 50.0), (52.0, 60.0, 95.0))
_LUNG_L = ((72.0, 8.0, 50.0), (45.0, 60.0, 95.0))
_LIVER = ((-40.0, -15.0, -115.0), (85.0, 62.0, 72.0))

_PTV_MARGIN_MM = 5.0


@dataclass(frozen=True)
class DemoLesion:
    """One treated lesion of the demo patient and the plan written for it.

    Attributes
    ----------
    lesion_id : str
        ``"L1"`` ... ``"L5"``; also the infix of the file names ``RP.L1.dcm``/``RD.L1.dcm``.
    label : str
        RTPlanLabel of its plan (``"L1 RUL"``).
    site : str
        ``"lung"``, ``"mediastinal node"``, ``"liver"`` or ``"bone"``.
    organ : str
        Structure (as named in the RTSTRUCT) that contains the GTV.
    gtv, ptv : str
        ROI names of the target volumes (PTV = GTV + 5 mm, isotropic).
    fractions : int
        Planned number of fractions.
    dose_gy : float
        Planned total prescription dose to the PTV in Gy (``TargetPrescriptionDose``).
    nearby_oars : tuple of str
        Organs at risk within about 2 cm of the PTV, closest first, as named in the RTSTRUCT.
    description : str
        One line for labels and reports.
    """

    lesion_id: str
    label: str
    site: str
    organ: str
    gtv: str
    ptv: str
    fractions: int
    dose_gy: float
    nearby_oars: tuple[str, ...]
    description: str

    @property
    def dose_per_fraction_gy(self) -> float:
        """Planned dose per fraction in Gy."""
        return self.dose_gy / self.fractions


DEMO_LESIONS: tuple[DemoLesion, ...] = (
    DemoLesion(
        "L1", "L1 RUL", "lung", "Lung_R", "GTV_1", "PTV_1", 3, 54.0,
        ("Lung_R", "LUNGS-ITV's", "Chestwall", "Rib"),
        "Peripheral right upper lobe lesion, ~2 cm; PTV ~9 mm from the chest wall",
    ),
    DemoLesion(
        "L2", "L2 LUL central", "lung", "Lung_L", "GTV_2", "PTV_2", 8, 60.0,
        ("AirWay_Prox", "Esophagus", "Lung_L", "LUNGS-ITV's", "GreatVes"),
        "Central left lung lesion below the carina; PTV 3.5-4.5 mm from the left main "
        "bronchus and the oesophagus",
    ),
    DemoLesion(
        "L3", "L3 subcarinal", "mediastinal node", "mediastinum", "GTV_3", "PTV_3", 5, 50.0,
        ("AirWay_Prox", "Trachea", "Esophagus", "Heart"),
        "Subcarinal lymph node (station 7) between the main bronchi (PTV overlaps them), "
        "~4 mm from the oesophagus",
    ),
    DemoLesion(
        "L4", "L4 liver", "liver", "Liver", "GTV_4", "PTV_4", 5, 50.0,
        ("Liver", "Stomach"),
        "Liver lesion, ~2.5 cm, in the left part of the liver ~1 cm from the stomach",
    ),
    DemoLesion(
        "L5", "L5 T8 vertebra", "bone", "vertebral body", "GTV_5", "PTV_5", 3, 27.0,
        ("Spinal Cord", "GreatVes", "Esophagus"),
        "Lesion in the posterior half of a lower thoracic vertebral body; PTV 3-4 mm from "
        "the spinal cord",
    ),
)
"""The five lesions of the demo patient (same for every seed; sizes and positions vary)."""

DEMO_NAME_QUIRKS: dict[str, str] = {
    "Spinal Cord": "SpinalCord",
    "LUNGS-ITV's": "Lungs-ITV",
}
"""ROI names written the way real exports write them, mapped to their TG-263 name."""


# =============================================================================================
# Geometry: analytic solids cut by the axial CT planes
# =============================================================================================


@dataclass(frozen=True)
class _EllipseSection:
    """Ellipse in an axial plane: centre (mm), unit first axis, semi-axes along it and across."""

    cx: float
    cy: float
    ux: float
    uy: float
    semi_u: float
    semi_v: float

    def perimeter_mm(self) -> float:
        a, b = self.semi_u, self.semi_v
        h = ((a - b) / (a + b)) ** 2
        return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))  # Ramanujan II

    def outline(self) -> np.ndarray:
        """(N, 2) vertices in mm, counter-clockwise in (x, y), first vertex not repeated."""
        n = _vertex_count(self.perimeter_mm())
        t = 2 * np.pi * np.arange(n) / n
        cu, cv = self.semi_u * np.cos(t), self.semi_v * np.sin(t)
        x = self.cx + cu * self.ux - cv * self.uy
        y = self.cy + cu * self.uy + cv * self.ux
        return np.column_stack([x, y])

    def bounds_mm(self) -> tuple[float, float, float, float]:
        """(xmin, xmax, ymin, ymax) in mm."""
        hx = math.hypot(self.semi_u * self.ux, self.semi_v * self.uy)
        hy = math.hypot(self.semi_u * self.uy, self.semi_v * self.ux)
        return (self.cx - hx, self.cx + hx, self.cy - hy, self.cy + hy)

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx, dy = x - self.cx, y - self.cy
        u = dx * self.ux + dy * self.uy
        v = -dx * self.uy + dy * self.ux
        return (u / self.semi_u) ** 2 + (v / self.semi_v) ** 2 <= 1.0


@dataclass(frozen=True)
class _ArcBandSection:
    """Band between two concentric ellipses, limited to parameter angles ``t0 .. t1`` (rad)."""

    inner: tuple[float, float]
    outer: tuple[float, float]
    t0: float
    t1: float

    def outline(self) -> np.ndarray:
        arc_mm = (self.t1 - self.t0) * 0.5 * (sum(self.outer) + sum(self.inner)) / 2
        n = max(16, _vertex_count(arc_mm))
        t = np.linspace(self.t0, self.t1, n)
        outer = np.column_stack([self.outer[0] * np.cos(t), self.outer[1] * np.sin(t)])
        t = t[::-1]
        inner = np.column_stack([self.inner[0] * np.cos(t), self.inner[1] * np.sin(t)])
        return np.vstack([outer, inner])

    def bounds_mm(self) -> tuple[float, float, float, float]:
        """(xmin, xmax, ymin, ymax) in mm (of the whole outer ellipse)."""
        return (-self.outer[0], self.outer[0], -self.outer[1], self.outer[1])

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r_out = (x / self.outer[0]) ** 2 + (y / self.outer[1]) ** 2
        r_in = (x / self.inner[0]) ** 2 + (y / self.inner[1]) ** 2
        t = np.arctan2(y / self.outer[1], x / self.outer[0])
        t = np.where(t < self.t0, t + 2 * np.pi, t)
        return (r_out <= 1.0) & (r_in > 1.0) & (t <= self.t1)


def _vertex_count(perimeter_mm: float) -> int:
    """Vertices for a closed outline of the given perimeter (mm).

    The spacing grows with the size: 0.5 mm + perimeter / 300, at most 2 mm (0.7 mm for a 2 cm
    GTV, 1 mm for a 5 cm circle, 2 mm for the body outline, where the chord error is then
    < 0.01 mm), so that targets are smooth and the file stays small; at least 24 vertices.
    """
    spacing = min(2.0, 0.5 + perimeter_mm / 300.0)
    return max(24, math.ceil(perimeter_mm / spacing))


class _Solid:
    """A 3-D shape that knows its cross-section in an axial plane."""

    def section(self, z: float) -> _EllipseSection | _ArcBandSection | None:
        raise NotImplementedError


@dataclass(frozen=True)
class _Ellipsoid(_Solid):
    centre: tuple[float, float, float]
    semi: tuple[float, float, float]
    min_semi_mm: float = 1.0

    def section(self, z: float) -> _EllipseSection | None:
        cx, cy, cz = self.centre
        a, b, c = self.semi
        q = 1.0 - ((z - cz) / c) ** 2
        if q <= 0:
            return None
        s = math.sqrt(q)
        if min(a, b) * s < self.min_semi_mm:
            return None
        return _EllipseSection(cx, cy, 1.0, 0.0, a * s, b * s)

    def distance_mm(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Signed distance to the surface of a sphere (semi-axes equal), negative inside."""
        r = self.semi[0]
        return np.sqrt((x - self.centre[0]) ** 2 + (y - self.centre[1]) ** 2
                       + (z - self.centre[2]) ** 2) - r


@dataclass(frozen=True)
class _Column(_Solid):
    """Elliptic cylinder along z between ``z0`` and ``z1`` (mm, inclusive)."""

    cx: float
    cy: float
    a: float
    b: float
    z0: float
    z1: float

    def section(self, z: float) -> _EllipseSection | None:
        if not self.z0 <= z <= self.z1:
            return None
        return _EllipseSection(self.cx, self.cy, 1.0, 0.0, self.a, self.b)


@dataclass(frozen=True)
class _Tube(_Solid):
    """Oblique circular cylinder of radius ``r`` from ``p0`` to ``p1`` (flat ends at their z)."""

    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    r: float

    def section(self, z: float) -> _EllipseSection | None:
        p0, p1 = np.asarray(self.p0), np.asarray(self.p1)
        lo, hi = sorted((p0[2], p1[2]))
        if not lo <= z <= hi:
            return None
        d = p1 - p0
        t = (z - p0[2]) / d[2]
        c = p0 + t * d
        u = d / np.linalg.norm(d)
        horiz = math.hypot(u[0], u[1])
        ux, uy = (u[0] / horiz, u[1] / horiz) if horiz > 1e-9 else (1.0, 0.0)
        return _EllipseSection(float(c[0]), float(c[1]), ux, uy, self.r / abs(u[2]), self.r)

    def distance_to_axis_mm(self, p: np.ndarray) -> float:
        """Distance (mm) from point ``p`` (3,) to the axis segment."""
        p0, p1 = np.asarray(self.p0), np.asarray(self.p1)
        d = p1 - p0
        t = float(np.clip(np.dot(p - p0, d) / np.dot(d, d), 0.0, 1.0))
        return float(np.linalg.norm(p - (p0 + t * d)))


@dataclass(frozen=True)
class _RibBand(_Solid):
    """Lateral rib arcs on rib levels only: 9 mm of rib, 12 mm of intercostal space."""

    t0: float
    t1: float

    def section(self, z: float) -> _ArcBandSection | None:
        if not _RIB_Z_MM[0] <= z <= _RIB_Z_MM[1]:
            return None
        k = round((z - _CT_Z0_MM) / _CT_SLICE_MM)
        if k % 7 >= 3:
            return None
        return _ArcBandSection(_RIB_INNER_MM, _RIB_OUTER_MM, self.t0, self.t1)


@dataclass
class _Structure:
    """One ROI: union of disjoint parts minus holes that lie inside the parts."""

    name: str
    roi_type: str
    colour: tuple[int, int, int]
    parts: list[_Solid]
    holes: list[_Solid] = field(default_factory=list)

    def sections(self, z: float) -> tuple[list, list]:
        parts = [s for s in (p.section(z) for p in self.parts) if s is not None]
        holes = [s for s in (h.section(z) for h in self.holes) if s is not None] if parts else []
        return parts, holes

    def contains(self, z: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        parts, holes = self.sections(z)
        inside = np.zeros(np.broadcast(x, y).shape, dtype=bool)
        for s in parts:
            inside |= s.contains(x, y)
        for s in holes:
            inside &= ~s.contains(x, y)
        return inside


@dataclass(frozen=True)
class _LesionGeometry:
    """Resolved position and size of one lesion (mm)."""

    centre: tuple[float, float, float]
    gtv_radius_mm: float

    @property
    def ptv_radius_mm(self) -> float:
        return self.gtv_radius_mm + _PTV_MARGIN_MM

    def gtv(self) -> _Ellipsoid:
        r = self.gtv_radius_mm
        return _Ellipsoid(self.centre, (r, r, r))

    def ptv(self) -> _Ellipsoid:
        r = self.ptv_radius_mm
        return _Ellipsoid(self.centre, (r, r, r))


def _ct_planes_mm() -> np.ndarray:
    """(100,) z of the CT planes in mm, ascending."""
    return _CT_Z0_MM + _CT_SLICE_MM * np.arange(_CT_NZ)


def _bronchus_l() -> _Tube:
    return _Tube(_BRONCHUS_L[0], _BRONCHUS_L[1], _BRONCHUS_RADIUS_MM)


def _bronchus_r() -> _Tube:
    return _Tube(_BRONCHUS_R[0], _BRONCHUS_R[1], _BRONCHUS_RADIUS_MM)


def _solve_l2_centre(ptv_radius_mm: float, z_mm: float, gap_esophagus_mm: float,
                     gap_airway_mm: float) -> tuple[float, float, float]:
    """Place L2 so that its PTV is the given gaps (mm) from the oesophagus and the bronchus.

    Two circle-distance conditions in the plane ``z_mm`` solved by Newton iteration from a
    fixed start (deterministic).
    """
    ex, ey = _ESOPHAGUS_CENTRE_MM
    bronchus = _bronchus_l()
    target_e = ptv_radius_mm + _ESOPHAGUS_RADIUS_MM + gap_esophagus_mm
    target_b = ptv_radius_mm + _BRONCHUS_RADIUS_MM + gap_airway_mm
    p = np.array([45.0, 21.0])

    def residual(q: np.ndarray) -> np.ndarray:
        r_e = math.hypot(q[0] - ex, q[1] - ey) - target_e
        r_b = bronchus.distance_to_axis_mm(np.array([q[0], q[1], z_mm])) - target_b
        return np.array([r_e, r_b])

    for _ in range(50):
        f = residual(p)
        if np.max(np.abs(f)) < 1e-6:
            break
        jac = np.empty((2, 2))
        for j in range(2):
            dp = np.zeros(2)
            dp[j] = 1e-4
            jac[:, j] = (residual(p + dp) - f) / 1e-4
        p = p - np.linalg.solve(jac, f)
    return (float(p[0]), float(p[1]), z_mm)


def _lesion_geometry(seed: int) -> list[_LesionGeometry]:
    """Positions and GTV radii (mm) of L1..L5 for ``seed``; seed 0 is the nominal patient."""
    rng = np.random.default_rng([seed, 7321])
    if seed == 0:
        scale = np.ones(5)
        jitter = np.zeros((5, 3))
        gaps = np.array([4.0, 4.0, 3.5])
    else:
        scale = rng.uniform(0.9, 1.1, size=5)
        jitter = rng.uniform(-1.5, 1.5, size=(5, 3))
        gaps = np.array([rng.uniform(3.5, 4.5), rng.uniform(3.5, 4.5), rng.uniform(3.0, 4.0)])
    r = np.array([10.0, 10.0, 8.0, 12.5, 8.5]) * scale
    # L1: peripheral right upper lobe
    l1 = (-116.0 + jitter[0, 0], -5.0 + jitter[0, 1], 79.5 + jitter[0, 2])
    # L2: central left lung, solved against the oesophagus and the left main bronchus
    l2 = _solve_l2_centre(r[1] + _PTV_MARGIN_MM, 7.5, gaps[0], gaps[1])
    # L3: subcarinal node, between the main bronchi, anterior to the oesophagus
    l3 = (0.0 + 0.5 * jitter[2, 0], 18.0 + 0.5 * jitter[2, 1], 12.0 + jitter[2, 2])
    # L4: liver, left part, towards the stomach
    l4 = (22.0 + jitter[3, 0], -20.0 + jitter[3, 1], -97.5 + jitter[3, 2])
    # L5: posterior vertebral body; PTV surface `gaps[2]` mm in front of the cord surface
    cord_front = _CORD_CENTRE_MM[1] - _CORD_RADIUS_MM
    l5 = (0.0, cord_front - gaps[2] - (r[4] + _PTV_MARGIN_MM), -46.5 + jitter[4, 2])
    centres = [tuple(float(v) for v in c) for c in (l1, l2, l3, l4, l5)]
    return [_LesionGeometry(c, float(rad)) for c, rad in zip(centres, r)]


def _anatomy(lesions: list[_LesionGeometry]) -> list[_Structure]:
    """All ROIs in RTSTRUCT order (ROI number = index + 1)."""
    zmin, zmax = -200.0, 200.0
    lung_r = _Ellipsoid(*_LUNG_R)
    lung_l = _Ellipsoid(*_LUNG_L)
    deg = math.pi / 180
    esophagus_top = (*_ESOPHAGUS_CENTRE_MM, -40.0)
    trachea = _Column(*_TRACHEA_CENTRE_MM, _TRACHEA_RADIUS_MM, _TRACHEA_RADIUS_MM,
                      _CARINA_Z_MM, zmax)
    structures = [
        _Structure("External", "EXTERNAL", (0, 255, 0), [_Column(0, 0, *_BODY_SEMI_MM, zmin, zmax)]),
        _Structure("Lungs", "ORGAN", (0, 128, 255), [lung_r, lung_l]),
        _Structure("Lung_L", "ORGAN", (0, 160, 255), [lung_l]),
        _Structure("Lung_R", "ORGAN", (0, 96, 255), [lung_r]),
        _Structure("LUNGS-ITV's", "AVOIDANCE", (64, 160, 200), [lung_r, lung_l],
                   holes=[lesions[0].gtv(), lesions[1].gtv()]),
        _Structure("Heart", "ORGAN", (255, 0, 128),
                   [_Ellipsoid((6.0, -40.0, -10.0), (38.0, 32.0, 38.0))]),
        _Structure("Esophagus", "ORGAN", (160, 96, 32), [
            _Column(*_ESOPHAGUS_CENTRE_MM, _ESOPHAGUS_RADIUS_MM, _ESOPHAGUS_RADIUS_MM,
                    -39.0, zmax),
            _Tube(esophagus_top, (52.0, -8.0, -64.0), _ESOPHAGUS_RADIUS_MM),
        ]),
        _Structure("Spinal Cord", "ORGAN", (255, 255, 0),
                   [_Column(*_CORD_CENTRE_MM, _CORD_RADIUS_MM, _CORD_RADIUS_MM, zmin, zmax)]),
        _Structure("Trachea", "ORGAN", (128, 255, 255), [trachea]),
        _Structure("AirWay_Prox", "ORGAN", (0, 255, 255), [
            _Column(*_TRACHEA_CENTRE_MM, _TRACHEA_RADIUS_MM, _TRACHEA_RADIUS_MM,
                    _CARINA_Z_MM, _CARINA_Z_MM + 20.0),
            _bronchus_l(),
            _bronchus_r(),
        ]),
        _Structure("GreatVes", "ORGAN", (255, 64, 64), [
            _Column(-8.0, -30.0, 13.0, 13.0, 30.0, 95.0),  # ascending aorta
            _Column(28.0, 66.0, 10.0, 10.0, zmin, 95.0),  # descending aorta
        ]),
        _Structure("Chestwall", "ORGAN", (200, 128, 255),
                   [_Column(0, 0, *_SUBCUT_SEMI_MM, *_THORAX_Z_MM)],
                   holes=[_Column(0, 0, *_CHESTWALL_INNER_MM, *_THORAX_Z_MM)]),
        _Structure("Rib", "ORGAN", (240, 240, 200),
                   [_RibBand(100 * deg, 260 * deg), _RibBand(-80 * deg, 80 * deg)]),
        _Structure("BrachialPlex_R", "ORGAN", (255, 160, 0),
                   [_Tube((-30.0, 55.0, 149.0), (-80.0, 55.0, 125.0), 5.0)]),
        _Structure("Liver", "ORGAN", (160, 80, 0), [_Ellipsoid(*_LIVER)]),
        _Structure("Stomach", "ORGAN", (255, 160, 160),
                   [_Ellipsoid((78.0, -25.0, -95.0), (28.0, 28.0, 38.0))]),
        _Structure("Kidney_L", "ORGAN", (200, 100, 50),
                   [_Ellipsoid((70.0, 62.0, -125.0), (22.0, 14.0, 45.0))]),
        _Structure("Kidney_R", "ORGAN", (150, 100, 50),
                   [_Ellipsoid((-70.0, 62.0, -125.0), (22.0, 14.0, 45.0))]),
    ]
    gtv_colours = [(255, 0, 0), (255, 64, 0), (255, 0, 64), (200, 0, 0), (255, 96, 96)]
    ptv_colours = [(0, 0, 255), (64, 0, 255), (0, 64, 255), (0, 0, 200), (96, 96, 255)]
    for i, lesion in enumerate(lesions, start=1):
        structures.append(_Structure(f"GTV_{i}", "GTV", gtv_colours[i - 1], [lesion.gtv()]))
    for i, lesion in enumerate(lesions, start=1):
        structures.append(_Structure(f"PTV_{i}", "PTV", ptv_colours[i - 1], [lesion.ptv()]))
    return structures


# =============================================================================================
# Images: CT numbers and the analytic dose
# =============================================================================================


def _ct_hu(structures: list[_Structure], lesions: list[_LesionGeometry], seed: int) -> np.ndarray:
    """(100, 256, 256) int16 CT numbers in HU, indexed [z, row (y), column (x)]."""
    by_name = {s.name: s for s in structures}
    x = _CT_X0_MM + _CT_PIXEL_MM * np.arange(_CT_COLS)
    y = _CT_Y0_MM + _CT_PIXEL_MM * np.arange(_CT_ROWS)
    xx, yy = np.meshgrid(x, y)  # [row, col]
    rng = np.random.default_rng([seed, 104])
    trachea_lumen = _Column(*_TRACHEA_CENTRE_MM, _TRACHEA_RADIUS_MM - 2, _TRACHEA_RADIUS_MM - 2,
                            _CARINA_Z_MM, 200.0)
    bronchus_lumens = [_Tube(b[0], b[1], _BRONCHUS_RADIUS_MM - 2) for b in (_BRONCHUS_L, _BRONCHUS_R)]
    vb = _Column(*_VB_CENTRE_MM, _VB_RADIUS_MM, _VB_RADIUS_MM, -200.0, 200.0)
    canal = _Column(*_CORD_CENTRE_MM, 7.5, 7.5, -200.0, 200.0)
    arch = _Column(*_CORD_CENTRE_MM, 11.5, 11.5, -200.0, 200.0)
    spinous = _Column(0.0, 96.0, 4.0, 7.0, -200.0, 200.0)
    muscle = _Column(0, 0, *_SUBCUT_SEMI_MM, -200.0, 200.0)
    # (solid or structure, HU), painted in this order
    layers: list[tuple[object, float]] = [
        (by_name["External"], -90.0),  # subcutaneous fat
        (muscle, 40.0),
        (by_name["Lungs"], -820.0),
        (by_name["Heart"], 40.0),
        (by_name["GreatVes"], 45.0),
        (by_name["Esophagus"], 35.0),
        (by_name["Trachea"], 40.0),
        (by_name["AirWay_Prox"], 40.0),
        (trachea_lumen, -1000.0),
        *[(lumen, -1000.0) for lumen in bronchus_lumens],
        (by_name["Liver"], 60.0),
        (by_name["Stomach"], 20.0),
        (by_name["Kidney_L"], 35.0),
        (by_name["Kidney_R"], 35.0),
        (vb, 700.0),
        (arch, 700.0),
        (spinous, 700.0),
        (by_name["Rib"], 700.0),
        (canal, 15.0),
        (by_name["Spinal Cord"], 30.0),
        (lesions[0].gtv(), 35.0),
        (lesions[1].gtv(), 35.0),
        (lesions[2].gtv(), 40.0),
        (lesions[3].gtv(), 25.0),  # hypodense in liver
        (lesions[4].gtv(), 300.0),  # lytic-mixed in bone
    ]
    hu = np.full((_CT_NZ, _CT_ROWS, _CT_COLS), -1000.0, dtype=np.float32)
    body = by_name["External"]
    for k, z in enumerate(_ct_planes_mm()):
        plane = hu[k]
        for what, value in layers:
            if isinstance(what, _Structure):
                sections, holes = what.sections(z)
                assert not holes, "painted structures have no holes"
            else:
                sections = [s for s in (what.section(z),) if s is not None]
            for section in sections:
                # paint only the pixels of the bounding box: 10x faster than whole planes
                x0, x1, y0, y1 = section.bounds_mm()
                c0, c1 = np.searchsorted(x, [x0, x1])
                r0, r1 = np.searchsorted(y, [y0, y1])
                window = plane[r0:r1, c0:c1]
                window[section.contains(xx[r0:r1, c0:c1], yy[r0:r1, c0:c1])] = value
        inside = body.contains(z, xx, yy)
        plane[inside] += rng.normal(0.0, 8.0, size=int(inside.sum())).astype(np.float32)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def _dose_grid_mm() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-centre coordinates (x, y, z) in mm of the dose grid, each ascending."""
    nz, ny, nx = _DOSE_SHAPE
    x0, y0, z0 = _DOSE_ORIGIN_MM
    return (x0 + _DOSE_MM * np.arange(nx), y0 + _DOSE_MM * np.arange(ny),
            z0 + _DOSE_MM * np.arange(nz))


def _relative_dose(distance_mm: np.ndarray, ptv_radius_mm: float) -> np.ndarray:
    """SBRT-like dose relative to the prescription as a function of the distance to the PTV.

    Parameters
    ----------
    distance_mm : ndarray
        Signed distance to the PTV surface in mm (negative inside).
    ptv_radius_mm : float
        PTV radius in mm.

    Returns
    -------
    ndarray
        Dose / prescription, same shape: inside ``1.2 - 0.2 (r/R)^2`` (1.2 at the centre,
        1.0 on the surface, so D95% of a sphere is 1.007); outside ``1 / (1 + (d / 9 mm)^1.355)``
        (0.5 at 9 mm, 0.2 at 25 mm, 0.04 at 100 mm), continuous at the surface.
    """
    rel_r = np.clip((distance_mm + ptv_radius_mm) / ptv_radius_mm, 0.0, None)
    inside = 1.2 - 0.2 * rel_r**2
    d_out = np.clip(distance_mm, 0.0, None)
    outside = 1.0 / (1.0 + (d_out / 9.0) ** 1.355)
    return np.where(distance_mm <= 0, inside, outside)


def _dose_gy(lesion: _LesionGeometry, prescription_gy: float) -> np.ndarray:
    """(nz, ny, nx) float64 dose in Gy on the dose grid for one lesion's plan."""
    x, y, z = _dose_grid_mm()
    cx, cy, cz = lesion.centre
    dist = np.sqrt((z[:, None, None] - cz) ** 2 + (y[None, :, None] - cy) ** 2
                   + (x[None, None, :] - cx) ** 2) - lesion.ptv_radius_mm
    return prescription_gy * _relative_dose(dist, lesion.ptv_radius_mm)


# =============================================================================================
# DICOM writing
# =============================================================================================

_STUDY_ROLE = "study"
_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/rtplan-assist/demo-patient")
_TRAILING_ZEROS = re.compile(r"\.?0+(?=\\|$)")  # "12.50" -> "12.5", "3.00" -> "3"
_RT_STUDY_SOP_CLASS = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management, as TPSs write it


@dataclass(frozen=True)
class _Context:
    """Identity of one demo patient: seed, ID and the UID source."""

    seed: int
    patient_id: str

    def uid(self, *role: str) -> str:
        """Deterministic UID ``2.25.<int>`` for the given role, from the seed and patient ID.

        A name-based (SHA-1, version 5) UUID as an integer under the ``2.25`` root (ISO/IEC
        9834-8). ``pydicom.uid.generate_uid(prefix=None, entropy_srcs=...)`` would ignore the
        sources and return a random UUID in pydicom 3, so it is not used.
        """
        name = "\x1f".join([DEMO_VERSION, self.patient_id, str(self.seed), *role])
        return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"


def demo_file_names() -> list[str]:
    """Names of the files written for one demo patient, in writing order.

    Returns
    -------
    list of str
        ``CT.1.dcm`` ... ``CT.100.dcm``, ``RS.dcm``, ``RP.L1.dcm`` ... ``RP.L5.dcm``,
        ``RD.L1.dcm`` ... ``RD.L5.dcm``.
    """
    names = [f"CT.{k}.dcm" for k in range(1, _CT_NZ + 1)] + ["RS.dcm"]
    names += [f"RP.{lesion.lesion_id}.dcm" for lesion in DEMO_LESIONS]
    names += [f"RD.{lesion.lesion_id}.dcm" for lesion in DEMO_LESIONS]
    names += [DEMO_MAP_FILE]
    return names


def _ds_numbers(tag: int, values: np.ndarray) -> RawDataElement:
    """A DS element with many values in mm, 0.01 mm resolution, trailing zeros dropped.

    Formatted as one string (pydicom's per-value DSfloat objects are ~5x slower).
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    text = ("%.2f\\" * flat.size % tuple(flat.tolist()))[:-1]
    text = _TRAILING_ZEROS.sub("", text)
    if len(text) % 2:
        text += " "
    raw = text.encode("ascii")
    return RawDataElement(Tag(tag), "DS", len(raw), raw, 0, False, True)


def _new_dataset(ctx: _Context, sop_class: str, sop_uid: str, modality: str, series_uid: str,
                 series_number: int, series_description: str) -> Dataset:
    """Patient, study, series, frame of reference, equipment and SOP common modules."""
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.InstanceCreationDate = _STUDY_DATE
    ds.InstanceCreationTime = _STUDY_TIME
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = _STUDY_DATE
    ds.StudyTime = _STUDY_TIME
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.Manufacturer = "rtplan-assist"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Synthetic demo: oligoresidual NSCLC, 5 lesions"
    ds.SeriesDescription = series_description
    ds.ManufacturerModelName = f"synthetic demo patient {DEMO_VERSION}"
    ds.PatientName = "Demo^Patient"
    ds.PatientID = ctx.patient_id
    ds.PatientBirthDate = "19580312"
    ds.PatientSex = "O"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Synthetic data, no real patient"
    ds.SoftwareVersions = f"rtplan-assist demo {DEMO_VERSION}"
    ds.StudyInstanceUID = ctx.uid(_STUDY_ROLE)
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "DEMO"
    ds.SeriesNumber = series_number
    ds.FrameOfReferenceUID = ctx.uid("frame of reference")
    ds.PositionReferenceIndicator = ""
    return ds


def _save(ds: Dataset, path: Path) -> None:
    ds.save_as(path, enforce_file_format=True)


def _write_ct(ctx: _Context, hu: np.ndarray, folder: Path) -> list[str]:
    """Write the CT series; return the SOPInstanceUIDs by plane index."""
    series_uid = ctx.uid("ct series")
    uids = []
    stored = (hu.astype(np.int32) - int(_HU_INTERCEPT)).astype("<i2")
    for k, z in enumerate(_ct_planes_mm()):
        sop_uid = ctx.uid("ct image", str(k))
        uids.append(sop_uid)
        ds = _new_dataset(ctx, CTImageStorage, sop_uid, "CT", series_uid, 1,
                          "Synthetic thorax CT")
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SeriesDate = _STUDY_DATE
        ds.ContentDate = _STUDY_DATE
        ds.AcquisitionDate = _STUDY_DATE
        ds.SeriesTime = _STUDY_TIME
        ds.ContentTime = _STUDY_TIME
        ds.AcquisitionTime = _STUDY_TIME
        ds.PatientPosition = "HFS"
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_CT_X0_MM, _CT_Y0_MM, float(z)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = float(z)
        ds.SliceThickness = _CT_SLICE_MM
        ds.KVP = 120
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = _CT_ROWS
        ds.Columns = _CT_COLS
        ds.PixelSpacing = [_CT_PIXEL_MM, _CT_PIXEL_MM]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        ds.RescaleIntercept = _HU_INTERCEPT
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.PixelData = stored[k].tobytes()
        ds["PixelData"].VR = "OW"
        _save(ds, folder / f"CT.{k + 1}.dcm")
    return uids


def _check_holes(structure: _Structure, z: float, parts: list, holes: list) -> None:
    """Refuse a hole that is not inside a part: even-odd would then add, not cut."""
    for hole in holes:
        outline = hole.outline()
        if not any(np.all(p.contains(outline[:, 0], outline[:, 1])) for p in parts):
            raise RuntimeError(
                f"demo geometry: hole of {structure.name!r} at z = {z} mm leaves its organ; "
                "choose another seed or move the lesion"
            )


def _write_rtstruct(ctx: _Context, structures: list[_Structure], ct_uids: list[str],
                    folder: Path) -> str:
    """Write RS.dcm; return its SOPInstanceUID."""
    sop_uid = ctx.uid("rtstruct")
    frame_uid = ctx.uid("frame of reference")
    ds = _new_dataset(ctx, RTStructureSetStorage, sop_uid, "RTSTRUCT", ctx.uid("rtstruct series"),
                      2, "Structures (synthetic)")
    ds.SeriesDate = _PLAN_DATE
    ds.SeriesTime = _PLAN_TIME
    ds.StructureSetLabel = "DEMO"
    ds.StructureSetName = "Demo structures"
    ds.StructureSetDate = _PLAN_DATE
    ds.StructureSetTime = _PLAN_TIME
    ds.InstanceNumber = 1

    def image_ref(uid: str) -> Dataset:
        item = Dataset()
        item.ReferencedSOPClassUID = CTImageStorage
        item.ReferencedSOPInstanceUID = uid
        return item

    series = Dataset()
    series.SeriesInstanceUID = ctx.uid("ct series")
    series.ContourImageSequence = Sequence([image_ref(u) for u in ct_uids])
    study = Dataset()
    study.ReferencedSOPClassUID = _RT_STUDY_SOP_CLASS
    study.ReferencedSOPInstanceUID = ctx.uid(_STUDY_ROLE)
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = frame_uid
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])

    roi_items, contour_items, observation_items = [], [], []
    planes = _ct_planes_mm()
    for number, structure in enumerate(structures, start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame_uid
        roi.ROIName = structure.name
        roi.ROIGenerationAlgorithm = "MANUAL"
        roi_items.append(roi)

        contours = []
        for k, z in enumerate(planes):
            parts, holes = structure.sections(float(z))
            if holes:
                _check_holes(structure, float(z), parts, holes)
            for section in parts + holes:
                outline = section.outline()
                points = np.column_stack([outline, np.full(len(outline), z)])
                item = Dataset()
                item.ContourImageSequence = Sequence([image_ref(ct_uids[k])])
                item.ContourGeometricType = "CLOSED_PLANAR"
                item.NumberOfContourPoints = len(outline)
                item.ContourNumber = len(contours) + 1
                item[0x30060050] = _ds_numbers(0x30060050, points)
                contours.append(item)
        for item in contours:
            # the raw ContourData is already encoded: let pydicom write it as is (5x faster)
            item.set_original_encoding(False, True, "iso8859")
        roi_contour = Dataset()
        roi_contour.ROIDisplayColor = list(structure.colour)
        roi_contour.ContourSequence = Sequence(contours)
        roi_contour.ReferencedROINumber = number
        contour_items.append(roi_contour)

        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = structure.roi_type
        observation.ROIInterpreter = ""
        observation_items.append(observation)

    ds.StructureSetROISequence = Sequence(roi_items)
    ds.ROIContourSequence = Sequence(contour_items)
    ds.RTROIObservationsSequence = Sequence(observation_items)
    ds.ApprovalStatus = "UNAPPROVED"
    _save(ds, folder / "RS.dcm")
    return sop_uid


def _write_rtplan(ctx: _Context, lesion: DemoLesion, ptv_roi_number: int, rtstruct_uid: str,
                  folder: Path, *, extra_targets: tuple[tuple[str, int], ...] = (),
                  prescription: bool = True) -> str:
    """Write RP.<id>.dcm for one lesion; return its SOPInstanceUID.

    ``extra_targets``: (PTV name, ROI number) of further targets prescribed the same dose in
    this plan (the ``two-targets`` variant); ``prescription=False`` writes the plan as
    RayStation/Monaco exports do (no TargetPrescriptionDose, no ReferencedROINumber)."""
    sop_uid = ctx.uid("rtplan", lesion.lesion_id)
    ds = _new_dataset(ctx, RTPlanStorage, sop_uid, "RTPLAN", ctx.uid("rtplan series",
                      lesion.lesion_id), 10 + int(lesion.lesion_id[1:]), f"Plan {lesion.label}")
    ds.SeriesDate = _PLAN_DATE
    ds.SeriesTime = _PLAN_TIME
    ds.InstanceNumber = 1
    ds.RTPlanLabel = lesion.label
    ds.RTPlanName = f"{lesion.lesion_id} {lesion.dose_gy:g}Gy/{lesion.fractions}fx"
    ds.RTPlanDescription = (f"{lesion.description}. Synthetic demo plan: analytic dose, "
                            "no beams.")
    ds.RTPlanDate = _PLAN_DATE
    ds.RTPlanTime = _PLAN_TIME
    ds.RTPlanGeometry = "PATIENT"
    ds.PrescriptionDescription = (f"{lesion.dose_gy:g} Gy in {lesion.fractions} fractions "
                                  f"to {lesion.ptv} (D95%)")
    structure_ref = Dataset()
    structure_ref.ReferencedSOPClassUID = RTStructureSetStorage
    structure_ref.ReferencedSOPInstanceUID = rtstruct_uid
    ds.ReferencedStructureSetSequence = Sequence([structure_ref])

    refs = []
    for number, (ptv, roi) in enumerate(((lesion.ptv, ptv_roi_number),) + extra_targets, 1):
        dose_ref = Dataset()
        dose_ref.DoseReferenceNumber = number
        dose_ref.DoseReferenceUID = ctx.uid("dose reference", lesion.lesion_id, str(number))
        dose_ref.DoseReferenceStructureType = "VOLUME" if prescription else "SITE"
        dose_ref.DoseReferenceDescription = ptv
        if prescription:
            dose_ref.ReferencedROINumber = roi
        dose_ref.DoseReferenceType = "TARGET"
        if prescription:
            dose_ref.DeliveryMaximumDose = round(1.25 * lesion.dose_gy, 2)
            dose_ref.TargetPrescriptionDose = lesion.dose_gy
        refs.append(dose_ref)
        if not prescription:
            break
    ds.DoseReferenceSequence = Sequence(refs)

    fraction_group = Dataset()
    fraction_group.FractionGroupNumber = 1
    fraction_group.NumberOfFractionsPlanned = lesion.fractions
    fraction_group.NumberOfBeams = 0
    fraction_group.NumberOfBrachyApplicationSetups = 0
    referenced_dose_ref = Dataset()
    referenced_dose_ref.ReferencedDoseReferenceNumber = 1
    fraction_group.ReferencedDoseReferenceSequence = Sequence([referenced_dose_ref])
    ds.FractionGroupSequence = Sequence([fraction_group])

    setup = Dataset()
    setup.PatientSetupNumber = 1
    setup.PatientPosition = "HFS"
    ds.PatientSetupSequence = Sequence([setup])
    ds.ApprovalStatus = "UNAPPROVED"
    _save(ds, folder / f"RP.{lesion.lesion_id}.dcm")
    return sop_uid


def _set_dose_grid(ds: Dataset, dose: np.ndarray, plan_uid: str, comment: str) -> None:
    """The RT Dose and image-pixel modules of a demo RTDOSE: ``dose`` (Gy, (nz, ny, nx) on
    the demo dose grid) as uint16 with a DoseGridScaling of 6 significant digits (so that the
    written scaling is exactly the one applied), physical, PLAN, referencing ``plan_uid``."""
    scaling = float(f"{float(dose.max()) / 65000.0:.6g}")
    pixels = np.clip(np.rint(dose / scaling), 0, 65535).astype("<u2")
    nz, ny, nx = _DOSE_SHAPE
    ds.ImagePositionPatient = list(_DOSE_ORIGIN_MM)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceThickness = _DOSE_MM
    ds.PixelSpacing = [_DOSE_MM, _DOSE_MM]
    ds.NumberOfFrames = nz
    ds.FrameIncrementPointer = Tag(0x3004, 0x000C)
    ds.GridFrameOffsetVector = [round(_DOSE_MM * k, 2) for k in range(nz)]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ny
    ds.Columns = nx
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = "PLAN"
    ds.DoseComment = comment
    ds.DoseGridScaling = scaling
    plan_ref = Dataset()
    plan_ref.ReferencedSOPClassUID = RTPlanStorage
    plan_ref.ReferencedSOPInstanceUID = plan_uid
    ds.ReferencedRTPlanSequence = Sequence([plan_ref])
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OW"


def _write_rtdose(ctx: _Context, lesion: DemoLesion, geometry: _LesionGeometry, plan_uid: str,
                  folder: Path, *, extra: tuple[_LesionGeometry, ...] = ()) -> str:
    """Write RD.<id>.dcm (uint16, 2.5 mm grid over the External); return its SOPInstanceUID.
    ``extra``: further targets of the same plan, whose dose (same prescription, delivered in
    the same session) adds to this one."""
    dose = _dose_gy(geometry, lesion.dose_gy)
    for other in extra:
        dose = dose + _dose_gy(other, lesion.dose_gy)
    sop_uid = ctx.uid("rtdose", lesion.lesion_id)
    ds = _new_dataset(ctx, RTDoseStorage, sop_uid, "RTDOSE", ctx.uid("rtdose series",
                      lesion.lesion_id), 20 + int(lesion.lesion_id[1:]), f"Dose {lesion.label}")
    ds.SeriesDate = _PLAN_DATE
    ds.SeriesTime = _PLAN_TIME
    ds.ContentDate = _PLAN_DATE
    ds.ContentTime = _PLAN_TIME
    ds.InstanceNumber = 1
    _set_dose_grid(ds, dose, plan_uid,
                   f"Analytic SBRT-like dose for {lesion.ptv}, {lesion.dose_gy:g} Gy")
    _save(ds, folder / f"RD.{lesion.lesion_id}.dcm")
    return sop_uid


# =============================================================================================
# Public API
# =============================================================================================


DEMO_VARIANTS = ("standard", "two-targets", "no-prescription", "prior", "prior-reg")
"""``standard``: five plans; ``two-targets``: L3 (subcarinal node) and L4 (liver), both
50 Gy/5, in one RTPLAN with two TARGET dose references and one RTDOSE (their doses summed:
one session); ``no-prescription``: every RTPLAN without TargetPrescriptionDose and
ReferencedROINumber, as RayStation, Pinnacle or Monaco write them (five PTVs in the structure
set, so the target and prescription must be given); ``prior``: the standard patient and,
in ``<patient_id>-prior/`` next to it, a synthetic earlier course (30 Gy/10 thoracic RT about
a year earlier, :func:`write_prior_course`) in the same frame of reference; ``prior-reg``: the
same earlier course in another frame of reference (patient coordinates shifted by
:data:`PRIOR_SHIFT_MM`) with a rigid DICOM Spatial Registration (REG) in its folder."""


def write_demo_patient(out_dir: str | os.PathLike, *, seed: int = 0,
                       patient_id: str | None = None, variant: str = "standard") -> Path:
    """Write one synthetic demo patient as DICOM into ``out_dir/<patient_id>/``.

    Parameters
    ----------
    out_dir : path
        Parent folder; created if missing.
    seed : int, default 0
        Non-negative. Seed 0 is the nominal patient described in the module docstring; other
        seeds scale the GTV radii by 0.9-1.1, move L1, L3 and L4 by up to 1.5 mm and vary the
        PTV-OAR gaps of L2 (3.5-4.5 mm) and L5 (3-4 mm). Structure names, plans and regimens
        are the same for every seed.
    patient_id : str, optional
        Defaults to ``"RTPA-DEMO-<seed:04d>"``; also the folder name and part of every UID.
    variant : str, default "standard"
        One of :data:`DEMO_VARIANTS` (``two-targets`` writes no RP.L4/RD.L4).

    Returns
    -------
    Path
        The patient folder with ``CT.1.dcm`` ... ``CT.100.dcm``, ``RS.dcm``, ``RP.L1.dcm`` ...
        ``RP.L5.dcm`` and ``RD.L1.dcm`` ... ``RD.L5.dcm`` (see :func:`demo_file_names`).

    Notes
    -----
    The output is byte-identical for the same seed, patient ID and pydicom version (fixed
    dates, UIDs from ``generate_uid(prefix=None, entropy_srcs=...)``, seeded CT noise).
    About 28 MB and 1-3 s per patient. Existing files of the same names are overwritten.
    """
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if variant not in DEMO_VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(DEMO_VARIANTS)}, got {variant!r}")
    seed = int(seed)
    ctx = _Context(seed, patient_id if patient_id is not None else f"RTPA-DEMO-{seed:04d}")
    folder = Path(out_dir) / ctx.patient_id
    folder.mkdir(parents=True, exist_ok=True)

    lesions = _lesion_geometry(seed)
    structures = _anatomy(lesions)
    ct_uids = _write_ct(ctx, _ct_hu(structures, lesions, seed), folder)
    rtstruct_uid = _write_rtstruct(ctx, structures, ct_uids, folder)
    roi_numbers = {s.name: number for number, s in enumerate(structures, start=1)}
    by_id = dict(zip((x.lesion_id for x in DEMO_LESIONS), zip(DEMO_LESIONS, lesions)))
    for lesion, geometry in zip(DEMO_LESIONS, lesions):
        if variant == "two-targets" and lesion.lesion_id == "L4":
            continue  # L4 is the second target of L3's plan
        extra_targets: tuple = ()
        extra_geometry: tuple = ()
        if variant == "two-targets" and lesion.lesion_id == "L3":
            l4, g4 = by_id["L4"]
            lesion = replace(lesion, label="L3+L4 node+liver",
                             description=lesion.description + "; one plan with L4's PTV too")
            extra_targets = ((l4.ptv, roi_numbers[l4.ptv]),)
            extra_geometry = (g4,)
        plan_uid = _write_rtplan(ctx, lesion, roi_numbers[lesion.ptv], rtstruct_uid, folder,
                                 extra_targets=extra_targets,
                                 prescription=variant != "no-prescription")
        _write_rtdose(ctx, lesion, geometry, plan_uid, folder, extra=extra_geometry)
    if variant in ("prior", "prior-reg"):
        write_prior_course(Path(out_dir) / f"{ctx.patient_id}-prior", seed=seed,
                           patient_id=ctx.patient_id, registered=variant == "prior-reg")
    # The demo's lung ITVs are its GTVs (no motion), so its "LUNGS-ITV's" is lungs minus
    # GTVs: say so explicitly, as a clinic would, instead of letting a table guess.
    (folder / DEMO_MAP_FILE).write_text("structure,tg263\nLUNGS-ITV's,Lungs-GTV\n",
                                        encoding="utf-8")
    return folder


# --- synthetic prior course (variants prior, prior-reg) -----------------------------------------
PRIOR_DOSE_GY = 30.0
PRIOR_FRACTIONS = 10
PRIOR_PLAN_DATE = "20240105"  # 371 days before _PLAN_DATE (12.2 months)
#: Field of the prior course in the current frame: |x| <= 40 mm, -80 <= z <= 20 mm (edges at
#: 50 % of the dose, logistic penumbra of 2.5 mm), every depth inside the body (AP-PA-like).
PRIOR_FIELD_MM = ((-40.0, 40.0), (-80.0, 20.0))
#: prior-reg: prior patient coordinates = current + this shift (mm); its REG maps back.
PRIOR_SHIFT_MM = (15.0, -10.0, 25.0)
_SPATIAL_REGISTRATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.1"


def prior_dose_gy(x_mm, y_mm, z_mm) -> np.ndarray:
    """The prior course's physical dose (Gy) at current-frame points (broadcast arrays):
    ``30 Gy · s(x) · s(z)`` inside the body outline, ``s`` a logistic edge of 2.5 mm at the
    field borders of :data:`PRIOR_FIELD_MM` (50 % on the border), 0 outside the body."""
    (x0, x1), (z0, z1) = PRIOR_FIELD_MM

    def edge(v, lo, hi):
        return 1.0 / (1.0 + np.exp(-(v - lo) / 2.5)) / (1.0 + np.exp((v - hi) / 2.5))

    body = (np.asarray(x_mm) / _BODY_SEMI_MM[0]) ** 2 + (np.asarray(y_mm) / _BODY_SEMI_MM[1]) ** 2 <= 1
    return PRIOR_DOSE_GY * edge(x_mm, x0, x1) * edge(z_mm, z0, z1) * body


def write_prior_course(folder: str | os.PathLike, *, seed: int = 0,
                       patient_id: str | None = None, registered: bool = False,
                       shift_mm: tuple[float, float, float] = PRIOR_SHIFT_MM) -> Path:
    """Write a synthetic earlier course of the demo patient: RP.prior.dcm (30 Gy in 10
    fractions, RTPlanDate :data:`PRIOR_PLAN_DATE`) and RD.prior.dcm (:func:`prior_dose_gy` on
    the demo dose grid), in another study.

    ``registered``: the course lies in its own frame of reference, whose patient coordinates
    are the current ones plus ``shift_mm`` (default :data:`PRIOR_SHIFT_MM`), and REG.prior.dcm (a rigid Spatial
    Registration, registered frame = the current one) maps it back. Returns ``folder``.
    """
    ctx = _Context(int(seed), patient_id if patient_id is not None else f"RTPA-DEMO-{seed:04d}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shift = np.array(shift_mm if registered else (0.0, 0.0, 0.0), dtype=np.float64)
    frame = ctx.uid("prior frame of reference") if registered else ctx.uid("frame of reference")
    study = ctx.uid("prior study")

    def new(sop_class, role, modality, number, description):
        ds = _new_dataset(ctx, sop_class, ctx.uid(role), modality, ctx.uid(role, "series"),
                          number, description)
        ds.StudyInstanceUID = study
        ds.StudyDate = ds.ContentDate = ds.SeriesDate = PRIOR_PLAN_DATE
        ds.InstanceCreationDate = PRIOR_PLAN_DATE
        ds.StudyDescription = "Synthetic demo: earlier thoracic course, 30 Gy/10"
        ds.FrameOfReferenceUID = frame
        ds.InstanceNumber = 1
        return ds

    plan = new(RTPlanStorage, "prior rtplan", "RTPLAN", 40, "Prior plan 30Gy/10")
    plan.RTPlanLabel = "Prior T-spine"
    plan.RTPlanName = "Prior 30Gy/10fx"
    plan.RTPlanDate = PRIOR_PLAN_DATE
    plan.RTPlanTime = _PLAN_TIME
    plan.RTPlanGeometry = "PATIENT"
    plan.PrescriptionDescription = "30 Gy in 10 fractions, mediastinum and T6-T10 (synthetic)"
    dose_ref = Dataset()
    dose_ref.DoseReferenceNumber = 1
    dose_ref.DoseReferenceUID = ctx.uid("prior dose reference")
    dose_ref.DoseReferenceStructureType = "SITE"
    dose_ref.DoseReferenceDescription = "mediastinum"
    dose_ref.DoseReferenceType = "TARGET"
    dose_ref.TargetPrescriptionDose = PRIOR_DOSE_GY
    plan.DoseReferenceSequence = Sequence([dose_ref])
    group = Dataset()
    group.FractionGroupNumber = 1
    group.NumberOfFractionsPlanned = PRIOR_FRACTIONS
    group.NumberOfBeams = 0
    group.NumberOfBrachyApplicationSetups = 0
    plan.FractionGroupSequence = Sequence([group])
    setup = Dataset()
    setup.PatientSetupNumber = 1
    setup.PatientPosition = "HFS"
    plan.PatientSetupSequence = Sequence([setup])
    plan.ApprovalStatus = "APPROVED"
    _save(plan, folder / "RP.prior.dcm")

    x, y, z = _dose_grid_mm()  # the grid, in the prior frame's coordinates
    dose = prior_dose_gy(x[None, None, :] - shift[0], y[None, :, None] - shift[1],
                         z[:, None, None] - shift[2])
    ds = new(RTDoseStorage, "prior rtdose", "RTDOSE", 41, "Dose prior 30Gy/10")
    _set_dose_grid(ds, dose, plan.SOPInstanceUID, "Synthetic prior course, 30 Gy/10")
    _save(ds, folder / "RD.prior.dcm")

    if registered:
        reg = new(_SPATIAL_REGISTRATION_STORAGE, "prior registration", "REG", 42,
                  "Rigid registration prior -> planning CT")
        reg.FrameOfReferenceUID = ctx.uid("frame of reference")  # the registered frame
        reg.ContentDate = PRIOR_PLAN_DATE
        reg.ContentTime = _PLAN_TIME
        reg.ContentLabel = "PRIOR_TO_CURRENT"
        items = []
        for uid, matrix in ((ctx.uid("frame of reference"), np.eye(4)),
                            (frame, _translation(-shift))):
            m = Dataset()
            m.FrameOfReferenceTransformationMatrixType = "RIGID"
            m.FrameOfReferenceTransformationMatrix = [float(v) for v in matrix.ravel()]
            mreg = Dataset()
            mreg.MatrixSequence = Sequence([m])
            item = Dataset()
            item.FrameOfReferenceUID = uid
            item.MatrixRegistrationSequence = Sequence([mreg])
            items.append(item)
        reg.RegistrationSequence = Sequence(items)
        _save(reg, folder / "REG.prior.dcm")
    return folder


def _translation(t) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = t
    return m


def _default_cache_root() -> Path:
    env = os.environ.get("RTPLAN_ASSIST_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "rtplan-assist"


def _is_complete(folder: Path) -> bool:
    return folder.is_dir() and all((folder / name).is_file() for name in demo_file_names())


def demo_case_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the nominal demo patient (seed 0), written once into a per-user cache.

    Parameters
    ----------
    cache_dir : path, optional
        Cache root; defaults to ``$RTPLAN_ASSIST_CACHE``, else ``$XDG_CACHE_HOME/rtplan-assist``,
        else ``~/.cache/rtplan-assist``.

    Returns
    -------
    Path
        ``<cache root>/demo-v1``, holding the DICOM files of :func:`write_demo_patient` with
        seed 0. Written to a temporary folder next to it and renamed into place, so a reader
        never sees a half-written case; an existing complete folder is reused, an incomplete
        one replaced.
    """
    root = Path(cache_dir) if cache_dir is not None else _default_cache_root()
    final = root / f"demo-{DEMO_VERSION}"
    if _is_complete(final):
        return final
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".demo-{DEMO_VERSION}-", dir=root))
    try:
        written = write_demo_patient(staging, seed=0)
        if final.exists() and not _is_complete(final):
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(written, final)
        except OSError:
            if not _is_complete(final):  # lost a race to a writer that did not finish: retry
                shutil.rmtree(final, ignore_errors=True)
                os.rename(written, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
