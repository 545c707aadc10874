"""Lesions of a case: one per RTDOSE with an RTPLAN that gives fractions and a prescription.

The target is the plan's ReferencedROINumber (else a PTV matched by name), the GTV is found by
name or by position, and the site from the organ structure that contains the target centre.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ..errors import EvaluationError
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
    ("brain", re.compile(r"^brain$", re.IGNORECASE)),
)
_SITE_NAMES = (
    ("lung", re.compile(r"lung|\b[RL](?:UL|ML|LL)\b|lobe|pulm", re.IGNORECASE)),
    ("liver", re.compile(r"liver|hepat", re.IGNORECASE)),
    ("adrenal", re.compile(r"adrenal", re.IGNORECASE)),
    ("node", re.compile(r"node|\bLN\b|subcarinal|hilar|mediastin|station|nodal", re.IGNORECASE)),
    ("brain", re.compile(r"brain|cerebr|cerebell|\bSRS\b", re.IGNORECASE)),
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
    return _min_distance_mm(a, b, None)


def _within_mm(a: Structure, b: Structure, limit_mm: float) -> bool:
    """``min_distance_mm(a, b) <= limit_mm``, without the exact minimum when a pair of the
    coarse subsample is already that close (the minimum is at most that pair's distance)."""
    return _min_distance_mm(a, b, limit_mm) <= limit_mm


def _min_distance_mm(a: Structure, b: Structure, enough_mm: float | None) -> float:
    """:func:`min_distance_mm`; with ``enough_mm``, the coarse subsample's distance when it is
    at most ``enough_mm`` (an upper bound of the minimum, which then is at most it too)."""
    if a.is_empty or b.is_empty:
        return math.inf
    ba, bb = a.bounds_mm(), b.bounds_mm()
    gap = np.maximum(0.0, np.maximum(ba[:, 0] - bb[:, 1], bb[:, 0] - ba[:, 1]))
    if float(np.linalg.norm(gap)) > CENTRAL_DISTANCE_MM:
        return float(np.linalg.norm(gap))
    pa, pb = _points(a), _points(b)
    # Exact pruning (the brute force over 4000 x 4000 points took ~0.1 s a pair, half a
    # second of the demo's evaluate): the distance u of a coarse subsample bounds the minimum
    # from above, and a point farther than u from the box of the other structure's points
    # cannot belong to the closest pair. The closest pair survives, so the result is the
    # brute force's over all points.
    step = max(1, max(len(pa), len(pb)) // 256)
    u = _brute_min_distance(pa[::step], pb[::step])
    if enough_mm is not None and u <= enough_mm:
        return u
    slack = u * (1.0 + 1e-9) + 1e-9  # rounding of the box distance only keeps more points
    pa = pa[_box_distance(pa, pb) <= slack]
    pb = pb[_box_distance(pb, pa) <= slack]
    return _brute_min_distance(pa, pb)


def _box_distance(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Distance (mm) of each point to the axis-aligned box of ``others`` (0 inside)."""
    lo, hi = others.min(axis=0), others.max(axis=0)
    gap = np.maximum(0.0, np.maximum(lo - points, points - hi))
    return np.sqrt(np.einsum("ij,ij->i", gap, gap))


def _brute_min_distance(pa: np.ndarray, pb: np.ndarray) -> float:
    """Smallest distance between two point sets (mm), every pair compared."""
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
            if _CENTRAL.search(s.name) and _within_mm(target, s, CENTRAL_DISTANCE_MM):
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


def _site_of(
    target: Structure, case: Case, plan: Plan, own: set[str], shared: bool = False
) -> str:
    """The lesion's site; ``shared``: the plan has several targets, so its label cannot say
    which target it describes and only the target's own name and position count."""
    text = target.name if shared else f"{plan.label} {plan.name} {target.name}"
    return _refine(_coarse_site(target, case, plan, own, shared), target, case, text, own)


def _coarse_site(
    target: Structure, case: Case, plan: Plan, own: set[str], shared: bool = False
) -> str:
    centre = target.bounds_mm().mean(axis=1)
    for site, pattern in _SITE_STRUCTURES:
        for s in case.structures:
            if s.name in own or s.roi_type in ("PTV", "GTV", "CTV", "ITV"):
                continue
            if re.search(r"spinal|canal|cord", s.name, re.IGNORECASE):
                continue
            if pattern.search(s.name) and _contains(s, centre):
                return site
    text = target.name if shared else f"{plan.label} {plan.name} {target.name}"
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


def parse_targets(items) -> dict[str, list[str]]:
    """``PLAN=ROI[,ROI...]`` texts (``--target``, repeatable) → plan → ROI names."""
    out: dict[str, list[str]] = {}
    for item in items:
        plan, sep, rois = str(item).partition("=")
        names = [r.strip() for r in rois.split(",") if r.strip()]
        if not sep or not plan.strip() or not names:
            raise EvaluationError(
                f"--target '{item}': expected PLAN=ROI[,ROI...] (PLAN: the RTPLAN's label or "
                "file name; ROI: target structure names)"
            )
        bucket = out.setdefault(plan.strip(), [])
        bucket += [n for n in names if n not in bucket]
    return out


def parse_prescriptions(items) -> dict[str, Regimen]:
    """``PLAN=DOSE/FRACTIONS`` texts (``--prescription``, repeatable) → plan → Regimen."""
    from ..regimens import parse_regimen

    out: dict[str, Regimen] = {}
    for item in items:
        plan, sep, text = str(item).rpartition("=")
        if not sep or not plan.strip():
            raise EvaluationError(
                f"--prescription '{item}': expected PLAN=DOSE/FRACTIONS, e.g. 'Plan1=54/3' "
                "(PLAN: the RTPLAN's label or file name)"
            )
        if plan.strip() in out:
            raise EvaluationError(f"--prescription: plan '{plan.strip()}' given twice")
        out[plan.strip()] = parse_regimen(text)
    return out


def mapping_file_plan_options(path) -> tuple[dict[str, list[str]], dict[str, Regimen]]:
    """The ``--target``/``--prescription`` rows of a mapping file (``structure,tg263``; see
    :func:`rtplan_assist.names.load_mapping_file`), parsed; errors name the file and line."""
    from ..names import load_mapping_file

    options: list[tuple[str, str, str]] = []
    load_mapping_file(path, plan_options=options)
    targets: dict[str, list[str]] = {}
    prescriptions: dict[str, Regimen] = {}
    for option, value, where in options:
        try:
            if option == "--target":
                for plan, rois in parse_targets([value]).items():
                    targets.setdefault(plan, [])
                    targets[plan] += [r for r in rois if r not in targets[plan]]
            else:
                prescriptions.update(parse_prescriptions([value]))
        except EvaluationError as exc:
            raise EvaluationError(f"{where}: {exc}") from None
    return targets, prescriptions


def folder_plan_options(where) -> tuple[dict[str, list[str]], dict[str, Regimen]]:
    """The plan options of the patient's mapping file, if any (``where``: a case or a folder;
    :func:`rtplan_assist.names.folder_map_file`)."""
    from ..names import folder_map_file

    path = folder_map_file(where)
    return mapping_file_plan_options(path) if path is not None else ({}, {})


def plan_keys(plan: Plan) -> set[str]:
    """The names a user may give a plan by (``--target PLAN=...``): its RTPlanLabel, its
    RTPlanName, its file name and the file name without extension (case-insensitive)."""
    keys = {plan.label, plan.name}
    if plan.path:
        keys |= {Path(plan.path).name, Path(plan.path).stem}
    return {k.strip().casefold() for k in keys if k and k.strip()}


def _match_plans(case: Case, given: dict[str, object], option: str) -> dict[str, object]:
    """Plan SOPInstanceUID → value, for ``given`` keyed by plan label or file name; an unknown
    or ambiguous key is an error naming the case's plans."""
    out: dict[str, object] = {}
    names = "; ".join(
        f"'{p.label or p.name}' ({Path(p.path).name})" for p in case.plans
    ) or "none"
    for key, value in given.items():
        hits = [p for p in case.plans if key.strip().casefold() in plan_keys(p)]
        if len(hits) != 1:
            raise EvaluationError(
                f"{option} {key}=...: {'no' if not hits else 'more than one'} RTPLAN of the case "
                f"is called '{key}' (by RTPlanLabel, RTPlanName or file name); the plans are: "
                f"{names}"
            )
        out[hits[0].sop_instance_uid] = value
    return out


def _named_targets(case: Case, plan: Plan, names: list[str]) -> list[Structure]:
    by_name = {s.name.casefold(): s for s in case.structures}
    out = []
    for name in names:
        s = by_name.get(name.strip().casefold())
        if s is None or s.is_empty:
            listed = ", ".join(x.name for x in case.structures if not x.is_empty) or "none"
            raise EvaluationError(
                f"--target {plan.label or Path(plan.path).name}={name}: "
                f"{'no' if s is None else 'an empty'} structure '{name}' in the structure set; "
                f"its contoured structures are: {listed}"
            )
        out.append(s)
    return out


def _ptv_names(case: Case) -> list[str]:
    return [
        s.name
        for s in case.structures
        if not s.is_empty and (s.roi_type == "PTV" or re.match(r"^\s*PTV", s.name, re.IGNORECASE))
    ]


def find_lesions(
    case: Case,
    warnings: list[str] | None = None,
    *,
    targets: dict[str, list[str]] | None = None,
    prescriptions: dict[str, Regimen] | None = None,
    reasons: list[str] | None = None,
) -> list[Lesion]:
    """One :class:`Lesion` per target of every RTDOSE that has a plan with fractions and a
    prescription.

    Parameters
    ----------
    case : Case
    warnings : list of str, optional
        Receives one message per dose that is not a lesion (no plan, no fractions, no
        prescription, BEAM dose, no target) and per FRACTION dose that was multiplied.
    targets : dict of str to list of str, optional
        Plan (RTPlanLabel, RTPlanName or file name) → target structure names (``--target``).
        A plan with several targets gives one lesion per target; they share the plan's dose
        and regimen.
    prescriptions : dict of str to Regimen, optional
        Plan → prescription (``--prescription``): replaces a missing (or the plan's own)
        prescription and number of fractions.
    reasons : list of str, optional
        Receives, per plan or dose that gave no lesion, why and which option fixes it.

    Returns
    -------
    list of Lesion
        Ordered as the plans in the case, then as the targets given; ids ``L1``, ``L2``, ...

    Raises
    ------
    EvaluationError
        A ``targets``/``prescriptions`` key that names no plan (or several), or a target that
        is not a contoured structure.
    """
    warnings = warnings if warnings is not None else []
    reasons = reasons if reasons is not None else []
    user_targets = _match_plans(case, targets or {}, "--target")
    user_rx = _match_plans(case, prescriptions or {}, "--prescription")
    found: list[tuple[int, Plan, Dose, list[Structure], str, Regimen]] = []
    used_plans: set[str] = set()
    for dose in case.doses:
        name = Path(dose.path).name if dose.path else dose.sop_instance_uid
        plan = case.plan_for_dose(dose)
        if plan is None:
            message = f"{name}: RTDOSE references no RTPLAN of the case; not a lesion"
            warnings.append(message)
            reasons.append(message + " (export the RTPLAN with the dose)")
            continue
        plan_name = f"RTPLAN '{plan.label or plan.name}' ({Path(plan.path).name})"
        key = plan.label or Path(plan.path).name
        rx = user_rx.get(plan.sop_instance_uid)
        if rx is None and (plan.fractions and plan.prescription_gy):
            rx = Regimen(int(plan.fractions), float(plan.prescription_gy))
        if rx is None:
            missing = "fractions" if not plan.fractions else "prescription"
            warnings.append(
                f"{name}: its RTPLAN {Path(plan.path).name} has no {missing}; not a lesion"
            )
            what = "number of fractions" if missing == "fractions" else "target prescription dose"
            text = f"{plan_name}: no {what} in the RTPLAN"
            fix = f"--prescription '{key}=DOSE/FRACTIONS'"
            if plan.sop_instance_uid not in user_targets and _find_target(case, plan, []) is None:
                ptvs = _ptv_names(case)
                if len(ptvs) > 1:
                    text += f", and several PTVs ({', '.join(ptvs)}) and no ReferencedROINumber"
                    fix += f" and --target '{key}=ROI[,ROI...]'"
            reasons.append(f"{text}; give {fix}")
            continue
        summation = (dose.summation_type or "PLAN").upper()
        note = ""
        if summation == "FRACTION":
            # the FRACTION rule of the model, with the user's fractions when the plan has none
            dose, note = case.total_dose(dose, fractions=plan.fractions or rx.fractions)
            warnings.append(note)
        elif summation not in ("PLAN", "MULTI_PLAN", ""):
            message = f"{name}: DoseSummationType {summation} is not a whole-plan dose; not a lesion"
            warnings.append(message)
            reasons.append(message + " (export the plan dose)")
            continue
        if (dose.dose_type or "PHYSICAL").upper() == "ERROR":
            warnings.append(f"{name}: DoseType ERROR is not a dose; not a lesion")
            reasons.append(f"{name}: DoseType ERROR is not a dose; not a lesion")
            continue
        if plan.sop_instance_uid in used_plans:
            warnings.append(f"{name}: a second RTDOSE of the same RTPLAN; ignored")
            continue
        by_number = {x.roi_number: x for x in case.structures if not x.is_empty}
        listed = [by_number[k] for k in plan.target_roi_numbers if k in by_number]
        if plan.sop_instance_uid in user_targets:
            chosen = _named_targets(case, plan, list(user_targets[plan.sop_instance_uid]))
        elif len(listed) > 1 and len(listed) == len(plan.target_roi_numbers):
            chosen = listed  # a plan prescribing to several targets: one lesion each
        else:
            target = _find_target(case, plan, warnings)
            chosen = [target] if target is not None else []
        if not chosen:
            ptvs = _ptv_names(case)
            why = (
                f"several PTVs ({', '.join(ptvs)}) and no ReferencedROINumber"
                if len(ptvs) > 1
                else "no PTV and no ReferencedROINumber"
            )
            warnings.append(
                f"{name}: no PTV found for plan '{plan.label}' (no ReferencedROINumber and no "
                "unambiguous PTV name); not a lesion"
            )
            reasons.append(
                f"{plan_name}: {why}; give the target(s) with --target '{key}=ROI[,ROI...]'"
            )
            continue
        used_plans.add(plan.sop_instance_uid)
        order = next(i for i, p in enumerate(case.plans) if p is plan)
        found.append((order, plan, dose, chosen, note, rx))
    found.sort(key=lambda item: item[0])
    lesions = []
    index = 0
    for _, plan, dose, chosen, note, rx in found:
        for target in chosen:
            index += 1
            gtv = _find_gtv(case, target)
            own = {target.name} | ({gtv.name} if gtv else set())
            label = plan.label or plan.name or f"L{index}"
            lesions.append(
                Lesion(
                    lesion_id=f"L{index}",
                    label=label if len(chosen) == 1 else f"{label} {target.name}",
                    site=_site_of(target, case, plan, own, shared=len(chosen) > 1),
                    plan=plan,
                    dose=dose,
                    target=target,
                    gtv=gtv,
                    planned=rx,
                    dose_scale_note=note,
                )
            )
    return lesions


def no_lesion_message(case: Case, reasons: list[str]) -> str:
    """The error when a case gives no lesion: every plan or dose and why, and the fix."""
    if not case.doses:
        why = ["no RTDOSE in the case (see the warnings for doses not loaded)"]
    else:
        why = reasons or ["no RTDOSE with an RTPLAN that gives fractions and a prescription"]
    return f"{case.folder}: no lesion to evaluate: " + "; ".join(why)
