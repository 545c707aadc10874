"""Lesions of a case: one per RTDOSE with an RTPLAN that gives fractions and a prescription.

The target is the plan's ReferencedROINumber (else a PTV matched by name), the GTV is found by
name or by position, and the site from the organ structure that contains the target centre.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..geometry import _point_in_polygon
from ..model import Case, Dose, Plan, Structure
from ..regimens import Regimen
from .records import Lesion

_SITE_STRUCTURES = (
    ("lung", re.compile(r"lung", re.IGNORECASE)),
    ("liver", re.compile(r"liver", re.IGNORECASE)),
    ("adrenal", re.compile(r"adrenal", re.IGNORECASE)),
    (
        "bone",
        re.compile(
            r"bone|rib|vertebra|^vb|sacrum|femur|pelvi|ilium|humerus|sternum|scapula|clavicle",
            re.IGNORECASE,
        ),
    ),
    ("node", re.compile(r"^ln[_ ]|node|lymph", re.IGNORECASE)),
)
_SITE_NAMES = (
    ("lung", re.compile(r"lung|\b[RL](?:UL|ML|LL)\b|lobe|pulm", re.IGNORECASE)),
    ("liver", re.compile(r"liver|hepat", re.IGNORECASE)),
    ("adrenal", re.compile(r"adrenal", re.IGNORECASE)),
    ("node", re.compile(r"node|\bLN\b|subcarinal|hilar|mediastin|station|nodal", re.IGNORECASE)),
    (
        "bone",
        re.compile(
            # no L1-L5 levels here: lesion ids are L1, L2, ...
            r"bone|oss|vertebr|\b[TC]\d{1,2}\b|\brib|sacr|femur|pelvi|ilium|humer|sternum|spine",
            re.IGNORECASE,
        ),
    ),
)


def _contains(structure: Structure, point: np.ndarray) -> bool:
    """Even-odd containment of ``point`` (x, y, z mm) in the contour plane nearest its z."""
    if structure.is_empty:
        return False
    z = structure.plane_z_mm
    p = int(np.argmin(np.abs(z - point[2])))
    spacing = structure.slice_thickness_mm or (float(np.min(np.diff(z))) if len(z) > 1 else 3.0)
    if abs(z[p] - point[2]) > 0.5 * spacing + 1e-6:
        return False
    inside = 0
    for poly in structure.polygons[p]:
        inside += _point_in_polygon(float(point[0]), float(point[1]), poly)
    return inside % 2 == 1


#: Structures whose 2 cm neighbourhood makes a lung lesion central: SABR-COMET's "within 2 cm
#: of the mediastinum or brachial plexus" (Palma et al., BMC Cancer 2012;12:305, Table 1 [P]).
_CENTRAL = re.compile(
    r"trachea|bronch|airway|esoph|oesoph|heart|pericard|great|aorta|mediast|plex|vena",
    re.IGNORECASE,
)
CENTRAL_DISTANCE_MM = 20.0
_VERTEBRA = re.compile(r"vertebr|spine|\b[TC]\d{1,2}\b|^vb", re.IGNORECASE)


def _points(structure: Structure, limit: int = 4000) -> np.ndarray:
    """Contour points (x, y, z mm), at most ``limit`` (evenly subsampled)."""
    pts = [
        np.column_stack([poly[:, 0], poly[:, 1], np.full(len(poly), z)])
        for z, plane in zip(structure.plane_z_mm, structure.polygons)
        for poly in plane
    ]
    if not pts:
        return np.zeros((0, 3))
    out = np.concatenate(pts)
    step = max(1, len(out) // limit)
    return out[::step]


def min_distance_mm(a: Structure, b: Structure) -> float:
    """Smallest distance between the contour points of two structures (mm; inf when either is
    empty). Points are subsampled to 4000 per structure: enough for a 2 cm criterion."""
    if a.is_empty or b.is_empty:
        return math.inf
    ba, bb = a.bounds_mm(), b.bounds_mm()
    gap = np.maximum(0.0, np.maximum(ba[:, 0] - bb[:, 1], bb[:, 0] - ba[:, 1]))
    if float(np.linalg.norm(gap)) > CENTRAL_DISTANCE_MM:
        return float(np.linalg.norm(gap))
    pa, pb = _points(a), _points(b)
    best = math.inf
    for chunk in range(0, len(pa), 512):
        d = pa[chunk : chunk + 512, None, :] - pb[None, :, :]
        best = min(best, float(np.sqrt(np.min(np.einsum("ijk,ijk->ij", d, d)))))
    return best


def _refine(site: str, target: Structure, case: Case, text: str, own: set[str]) -> str:
    """``lung`` → ``central lung`` within 2 cm of a mediastinal structure or the brachial
    plexus; ``bone`` → ``vertebra`` for a vertebral lesion (by containing structure or name)."""
    if site == "lung":
        for s in case.structures:
            if s.name in own or s.roi_type in ("PTV", "GTV", "CTV", "ITV"):
                continue
            if _CENTRAL.search(s.name) and min_distance_mm(target, s) <= CENTRAL_DISTANCE_MM:
                return "central lung"
    if site == "bone":
        centre = target.bounds_mm().mean(axis=1)
        for s in case.structures:
            if s.name in own or re.search(r"spinal|canal|cord", s.name, re.IGNORECASE):
                continue
            if _VERTEBRA.search(s.name) and _contains(s, centre):
                return "vertebra"
        if _VERTEBRA.search(text):
            return "vertebra"
    return site


def _site_of(target: Structure, case: Case, plan: Plan, own: set[str]) -> str:
    text = f"{plan.label} {plan.name} {target.name}"
    return _refine(_coarse_site(target, case, plan, own), target, case, text, own)


def _coarse_site(target: Structure, case: Case, plan: Plan, own: set[str]) -> str:
    centre = target.bounds_mm().mean(axis=1)
    for site, pattern in _SITE_STRUCTURES:
        for s in case.structures:
            if s.name in own or s.roi_type in ("PTV", "GTV", "CTV", "ITV"):
                continue
            if re.search(r"spinal|canal|cord", s.name, re.IGNORECASE):
                continue
            if pattern.search(s.name) and _contains(s, centre):
                return site
    text = f"{plan.label} {plan.name} {target.name}"
    for site, pattern in _SITE_NAMES:
        if pattern.search(text):
            return site
    return "unknown"


def _find_target(case: Case, plan: Plan, warnings: list[str]) -> Structure | None:
    by_number = {s.roi_number: s for s in case.structures}
    if plan.target_roi_number is not None:
        s = by_number.get(plan.target_roi_number)
        if s is not None and not s.is_empty:
            return s
        warnings.append(
            f"{Path(plan.path).name}: ReferencedROINumber {plan.target_roi_number} is not a "
            "contoured ROI of the structure set; matching the PTV by name"
        )
    ptvs = [
        s
        for s in case.structures
        if not s.is_empty and (s.roi_type == "PTV" or re.match(r"^\s*PTV", s.name, re.IGNORECASE))
    ]
    if len(ptvs) == 1:
        return ptvs[0]
    digits = re.findall(r"\d+", f"{plan.label} {plan.name}")
    for d in digits:
        hits = [s for s in ptvs if re.search(rf"(?<!\d){int(d)}(?!\d)", s.name)]
        if len(hits) == 1:
            return hits[0]
    return None


def _find_gtv(case: Case, target: Structure) -> Structure | None:
    candidates = []
    for pattern in ("GTV", "ITV", "iGTV"):
        name = re.sub(r"PTV", pattern, target.name, count=1, flags=re.IGNORECASE)
        if name != target.name:
            candidates += [s for s in case.structures if s.name.casefold() == name.casefold()]
    if candidates:
        return candidates[0]
    box = target.bounds_mm()
    inside = [
        s
        for s in case.structures
        if not s.is_empty
        and (s.roi_type in ("GTV", "ITV") or re.match(r"^\s*(GTV|ITV|iGTV)", s.name, re.IGNORECASE))
        and np.all(
            (s.bounds_mm().mean(axis=1) >= box[:, 0]) & (s.bounds_mm().mean(axis=1) <= box[:, 1])
        )
    ]
    return inside[0] if len(inside) == 1 else None


def find_lesions(case: Case, warnings: list[str] | None = None) -> list[Lesion]:
    """One :class:`Lesion` per RTDOSE that has a plan with fractions and a prescription.

    Parameters
    ----------
    case : Case
    warnings : list of str, optional
        Receives one message per dose that is not a lesion (no plan, no fractions, no
        prescription, BEAM dose, no target) and per FRACTION dose that was multiplied.

    Returns
    -------
    list of Lesion
        Ordered as the plans in the case; ids ``L1``, ``L2``, ...
    """
    warnings = warnings if warnings is not None else []
    found: list[tuple[int, Plan, Dose, Structure, str]] = []
    used_plans: set[str] = set()
    for dose in case.doses:
        name = Path(dose.path).name if dose.path else dose.sop_instance_uid
        plan = case.plan_for_dose(dose)
        if plan is None:
            warnings.append(f"{name}: RTDOSE references no RTPLAN of the case; not a lesion")
            continue
        if not plan.fractions or not plan.prescription_gy:
            warnings.append(
                f"{name}: its RTPLAN {Path(plan.path).name} has no "
                f"{'fractions' if not plan.fractions else 'prescription'}; not a lesion"
            )
            continue
        summation = (dose.summation_type or "PLAN").upper()
        note = ""
        if summation == "FRACTION":
            dose = replace(dose, dose_gy=dose.dose_gy * np.float32(plan.fractions))
            note = (
                f"{name}: DoseSummationType FRACTION: the dose of one fraction was multiplied by "
                f"the {plan.fractions} planned fractions"
            )
            warnings.append(note)
        elif summation not in ("PLAN", "MULTI_PLAN", ""):
            warnings.append(
                f"{name}: DoseSummationType {summation} is not a whole-plan dose; not a lesion"
            )
            continue
        if (dose.dose_type or "PHYSICAL").upper() == "ERROR":
            warnings.append(f"{name}: DoseType ERROR is not a dose; not a lesion")
            continue
        if plan.sop_instance_uid in used_plans:
            warnings.append(f"{name}: a second RTDOSE of the same RTPLAN; ignored")
            continue
        target = _find_target(case, plan, warnings)
        if target is None:
            warnings.append(
                f"{name}: no PTV found for plan '{plan.label}' (no ReferencedROINumber and no "
                "unambiguous PTV name); not a lesion"
            )
            continue
        used_plans.add(plan.sop_instance_uid)
        order = next(i for i, p in enumerate(case.plans) if p is plan)
        found.append((order, plan, dose, target, note))
    found.sort(key=lambda item: item[0])
    lesions = []
    for index, (_, plan, dose, target, note) in enumerate(found, start=1):
        gtv = _find_gtv(case, target)
        own = {target.name} | ({gtv.name} if gtv else set())
        lesions.append(
            Lesion(
                lesion_id=f"L{index}",
                label=plan.label or plan.name or f"L{index}",
                site=_site_of(target, case, plan, own),
                plan=plan,
                dose=dose,
                target=target,
                gtv=gtv,
                planned=Regimen(int(plan.fractions), float(plan.prescription_gy)),
                dose_scale_note=note,
            )
        )
    return lesions
