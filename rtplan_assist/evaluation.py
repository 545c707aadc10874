"""Evaluation of every lesion × regimen and of the composite, and the joint recommendation.

What is computed (GitHub issue 3, items 5 and 6)
------------------------------------------------
* **Lesions** (:func:`find_lesions`): one per RTDOSE whose RTPLAN gives fractions and a
  prescription; the target is the plan's ReferencedROINumber (else a PTV matched by name).
* **Per lesion × regimen** (:meth:`CaseEvaluator.lesion_rows`): the lesion's plan is scaled by
  ``D / D0`` (:mod:`rtplan_assist.regimens`). Target rows: prescription BED10 and EQD2 (LQ,
  α/β 10 Gy, against the ablative line BED10 >= 100 Gy, status ``info``), PTV D95%, D98% and
  V100% (physical), GTV mean BED10 integrated over the GTV dose distribution (never the BED of
  the mean dose). OAR rows: every constraint of every organ the tables constrain, evaluated on
  the lesion's scaled physical dose with the table at the regimen's fraction number, or the
  nearest tabulated fraction number converted through EQD2 (LQ, the organ's α/β) and marked
  ``converted from n=…`` (:func:`rtplan_assist.constraints.constraints_for`). Where that
  leaves an organ with report-only rows (e.g. the cord at 15 fx: the nearest table is QUANTEC
  at 30 fx), the mandatory rows of the nearest fraction number that has them are converted
  too, so that no fractionation leaves an organ without a mandatory limit. Organs the tables
  constrain but the case lacks give ``not evaluable`` rows.
* **Composite** (:meth:`CaseEvaluator.composite_rows`): for one regimen per lesion, the
  voxel-wise EQD2 of every lesion (its own ``n``, the organ's α/β) summed on a common grid and
  evaluated against limits expressed in EQD2.

Composite limits (decision, documented in every composite row)
---------------------------------------------------------------
Every *tabulated* row of an organ is converted to EQD2 at its own fraction number with the
organ's α/β (LQ; reference §10.3: "``D0.35cc[Gy] <= 18`` in 3 fx → EQD2 36.0 Gy at α/β 2"): a
dose limit becomes an EQD2 limit; a volume metric queried at a dose (``V20Gy``, ``CV12.4Gy``)
has its dose threshold converted and keeps its volume limit. Rows that are relative to the
prescription are left out (they have no EQD2 form without a prescription). Rows are then
grouped per organ × metric (dose metrics by their volume query, ``D0.035cc`` and ``D0.03cc``
apart; volume metrics by their kind and volume limit) and the **most conservative** converted
limit of the highest priority present (mandatory before optimal before report) is applied,
naming its source. The assumption of every conversion (the voxel at the limit got it in ``n``
equal fractions) is that of :func:`rtplan_assist.constraints.convert_constraint`.

Performance
-----------
Physical DVHs are computed once per (lesion dose, structure) and cached; a regimen is an exact
scale of them and a single-lesion EQD2 DVH an exact monotone mapping of the dose axis. Only the
composite needs voxel-wise EQD2 (one summed grid per α/β value), and composite DVHs are cached
per choice. The recommendation prunes individually infeasible regimens first, then visits
combinations by descending total BED10 and evaluates the composite (mandatory limits only,
first by exact lower bounds and sound upper bounds from the per-lesion DVHs, then voxel-wise
when the bounds do not decide) until one passes.
"""

from __future__ import annotations

import copy
import heapq
import html
import math
import re
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from . import __version__
from .constraints import (
    Constraint,
    ConstraintSet,
    _nearest_fraction,
    conservative_threshold,
    constraints_for,
    convert_constraint,
    load_tables,
)
from .dvh import DVH, DVHSampler, compute_dvh, sampling_step_mm
from .errors import ConstraintTableError, EvaluationError
from .geometry import _point_in_polygon, polygon_volume_cc
from .kernels.eqd2 import add_eqd2_box
from .metrics import Metric
from .model import Case, Dose, Grid, Plan, Structure
from .names import NameMatch, folder_mapping, match_structures
from .radiobiology import (
    COMPOSITE_CAVEATS,
    Model,
    bed_transform,
    eqd2,
    eqd2_grid,
    eqd2_transform,
)
from .regimens import ABLATIVE_BED10_GY, DEFAULT_CATALOGUE, TUMOUR_MODEL, Regimen

__all__ = [
    "TIDY_COLUMNS",
    "CaseEvaluator",
    "CompositeLimit",
    "EvaluationResult",
    "Lesion",
    "Recommendation",
    "ResultRow",
    "find_lesions",
    "result_rows_tidy",
    "result_to_dict",
    "result_to_html",
    "result_to_text",
]

ABLATIVE_SOURCE = "ablative line BED10 >= 100 Gy: Radiat Oncol J, PMC4206062 (reference §6.1)"
PRIORITY_RANK = {"mandatory": 0, "optimal": 1, "report": 2}
SITES = ("lung", "liver", "bone", "node", "adrenal", "unknown")
_MAX_COMMON_VOXELS = 30_000_000
#: A lesion sets an organ's composite limits when its dose reaches this fraction of its
#: prescription somewhere in the organ (:meth:`CaseEvaluator.contributors`).
CONTRIBUTION_FRACTION = 0.10


# =============================================================================================
# Records
# =============================================================================================


@dataclass(frozen=True)
class Lesion:
    """One treated lesion: a plan, its total dose and its target.

    Attributes
    ----------
    lesion_id : str
        ``L1``, ``L2``, ... in the order of the plans in the case.
    label : str
        RTPlanLabel (else RTPlanName, else the lesion id).
    site : {"lung", "liver", "bone", "node", "adrenal", "unknown"}
        From the organ structure that contains the target centre, else from the names.
    plan : Plan
    dose : Dose
        Total physical dose of the plan (Gy); a FRACTION dose has been multiplied by the
        planned number of fractions (``dose_scale_note`` says so).
    target : Structure
        The PTV: the plan's ReferencedROINumber, else a structure matched by name.
    gtv : Structure or None
    planned : Regimen
        Planned fractions and prescription.
    dose_scale_note : str
        Empty, or how the RTDOSE was turned into a total plan dose.
    """

    lesion_id: str
    label: str
    site: str
    plan: Plan
    dose: Dose
    target: Structure
    gtv: Structure | None
    planned: Regimen
    dose_scale_note: str = ""


@dataclass(frozen=True)
class ResultRow:
    """One evaluated metric. ``value`` is NaN when not evaluable (``reason`` says why)."""

    patient_id: str
    lesion_id: str
    regimen: str
    structure: str
    organ: str
    role: str
    metric: str
    value: float
    unit: str
    kind: str
    model: str
    alpha_beta_gy: float | None
    comparator: str
    limit: float | None
    goal: float | None
    status: str
    reason: str
    source: str
    constraint_fractions: int | None
    converted_from_fractions: int | None
    priority: str

    def describe(self) -> str:
        """One line for explanations, e.g. ``Esophagus D0.03cc[Gy] = 37.6 Gy > 32.9 Gy ...``."""
        value = "n/a" if math.isnan(self.value) else f"{self.value:.2f} {self.unit}"
        kind = "" if self.kind == "physical" else f" {self.kind}"
        limit = ""
        if self.limit is not None:
            op = self.comparator if self.status != "fail" else _NEGATION[self.comparator]
            limit = f" {op} {self.limit:.2f} {self.unit}"
        where = f" at {self.regimen}" if self.regimen != "composite" else " (composite)"
        conv = (
            f", converted from n={self.converted_from_fractions}"
            if self.converted_from_fractions is not None
            else ""
        )
        ab = f", α/β {self.alpha_beta_gy:g} Gy" if self.alpha_beta_gy is not None else ""
        return (
            f"{self.structure or self.organ} {self.metric}{kind} = {value}{limit}{where} "
            f"[{self.source}{conv}{ab}]"
        )


TIDY_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ResultRow))
_NEGATION = {"<=": ">", "<": ">=", ">=": "<", ">": "<=", "": ""}


@dataclass(frozen=True)
class CompositeLimit:
    """A table row expressed as an EQD2 limit for the composite.

    Attributes
    ----------
    organ : str
    metric : Metric
        The metric on the EQD2 distribution (dose thresholds in EQD2 Gy).
    comparator : str
    limit, goal : float, float or None
        In the metric's unit (EQD2 Gy for dose metrics; cc or % for volume metrics).
    alpha_beta_gy : float
    row : Constraint
        The tabulated row it comes from.
    note : str
        How it was converted.
    """

    organ: str
    metric: Metric
    comparator: str
    limit: float
    goal: float | None
    alpha_beta_gy: float
    row: Constraint
    note: str


@dataclass
class Recommendation:
    """The jointly chosen regimen per lesion.

    Attributes
    ----------
    choice : dict of str to Regimen
        Lesion id → recommended regimen.
    binding : dict of str to str
        Lesion id → the constraint that stopped the next-higher BED10 regimen, for every
        de-escalated lesion.
    deescalated : list of str
        Lesions whose recommended regimen is not the highest-BED10 option of their list.
    composite_status : {"pass", "fail", "not evaluable"}
        Of the mandatory composite limits for ``choice``.
    explanation : list of str
    binding_rows : dict of str to ResultRow
        The binding row behind each ``binding`` text.
    feasible : dict of str to list of Regimen
        Per lesion, the regimens that pass every mandatory per-lesion constraint, highest
        BED10 first.
    composite_evaluations : int
        Voxel-wise composite evaluations the search needed.
    """

    choice: dict[str, Regimen]
    binding: dict[str, str]
    deescalated: list[str]
    composite_status: str
    explanation: list[str]
    binding_rows: dict[str, ResultRow] = field(default_factory=dict)
    feasible: dict[str, list[Regimen]] = field(default_factory=dict)
    composite_evaluations: int = 0


@dataclass
class EvaluationResult:
    """Everything one evaluation produced, for the CLI, the report, the batch and the app."""

    patient_id: str
    folder: str
    lesions: list[Lesion]
    rows: list[ResultRow]
    composite_rows: list[ResultRow]
    recommendation: Recommendation
    choice: dict[str, Regimen]
    warnings: list[str]
    caveats: list[str]
    provenance: dict

    def chosen_rows(self) -> list[ResultRow]:
        """Lesion rows of the chosen regimen of each lesion."""
        labels = {lid: r.label for lid, r in self.choice.items()}
        return [r for r in self.rows if labels.get(r.lesion_id) == r.regimen]

    def verdict(self) -> str:
        """``fail`` when a mandatory row of the chosen regimens or of the composite fails;
        ``not evaluable`` when a mandatory row of a structure present in the case could not be
        evaluated; else ``pass``. Rows of organs the case lacks are listed (``not evaluable``,
        structure ``""``) and in the warnings, but do not decide the verdict."""
        rows = self.chosen_rows() + list(self.composite_rows)
        return rows_verdict(rows) if rows else "not evaluable"


def rows_verdict(rows) -> str:
    """``fail`` when a mandatory row fails; ``not evaluable`` when a mandatory row of a
    structure present in the case has no value; else ``pass`` (rows of absent organs,
    structure ``""``, do not decide)."""
    mandatory = [r for r in rows if r.priority == "mandatory"]
    if any(r.status == "fail" for r in mandatory):
        return "fail"
    if any(r.status == "not evaluable" and r.structure for r in mandatory):
        return "not evaluable"
    return "pass"


# =============================================================================================
# Lesions
# =============================================================================================

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


def _site_of(target: Structure, case: Case, plan: Plan, own: set[str]) -> str:
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


# =============================================================================================
# Helpers
# =============================================================================================


def _compare(value: float, comparator: str, limit: float) -> bool:
    if comparator == "<=":
        return value <= limit + 1e-9
    if comparator == "<":
        return value < limit
    if comparator == ">=":
        return value >= limit - 1e-9
    if comparator == ">":
        return value > limit
    raise EvaluationError(f"unknown comparator {comparator!r}")


def _status(value: float, comparator: str, limit: float, goal: float | None) -> str:
    if math.isnan(value):
        return "not evaluable"
    if not _compare(value, comparator, limit):
        return "fail"
    if goal is not None and not _compare(value, comparator, goal):
        return "goal missed"
    return "pass"


def _short_source(row: Constraint) -> str:
    return f"{row.source_id}, {row.table_ref} ({row.file}:{row.line})"


def _excess(row: ResultRow) -> float:
    """How far a failing row is past its limit, relative (for choosing the binding row)."""
    if row.limit is None or math.isnan(row.value):
        return 0.0
    scale = abs(row.limit) if row.limit else 1.0
    if row.comparator in ("<", "<="):
        return (row.value - row.limit) / scale
    return (row.limit - row.value) / scale


def _choice_key(choice: dict[str, Regimen]) -> tuple:
    return tuple(sorted((k, v.fractions, v.total_dose_gy) for k, v in choice.items()))


# =============================================================================================
# The evaluator
# =============================================================================================


class CaseEvaluator:
    """Evaluate one case: lesions × regimens, the composite, and the recommendation.

    Parameters
    ----------
    case : Case
    tables : ConstraintSet, optional
        Default :func:`rtplan_assist.constraints.load_tables` (every shipped table).
    overrides : dict of str to str, optional
        Case structure name → TG-263 name (``--map``).
    regimens : dict of str to list of Regimen, optional
        Lesion id or ``"*"`` → regimens; default :data:`DEFAULT_CATALOGUE`. The planned
        regimen of each lesion is always added (it is the baseline of the comparison).
    outside : {"exclude", "zero"}
        DVH policy for structure volume outside a dose grid (:mod:`rtplan_assist.dvh`).

    Attributes
    ----------
    case : Case
    lesions : list of Lesion
    name_match : NameMatch
    warnings : list of str
    tables : ConstraintSet
    oar_structures : dict of str to Structure
        TG-263 organ → case structure, for every organ the tables constrain.

    Raises
    ------
    EvaluationError
        No lesion in the case, or regimens for an unknown lesion id.
    """

    def __init__(
        self,
        case: Case,
        *,
        tables: ConstraintSet | None = None,
        overrides: dict[str, str] | None = None,
        regimens: dict[str, list[Regimen]] | None = None,
        outside: str = "exclude",
    ):
        self.case = case
        self.tables = tables if tables is not None else load_tables()
        self.outside = outside
        self.warnings: list[str] = list(case.warnings)
        self.lesions: list[Lesion] = find_lesions(case, self.warnings)
        if not self.lesions:
            raise EvaluationError(
                f"{case.folder}: no lesion to evaluate: no RTDOSE with an RTPLAN that gives "
                "fractions and a prescription"
            )
        self._by_id = {lesion.lesion_id: lesion for lesion in self.lesions}
        organs = self.tables.organs()
        folder_map, map_file = folder_mapping(case.folder)
        if folder_map:
            self.warnings.append(
                f"structure mapping from {Path(map_file).name}: "
                + ", ".join(f"{k} → {v}" for k, v in folder_map.items())
                + (" (command-line mappings take precedence)" if overrides else "")
            )
        merged = {**folder_map, **(overrides or {})}
        self.name_match: NameMatch = match_structures(
            [s.name for s in case.structures], organs, self.tables, merged or None
        )
        by_name = {s.name: s for s in case.structures}
        self.oar_structures: dict[str, Structure] = {}
        for name, organ in self.name_match.matched.items():
            if organ in organs and not by_name[name].is_empty:
                self.oar_structures[organ] = by_name[name]
        self._organ_of = {s.name: o for o, s in self.oar_structures.items()}
        self._report_names(organs)
        self._regimens: dict[str, list[Regimen]] = {}
        regimens = dict(regimens or {})
        unknown = [k for k in regimens if k != "*" and k not in self._by_id]
        if unknown:
            raise EvaluationError(
                f"regimens given for unknown lesion(s) {', '.join(unknown)}; the lesions are "
                f"{', '.join(self._by_id)}"
            )
        for lesion in self.lesions:
            chosen = regimens.get(lesion.lesion_id) or regimens.get("*") or list(DEFAULT_CATALOGUE)
            listed = list(dict.fromkeys(list(chosen) + [lesion.planned]))
            self._regimens[lesion.lesion_id] = sorted(listed)
        # caches
        self._physical: dict[tuple[str, str], DVH] = {}
        self._rows: dict[tuple[str, Regimen], list[ResultRow]] = {}
        self._constraints: dict[tuple[str, int], tuple[list[Constraint], str]] = {}
        self._composite_limits: dict[tuple, dict[str, list[CompositeLimit]]] = {}
        self._composite_notes: dict[str, str] = {}
        self._contributors: dict[str, list[str]] = {}
        self._common: tuple[Grid, bool] | None = None
        self._common_dose: dict[str, np.ndarray] = {}
        self._boxes: dict[str, tuple] = {}
        self._samplers: dict[str, DVHSampler] = {}
        self._organ_cache: OrderedDict = OrderedDict()
        self._composite_rows_cache: OrderedDict = OrderedDict()
        self._single_cache: dict[tuple, DVH | None] = {}
        self._check_cache: dict[tuple, ResultRow | None] = {}  # (choice, organ) → failing row
        self._composite_evaluations = 0
        self.timings: dict[str, float] = {}

    def session_copy(self) -> CaseEvaluator:
        """An evaluator for one more user of the same case, at the cost of a few dict copies.

        It shares the case (doses, structures), the lesions and every cached result (DVHs,
        rows, recorded samples: immutable once made) with this one, and owns copies of every
        container, so its added regimens and new results stay its own and the two can be used
        from different threads (each under its own lock). The app gives each browser session
        one, made from a single unpickled evaluator per patient.
        """
        twin = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, dict | list | set):
                setattr(twin, name, value.copy())
        twin.__dict__.pop("recommend", None)  # an instance override (the app's) is not copied
        return twin

    def __getstate__(self) -> dict:
        # recorded DVH samples are tens of MB and cheap to record again: not pickled (the
        # app stores prepared evaluators on disk)
        state = self.__dict__.copy()
        state["_samplers"] = {}
        return state

    # ----------------------------------------------------------------------------- names
    def _report_names(self, organs: tuple[str, ...]) -> None:
        nm = self.name_match
        targets = {lesion.target.name for lesion in self.lesions}
        targets |= {lesion.gtv.name for lesion in self.lesions if lesion.gtv}
        for amb in nm.ambiguous:
            self.warnings.append(f"ambiguous structure name: {amb.describe()}")
        unmatched = [
            n
            for n in nm.unmatched
            if n not in targets
            and not re.match(r"^\s*(PTV|GTV|CTV|ITV|iGTV|z|opt|ring|help)", n, re.IGNORECASE)
        ]
        if unmatched:
            self.warnings.append(
                "structures without a TG-263 name, not evaluated against constraints (map them "
                f"with --map NAME=TG263): {', '.join(unmatched)}"
            )
        missing = [o for o in organs if o not in self.oar_structures]
        if missing:
            self.warnings.append(
                f"{len(missing)} organ(s) that the constraint tables constrain have no structure "
                f"in the case; their rows are 'not evaluable': {', '.join(missing)}"
            )

    def _missing_reason(self, organ: str) -> str:
        for amb in self.name_match.ambiguous:
            if amb.key == organ or organ in amb.candidates:
                return f"not evaluated: {amb.describe()}"
        return (
            f"no structure of the case maps to TG-263 '{organ}'; if one exists under another "
            f"name, map it with --map NAME={organ}"
        )

    # ----------------------------------------------------------------------------- regimens
    def regimens_for(self, lesion_id: str) -> list[Regimen]:
        """Regimens evaluated for a lesion, ordered by (fractions, total dose)."""
        self._lesion(lesion_id)
        return list(self._regimens[lesion_id])

    def add_regimen(self, lesion_id: str, regimen: Regimen) -> None:
        """Add a regimen to a lesion's list (no-op when present)."""
        self._lesion(lesion_id)
        if regimen not in self._regimens[lesion_id]:
            self._regimens[lesion_id] = sorted(self._regimens[lesion_id] + [regimen])

    def _lesion(self, lesion_id: str) -> Lesion:
        try:
            return self._by_id[lesion_id]
        except KeyError:
            raise EvaluationError(
                f"unknown lesion '{lesion_id}'; the lesions are {', '.join(self._by_id)}"
            ) from None

    # ----------------------------------------------------------------------------- DVHs
    def _lesion_structures(self, lesion: Lesion) -> list[Structure]:
        wanted = [lesion.target] + ([lesion.gtv] if lesion.gtv else [])
        wanted += list(self.oar_structures.values())
        return list({s.name: s for s in wanted if not s.is_empty}.values())

    def _compute_physical(self, tasks: list[tuple[Lesion, Structure]]) -> None:
        """Physical DVHs of (lesion, structure) pairs on two threads, largest first."""
        unique = {(lesion.lesion_id, s.name): (lesion, s) for lesion, s in tasks}
        todo = [item for key, item in unique.items() if key not in self._physical]
        if not todo:
            return
        t0 = time.perf_counter()
        todo.sort(key=lambda item: -sum(len(p) for plane in item[1].polygons for p in plane))

        def run(item):
            lesion, structure = item
            return compute_dvh(structure, lesion.dose, outside=self.outside)

        if len(todo) == 1:
            results = [run(todo[0])]
        else:
            with ThreadPoolExecutor(max_workers=2) as pool:
                results = list(pool.map(run, todo))
        for (lesion, structure), dvh in zip(todo, results):
            self._physical[(lesion.lesion_id, structure.name)] = dvh
        self.timings["physical_dvh_s"] = (
            self.timings.get("physical_dvh_s", 0.0) + time.perf_counter() - t0
        )

    def _warm(self) -> None:
        """Compute every lesion's physical DVHs in one pool (better balance than per lesion)."""
        self._compute_physical(
            [(lesion, s) for lesion in self.lesions for s in self._lesion_structures(lesion)]
        )

    def _physical_dvhs(
        self, lesion: Lesion, structures: list[Structure] | None = None
    ) -> dict[str, DVH]:
        structures = structures if structures is not None else self._lesion_structures(lesion)
        self._compute_physical([(lesion, s) for s in structures if not s.is_empty])
        return {
            s.name: self._physical[(lesion.lesion_id, s.name)] for s in structures if not s.is_empty
        }

    def lesion_dvhs(
        self,
        lesion_id: str,
        regimen: Regimen,
        kind: str = "physical",
        structures: list[str] | None = None,
    ) -> dict[str, DVH]:
        """DVHs of one lesion's plan scaled to ``regimen``.

        Parameters
        ----------
        lesion_id : str
        regimen : Regimen
        kind : {"physical", "EQD2"}
            ``EQD2``: the dose axis mapped with each structure's α/β (targets 10 Gy; OARs their
            organ's default), exact for one plan; means integrated from the distribution.
        structures : list of str, optional
            Case structure names; default the lesion's PTV and GTV and every constrained OAR.
            Structures without an α/β are left out of an EQD2 request.

        Returns
        -------
        dict of str to DVH
        """
        lesion = self._lesion(lesion_id)
        if kind not in ("physical", "EQD2"):
            raise EvaluationError(f"kind must be 'physical' or 'EQD2', got {kind!r}")
        if structures is None:
            wanted = self._lesion_structures(lesion)
        else:
            by_name = {s.name: s for s in self.case.structures}
            missing = [n for n in structures if n not in by_name]
            if missing:
                raise EvaluationError(f"no structure {', '.join(missing)} in the case")
            wanted = [by_name[n] for n in structures if not by_name[n].is_empty]
        factor = regimen.scale_from(lesion.planned)
        out = {}
        for name, dvh in self._physical_dvhs(lesion, wanted).items():
            scaled = dvh.scaled(factor)
            if kind == "physical":
                out[name] = scaled
                continue
            ab = self._alpha_beta_of(name, lesion)
            if ab is None:
                continue
            model = Model("LQ", ab)
            out[name] = scaled.mapped(
                eqd2_transform(regimen.fractions, model), "EQD2", model.describe()
            )
        return out

    def _alpha_beta_of(self, structure_name: str, lesion: Lesion | None = None) -> float | None:
        targets = {lesion.target.name} | ({lesion.gtv.name} if lesion and lesion.gtv else set())
        if lesion is not None and structure_name in targets:
            return TUMOUR_MODEL.alpha_beta_gy
        if any(
            structure_name in (l.target.name, getattr(l.gtv, "name", None)) for l in self.lesions
        ):
            return TUMOUR_MODEL.alpha_beta_gy
        organ = self._organ_of.get(structure_name) or self.name_match.matched.get(structure_name)
        return self.tables.alpha_beta_for(organ) if organ else None

    # ----------------------------------------------------------------------------- constraints
    def _constraints_at(self, organ: str, fractions: int) -> tuple[list[Constraint], str]:
        """Rows of an organ at a fraction number, and a note when something was left out.

        :func:`rtplan_assist.constraints.constraints_for` gives the rows tabulated at
        ``fractions`` or converted from the nearest tabulated fraction number. When none of
        those rows is mandatory but the organ has mandatory rows at another fraction number
        (e.g. the cord at 15 fx: the nearest table, QUANTEC at 30 fx, is report-only), the
        mandatory rows of the nearest fraction number that has them are converted too and
        added (marked ``converted from n=…``): a fractionation outside the tables must not
        leave an organ without a mandatory limit.
        """
        key = (organ, fractions)
        if key in self._constraints:
            return self._constraints[key]
        note = ""
        rows_all = [c for c in self.tables.constraints if c.organ == organ]
        ab = self.tables.alpha_beta_for(organ)

        def convert_from(n_src: int, only_mandatory: bool) -> tuple[list[Constraint], list[str]]:
            out, refused = [], []
            for c in rows_all:
                if c.fractions != n_src or (only_mandatory and c.priority != "mandatory"):
                    continue
                try:
                    out.append(convert_constraint(c, fractions, c.alpha_beta or ab))
                except ConstraintTableError as exc:
                    refused.append(str(exc))
            return out, refused

        try:
            rows = constraints_for(organ, fractions, self.tables)
        except ConstraintTableError:
            # a row relative to the prescription cannot be converted: convert the others
            tabulated = tuple(sorted({c.fractions for c in rows_all}))
            rows, refused = convert_from(_nearest_fraction(fractions, tabulated), False)
            note = "; ".join(refused)
        if rows_all and not any(c.priority == "mandatory" for c in rows):
            with_mandatory = tuple(
                sorted({c.fractions for c in rows_all if c.priority == "mandatory"})
            )
            if with_mandatory:
                n_src = _nearest_fraction(fractions, with_mandatory)
                extra, refused = convert_from(n_src, True)
                rows = list(rows) + extra
                if refused:
                    note = "; ".join(x for x in [note] + refused if x)
        self._constraints[key] = (list(rows), note)
        return self._constraints[key]

    # ----------------------------------------------------------------------------- rows
    def lesion_rows(self, lesion_id: str, regimen: Regimen) -> list[ResultRow]:
        """Target rows and every OAR constraint row of one lesion at one regimen.

        The lesion's physical DVHs (computed once) are scaled by ``D / D0``; constraints come
        from the table at ``regimen.fractions`` or are converted from the nearest tabulated
        fraction number (marked). Cached per (lesion, regimen).
        """
        lesion = self._lesion(lesion_id)
        key = (lesion_id, regimen)
        if key in self._rows:
            return list(self._rows[key])
        dvhs = self._physical_dvhs(lesion)
        factor = regimen.scale_from(lesion.planned)
        rows = self._target_rows(lesion, regimen, dvhs, factor)
        for organ in self.tables.organs():
            rows += self._oar_rows(lesion, regimen, organ, dvhs, factor)
        self._rows[key] = rows
        return list(rows)

    def _row(self, lesion: Lesion | None, regimen: str, **values) -> ResultRow:
        base = {
            "patient_id": self.case.patient_id,
            "lesion_id": lesion.lesion_id if lesion else "composite",
            "regimen": regimen,
            "structure": "",
            "organ": "",
            "role": "oar",
            "metric": "",
            "value": math.nan,
            "unit": "Gy",
            "kind": "physical",
            "model": "",
            "alpha_beta_gy": None,
            "comparator": "",
            "limit": None,
            "goal": None,
            "status": "info",
            "reason": "",
            "source": "",
            "constraint_fractions": None,
            "converted_from_fractions": None,
            "priority": "",
        }
        base.update(values)
        return ResultRow(**base)

    def _target_rows(self, lesion, regimen, dvhs, factor) -> list[ResultRow]:
        label = regimen.label
        n = regimen.fractions
        ptv = lesion.target.name
        bed10 = regimen.bed10_gy()
        eqd2_10 = regimen.eqd2_10_gy()
        reached = "reached" if bed10 >= ABLATIVE_BED10_GY - 1e-9 else "not reached"
        common = {
            "structure": ptv,
            "role": "target",
            "constraint_fractions": n,
            "priority": "report",
        }
        rows = [
            self._row(
                lesion,
                label,
                metric="Rx[Gy]",
                value=bed10,
                kind="BED",
                model="LQ",
                alpha_beta_gy=10.0,
                comparator=">=",
                limit=ABLATIVE_BED10_GY,
                status="info",
                reason=(
                    f"prescription {regimen.total_dose_gy:g} Gy in {n} × "
                    f"{regimen.dose_per_fraction_gy:.3g} Gy: BED10 {bed10:.1f} Gy; ablative line "
                    f"{ABLATIVE_BED10_GY:g} Gy {reached}"
                ),
                source=ABLATIVE_SOURCE,
                **common,
            ),
            self._row(
                lesion,
                label,
                metric="Rx[Gy]",
                value=eqd2_10,
                kind="EQD2",
                model="LQ",
                alpha_beta_gy=10.0,
                status="info",
                reason=f"prescription EQD2 at α/β 10 Gy: {eqd2_10:.1f} Gy",
                source="LQ (reference §6.1)",
                **common,
            ),
        ]
        ptv_dvh = dvhs.get(ptv)
        for metric in ("D95%[Gy]", "D98%[Gy]", "V100%[%]"):
            if ptv_dvh is None:
                rows.append(
                    self._row(
                        lesion,
                        label,
                        metric=metric,
                        status="not evaluable",
                        reason=f"{ptv} has no contours",
                        **common,
                    )
                )
                continue
            mv = ptv_dvh.scaled(factor).metric(metric, prescription_gy=regimen.total_dose_gy)
            reason = mv.note
            if not reason and mv.unit == "Gy":
                reason = f"{100 * mv.value / regimen.total_dose_gy:.1f} % of the prescription"
            elif not reason:
                reason = f"volume receiving >= {regimen.total_dose_gy:g} Gy"
            reason += self._coverage_note(ptv_dvh)
            rows.append(
                self._row(
                    lesion,
                    label,
                    metric=metric,
                    value=mv.value,
                    unit=mv.unit,
                    status="info" if mv.evaluable else "not evaluable",
                    reason=reason,
                    source="DVH (contour-exact engine)",
                    **common,
                )
            )
        gtv_common = dict(common, structure=lesion.gtv.name if lesion.gtv else "")
        if lesion.gtv is None or lesion.gtv.name not in dvhs:
            rows.append(
                self._row(
                    lesion,
                    label,
                    metric="Mean[Gy]",
                    kind="BED",
                    model="LQ",
                    alpha_beta_gy=10.0,
                    status="not evaluable",
                    reason=f"no GTV found for {lesion.lesion_id} (expected e.g. "
                    f"{re.sub('PTV', 'GTV', ptv, flags=re.IGNORECASE)})",
                    **gtv_common,
                )
            )
        else:
            gtv_dvh = dvhs[lesion.gtv.name].scaled(factor)
            mapped = gtv_dvh.mapped(bed_transform(n, TUMOUR_MODEL), "BED", "LQ, α/β = 10 Gy")
            rows.append(
                self._row(
                    lesion,
                    label,
                    metric="Mean[Gy]",
                    value=mapped.dmean_gy,
                    kind="BED",
                    model="LQ",
                    alpha_beta_gy=10.0,
                    comparator=">=",
                    limit=ABLATIVE_BED10_GY,
                    status="info" if not math.isnan(mapped.dmean_gy) else "not evaluable",
                    reason=(
                        "mean of voxel BED10 over the GTV dose distribution (not the BED of the "
                        f"mean dose, {gtv_dvh.dmean_gy:.2f} Gy physical)"
                        + self._coverage_note(dvhs[lesion.gtv.name])
                    ),
                    source=ABLATIVE_SOURCE,
                    **gtv_common,
                )
            )
        return rows

    @staticmethod
    def _coverage_note(dvh: DVH, who: str = "this lesion's") -> str:
        if dvh.outside_cc > 1e-6 * max(dvh.volume_cc, 1e-9):
            frac = dvh.outside_cc / max(dvh.outside_cc + dvh.dvh_volume_cc, 1e-12)
            how = (
                "excluded (not assumed 0 Gy)"
                if dvh.outside_policy == "exclude"
                else "counted at 0 Gy"
            )
            return (
                f"; {frac:.1%} ({dvh.outside_cc:.2f} cc) of {dvh.name} lies outside {who} dose "
                f"grid: {how}"
            )
        return ""

    def _oar_rows(self, lesion, regimen, organ, dvhs, factor) -> list[ResultRow]:
        label = regimen.label
        n = regimen.fractions
        constraints, table_note = self._constraints_at(organ, n)
        structure = self.oar_structures.get(organ)
        rows = []
        for c in constraints:
            base = {
                "organ": organ,
                "metric": c.metric,
                "unit": c.unit,
                "kind": c.dose_kind,
                "model": "LQ" if (c.converted_from_fractions or c.dose_kind != "physical") else "",
                "alpha_beta_gy": c.alpha_beta
                if (c.converted_from_fractions or c.dose_kind != "physical")
                else None,
                "comparator": c.comparator,
                "limit": c.limit,
                "goal": c.goal,
                "source": _short_source(c),
                "constraint_fractions": c.fractions,
                "converted_from_fractions": c.converted_from_fractions,
                "priority": c.priority,
            }
            conv = (
                f"converted from n={c.converted_from_fractions}: {c.conversion_note}"
                if c.converted_from_fractions
                else ""
            )
            if structure is None or structure.name not in dvhs:
                reason = self._missing_reason(organ)
                rows.append(
                    self._row(
                        lesion,
                        label,
                        status="not evaluable",
                        reason="; ".join(x for x in (reason, conv) if x),
                        **base,
                    )
                )
                continue
            dvh = dvhs[structure.name].scaled(factor)
            if c.dose_kind != "physical":
                model = Model("LQ", c.alpha_beta)
                transform = (
                    eqd2_transform(n, model) if c.dose_kind == "EQD2" else bed_transform(n, model)
                )
                dvh = dvh.mapped(transform, c.dose_kind, model.describe())
            value, reason = self._evaluate(dvh, c, regimen.total_dose_gy)
            status = _status(value, c.comparator, c.limit, c.goal)
            if math.isnan(value) and reason.startswith("PASS:"):
                status, reason, value = "pass", reason[5:], math.nan
            text = "; ".join(x for x in (reason, conv) if x)
            text += self._coverage_note(dvhs[structure.name])
            rows.append(
                self._row(
                    lesion,
                    label,
                    structure=structure.name,
                    value=value,
                    status=status,
                    reason=text,
                    **base,
                )
            )
        if table_note:
            rows.append(
                self._row(
                    lesion,
                    label,
                    organ=organ,
                    structure=structure.name if structure else "",
                    status="not evaluable",
                    reason=table_note,
                    priority="report",
                )
            )
        return rows

    @staticmethod
    def _evaluate(dvh: DVH, c: Constraint | CompositeLimit, prescription_gy: float | None):
        """(value, reason) of a constraint on a DVH; reason ``PASS:...`` for trivially met."""
        metric = c.parsed_metric if isinstance(c, Constraint) else c.metric
        comparator = c.comparator
        limit = c.limit
        mv = dvh.metric(metric, prescription_gy=prescription_gy)
        unit = mv.unit
        kind = "" if dvh.dose_kind == "physical" else f" {dvh.dose_kind}"
        if mv.evaluable:
            verb = "meets" if _compare(mv.value, comparator, limit) else "violates"
            return mv.value, f"{mv.value:.2f} {unit}{kind} {verb} {comparator} {limit:.4g} {unit}"
        if (
            metric.kind == "D"
            and metric.query_unit == "cc"
            and comparator in ("<", "<=")
            and dvh.dvh_volume_cc > 0
            and dvh.dvh_volume_cc < metric.value
        ):
            return math.nan, (
                f"PASS:{dvh.name} ({dvh.dvh_volume_cc:.2f} cc in the dose grid) is smaller than "
                f"{metric.value:g} cc, so no {metric.value:g} cc can exceed {limit:g} {unit}"
            )
        return math.nan, mv.note or "not evaluable"

    # ----------------------------------------------------------------------------- composite
    def _composite_alpha_beta(self, organ: str) -> float | None:
        ab = self.tables.alpha_beta_for(organ)
        if ab is None:
            stated = {c.alpha_beta for c in self.tables.constraints if c.organ == organ}
            stated.discard(None)
            ab = stated.pop() if len(stated) == 1 else None
        return ab

    def contributors(self, organ: str) -> list[str]:
        """Lesions whose planned dose reaches at least 10 % of their prescription somewhere in
        the organ (physical Dmax of the organ; scaling keeps the ratio, so this does not depend
        on the regimen). When none does, the lesion with the highest ratio. These lesions'
        fractionations set the organ's composite limits."""
        if organ in self._contributors:
            return self._contributors[organ]
        structure = self.oar_structures[organ]
        ratios = []
        for lesion in self.lesions:
            dvh = self._physical_dvhs(lesion, [structure])[structure.name]
            dmax = dvh.dmax_gy if not math.isnan(dvh.dmax_gy) else 0.0
            ratios.append((dmax / lesion.planned.total_dose_gy, lesion.lesion_id))
        found = [lid for ratio, lid in ratios if ratio >= CONTRIBUTION_FRACTION]
        if not found:
            found = [max(ratios)[1]]
        self._contributors[organ] = found
        return found

    def composite_limits(self, choice: dict[str, Regimen]) -> dict[str, list[CompositeLimit]]:
        """Organ → EQD2 limits of the composite for a choice (a regimen per lesion, or a subset).

        For each organ, the fraction numbers of its contributing lesions
        (:meth:`contributors`) select the organ's rows exactly as for one lesion (tabulated, or
        converted from the nearest tabulated ``n`` and marked); each row is converted to EQD2
        at its ``n`` with the organ's α/β (LQ); per organ × metric the most conservative limit
        of the highest priority present applies, naming its source. With one contributing
        lesion this is that lesion's own limit in EQD2, so the composite agrees with the
        lesion's own evaluation where it alone irradiates the organ; where several do, the
        strictest of their fractionations applies. Organs none of whose contributors is in
        ``choice`` are left out.
        """
        limits: dict[str, list[CompositeLimit]] = {}
        for organ in self.tables.organs():
            if organ in self.oar_structures:
                lids = [lid for lid in self.contributors(organ) if lid in choice]
            else:
                lids = list(choice)
            nset = tuple(sorted({choice[lid].fractions for lid in lids}))
            if not nset:
                continue
            found = self._organ_limits(organ, nset, tuple(lids))
            if found:
                limits[organ] = found
        return limits

    def _organ_limits(self, organ: str, nset: tuple[int, ...], lids: tuple[str, ...]):
        key = (organ, nset)
        if key in self._composite_limits:
            return self._composite_limits[key]
        ab = self._composite_alpha_beta(organ)
        if ab is None:
            self._composite_notes[organ] = (
                f"{organ}: no α/β in alpha_beta.csv or the tables; no composite EQD2 limit"
            )
            self._composite_limits[key] = []
            return []
        model = Model("LQ", ab)
        groups: dict[tuple, list[tuple]] = {}
        for n in nset:
            for c in self._constraints_at(organ, n)[0]:
                m = c.parsed_metric
                if c.limit_relative_to == "rx" or m.needs_prescription:
                    continue
                converted = self._to_eqd2(c, model)
                if converted is None:
                    continue
                metric, limit, goal, note = converted
                upper = c.comparator[0] == "<"
                if metric.returns_dose:
                    group = (m.kind, m.value, m.query_unit, upper)
                    strict = limit if upper else -limit
                else:
                    group = (m.kind, m.out_unit, c.limit, upper)
                    strict = metric.value
                rank = PRIORITY_RANK.get(c.priority, 3)
                groups.setdefault(group, []).append(
                    (rank, strict, c.fractions, c, metric, limit, goal, note)
                )
        which = (
            f"fraction number(s) {', '.join(map(str, nset))} of the lesion(s) whose dose reaches "
            f">= {CONTRIBUTION_FRACTION:.0%} of their prescription in {organ}"
        )
        chosen = []
        for candidates in groups.values():
            candidates.sort(key=lambda item: item[:3])
            _, _, _, c, metric, limit, goal, note = candidates[0]
            note += f"; limits of the {which}"
            if len(candidates) > 1:
                note += f"; the most conservative of {len(candidates)} rows for this metric"
            chosen.append(CompositeLimit(organ, metric, c.comparator, limit, goal, ab, c, note))
        chosen.sort(key=lambda x: (PRIORITY_RANK.get(x.row.priority, 3), str(x.metric)))
        self._composite_limits[key] = chosen
        return chosen

    @staticmethod
    def _to_eqd2(c: Constraint, model: Model):
        m = c.parsed_metric
        ab = model.alpha_beta_gy
        origin = f"n={c.fractions}"
        if c.converted_from_fractions is not None:
            origin += f", itself converted from n={c.converted_from_fractions}"

        def conv(value: float, unit: str) -> float:
            gy = value * (0.01 if unit == "cGy" else 1.0)
            if c.dose_kind == "physical":
                return float(eqd2(gy, c.fractions, model))
            if c.dose_kind == "BED":
                return gy / (1.0 + 2.0 / ab)
            return gy

        if m.returns_dose:
            limit = conv(c.limit, m.out_unit)
            goal = conv(c.goal, m.out_unit) if c.goal is not None else None
            metric = Metric(m.kind, m.value, m.query_unit, "Gy")
            note = (
                f"{c.metric} {c.comparator} {c.limit:.4g} {c.unit} {c.dose_kind} in "
                f"{c.fractions} fx → EQD2 {limit:.2f} Gy (LQ, α/β {ab:g} Gy; converted from "
                f"{origin})"
            )
            return metric, limit, goal, note
        if m.query_unit not in ("Gy", "cGy"):
            return None
        threshold = conservative_threshold(conv(m.value, m.query_unit), m.kind, c.comparator)
        metric = Metric(m.kind, threshold, "Gy", m.out_unit)
        note = (
            f"{c.metric} {c.comparator} {c.limit:g} {c.unit} in {c.fractions} fx: threshold "
            f"{m.value:.4g} {m.query_unit} → EQD2 {threshold:.2f} Gy (LQ, α/β {ab:g} Gy; "
            f"converted from {origin})"
        )
        return metric, c.limit, c.goal, note

    def common_grid(self) -> tuple[Grid, bool]:
        """The grid of the composite and whether every lesion dose already lies on it.

        Same-geometry lesion grids are used as they are; otherwise a uniform grid covering the
        union of the lesion grids at the finest spacing (coarsened if it would exceed
        30 million voxels), onto which each lesion's physical dose is resampled trilinearly
        (``kernels/resample.py``; 0 Gy outside a lesion's grid, reported per OAR).
        """
        if self._common is not None:
            return self._common
        grids = [lesion.dose.grid for lesion in self.lesions]
        if all(g.same_geometry(grids[0]) for g in grids[1:]):
            self._common = (grids[0], True)
            return self._common
        extents = np.array([g.extent_mm() for g in grids])
        lo = extents[:, :, 0].min(axis=0)
        hi = extents[:, :, 1].max(axis=0)
        spacing = np.array([min(float(g.spacing[a]) for g in grids) for a in range(3)])
        while True:
            counts = np.maximum(np.floor((hi - lo) / spacing + 1e-6).astype(int), 1)
            if int(np.prod(counts)) <= _MAX_COMMON_VOXELS:
                break
            spacing = spacing * 1.25
        origin = lo + spacing / 2
        grid = Grid.uniform(origin, spacing, (counts[2], counts[1], counts[0]))
        self.warnings.append(
            "lesion dose grids differ: the composite is computed on a common "
            f"{grid.shape[2]}×{grid.shape[1]}×{grid.shape[0]} grid of "
            f"{spacing[0]:.2f}×{spacing[1]:.2f}×{spacing[2]:.2f} mm (trilinear resampling)"
        )
        self._common = (grid, False)
        return self._common

    def _lesion_on_common(self, lesion: Lesion) -> np.ndarray:
        if lesion.lesion_id in self._common_dose:
            return self._common_dose[lesion.lesion_id]
        grid, same = self.common_grid()
        if same:
            values = lesion.dose.dose_gy
        else:
            from .kernels.resample import resample_trilinear

            src = lesion.dose.grid
            ext = src.extent_mm()
            half = (
                (src.z_mm[0] - ext[2, 0], ext[2, 1] - src.z_mm[-1]),
                (src.spacing[1] / 2, src.spacing[1] / 2),
                (src.spacing[0] / 2, src.spacing[0] / 2),
            )
            values, _ = resample_trilinear(
                lesion.dose.dose_gy,
                (src.z_mm, src.y_mm, src.x_mm),
                half,
                (grid.z_mm, grid.y_mm, grid.x_mm),
            )
        self._common_dose[lesion.lesion_id] = values
        return values

    def _check_choice(self, choice: dict[str, Regimen]) -> dict[str, Regimen]:
        choice = dict(choice)
        for lid in choice:
            self._lesion(lid)
        missing = [lesion.lesion_id for lesion in self.lesions if lesion.lesion_id not in choice]
        if missing:
            raise EvaluationError(
                f"the composite needs a regimen for every lesion; missing {', '.join(missing)}"
            )
        return choice

    def composite_eqd2(
        self, choice: dict[str, Regimen], alpha_beta_gy: float = 3.0
    ) -> tuple[Grid, np.ndarray]:
        """Voxel-wise sum of the lesions' EQD2 at one α/β on the common grid.

        Parameters
        ----------
        choice : dict of str to Regimen
            A regimen for every lesion.
        alpha_beta_gy : float
            One α/β for the whole grid (default 3 Gy, generic late-responding tissue): a single
            exported grid needs one value; the composite rows use each organ's own α/β.

        Returns
        -------
        grid : Grid
        eqd2_gy : (nz, ny, nx) float64
            ``Σ_lesions D_i (D_i / n + α/β) / (2 + α/β)`` with each lesion's own ``n`` and its
            dose scaled to the chosen regimen (reference §6.6).
        """
        choice = self._check_choice(choice)
        grid, _ = self.common_grid()
        model = Model("LQ", float(alpha_beta_gy))
        total = None
        for lesion in self.lesions:
            regimen = choice[lesion.lesion_id]
            physical = np.asarray(self._lesion_on_common(lesion), dtype=np.float64) * (
                regimen.scale_from(lesion.planned)
            )
            part = eqd2_grid(physical, regimen.fractions, model)
            total = part if total is None else np.add(total, part, out=total)
        return grid, total

    def _box(self, structure: Structure) -> tuple[tuple[slice, slice, slice], Grid]:
        """Sub-grid of the common grid that holds ``structure`` with a margin (cached)."""
        if structure.name in self._boxes:
            return self._boxes[structure.name]
        grid, _ = self.common_grid()
        bounds = structure.bounds_mm()
        slab = max(structure.slice_thickness_mm or 0.0, 5.0)
        margin = np.array([2 * grid.spacing[0], 2 * grid.spacing[1], slab + 2 * grid.spacing[2]])
        lo = bounds[:, 0] - margin
        hi = bounds[:, 1] + margin
        axes = (grid.x_mm, grid.y_mm, grid.z_mm)
        cuts = []
        for axis in range(3):
            coords = axes[axis]
            start = max(int(np.searchsorted(coords, lo[axis], side="left")) - 1, 0)
            stop = min(int(np.searchsorted(coords, hi[axis], side="right")) + 1, len(coords))
            cuts.append(slice(start, max(stop, start + 1)))
        sx, sy, sz = cuts
        z = grid.z_mm[sz]
        origin = np.array([grid.x_mm[sx][0], grid.y_mm[sy][0], z[0]])
        sub = Grid(
            origin, grid.spacing.copy(), (len(z), sy.stop - sy.start, sx.stop - sx.start), z.copy()
        )
        self._boxes[structure.name] = ((sz, sy, sx), sub)
        return self._boxes[structure.name]

    def _composite_step(self, structure: Structure, grid: Grid) -> float:
        key = ("step", structure.name)
        if key not in self._boxes:
            self._boxes[key] = sampling_step_mm(polygon_volume_cc(structure), grid)
        return self._boxes[key]

    def _organ_composite(self, organ: str, regimens: tuple[tuple[str, Regimen], ...]) -> DVH:
        """Composite EQD2 DVH (organ α/β) of ``organ`` for the listed lesions (voxel-wise)."""
        key = (organ, regimens)
        if key in self._organ_cache:
            self._organ_cache.move_to_end(key)
            return self._organ_cache[key]
        structure = self.oar_structures[organ]
        ab = self._composite_alpha_beta(organ)
        (sz, sy, sx), sub = self._box(structure)
        sampler = self._sampler(structure, sub)
        total = np.zeros(sub.shape, dtype=np.float64)
        for lid, regimen in regimens:
            lesion = self._by_id[lid]
            # EQD2 = D (D/n + α/β) / (2 + α/β), voxel by voxel (reference §6.5), on the
            # voxels the organ's DVH reads
            add_eqd2_box(total, self._lesion_on_common(lesion), (sz.start, sy.start, sx.start),
                         regimen.scale_from(lesion.planned), regimen.fractions, ab,
                         runs=sampler.support_runs)
        t0 = time.perf_counter()
        dvh = sampler.dvh(total)
        self.timings["composite_dvh_s"] = (
            self.timings.get("composite_dvh_s", 0.0) + time.perf_counter() - t0
        )
        dvh = replace(dvh, dose_kind="EQD2", model=f"LQ, α/β = {ab:g} Gy", warnings=())
        self._organ_cache[key] = dvh
        while len(self._organ_cache) > 2048:
            self._organ_cache.popitem(last=False)
        return dvh

    def _sampler(self, structure: Structure, sub: Grid) -> DVHSampler:
        """The organ's DVH samples on its box of the common grid, recorded once (the contour
        walk is most of a DVH's cost; every composite of the search replays it)."""
        if structure.name not in self._samplers:
            # Composite DVHs sample rows every voxel at most (not the 0.05-0.2 mm of the
            # physical per-lesion DVHs): the summed EQD2 grid is itself a voxel-wise estimate
            # (reference §6.6), and this keeps a regimen change interactive.
            h = max(self._composite_step(structure, sub), float(min(sub.spacing)))
            self._samplers[structure.name] = DVHSampler(
                structure, sub, outside=self.outside, h_mm=h, label="composite"
            )
        return self._samplers[structure.name]

    def _organ_composites(self, organs: list[str], choice: dict[str, Regimen]) -> dict[str, DVH]:
        regs = tuple(sorted(choice.items()))
        todo = [o for o in organs if (o, regs) not in self._organ_cache]
        if len(todo) > 1:
            # big organs first; the DVH kernel releases the GIL, so two threads share the work
            todo.sort(
                key=lambda o: -float(np.prod(np.ptp(self.oar_structures[o].bounds_mm(), axis=1)))
            )
            with ThreadPoolExecutor(max_workers=2) as pool:
                list(pool.map(lambda o: self._organ_composite(o, regs), todo))
        return {o: self._organ_composite(o, regs) for o in organs}

    def composite_dvhs(self, choice: dict[str, Regimen]) -> dict[str, DVH]:
        """EQD2 DVHs (each organ's α/β, voxel-wise sum) of every constrained OAR, keyed by case
        structure name; cached per choice."""
        choice = self._check_choice(choice)
        limits = self.composite_limits(choice)
        organs = [o for o in limits if o in self.oar_structures]
        done = self._organ_composites(organs, choice)
        return {self.oar_structures[o].name: done[o] for o in organs}

    def composite_rows(
        self, choice: dict[str, Regimen], *, mandatory_only: bool = False
    ) -> list[ResultRow]:
        """Rows of the composite EQD2 against EQD2 limits, one regimen per lesion.

        Every row: EQD2, LQ, the organ's α/β, the converted limit and its source
        (``converted_from_fractions``; the reason gives the conversion), and, where a lesion's
        own dose grid does not cover the OAR, which lesion and how much. Organs the case lacks
        give ``not evaluable`` rows. Cached per choice.
        """
        choice = self._check_choice(choice)
        key = (_choice_key(choice), mandatory_only)
        if key in self._composite_rows_cache:
            return list(self._composite_rows_cache[key])
        limits = self.composite_limits(choice)
        organs = [
            o
            for o, items in limits.items()
            if not mandatory_only or any(x.row.priority == "mandatory" for x in items)
        ]
        dvhs = self._organ_composites([o for o in organs if o in self.oar_structures], choice)
        label = ", ".join(f"{lid} {r.label}" for lid, r in sorted(choice.items()))
        rows: list[ResultRow] = []
        for organ in organs:
            structure = self.oar_structures.get(organ)
            for lim in limits[organ]:
                if mandatory_only and lim.row.priority != "mandatory":
                    continue
                rows.append(self._composite_row(organ, structure, lim, dvhs.get(organ), label))
        if not mandatory_only:
            for organ, note in self._composite_notes.items():
                rows.append(
                    self._row(
                        None,
                        "composite",
                        organ=organ,
                        status="not evaluable",
                        reason=note,
                        kind="EQD2",
                    )
                )
        self._composite_rows_cache[key] = rows
        while len(self._composite_rows_cache) > 256:
            self._composite_rows_cache.popitem(last=False)
        return list(rows)

    def _composite_row(self, organ, structure, lim: CompositeLimit, dvh, label) -> ResultRow:
        base = {
            "organ": organ,
            "metric": str(lim.metric),
            "unit": lim.metric.out_unit,
            "kind": "EQD2",
            "model": "LQ",
            "alpha_beta_gy": lim.alpha_beta_gy,
            "comparator": lim.comparator,
            "limit": lim.limit,
            "goal": lim.goal,
            "source": _short_source(lim.row),
            "constraint_fractions": None,
            "converted_from_fractions": lim.row.converted_from_fractions or lim.row.fractions,
            "priority": lim.row.priority,
        }
        if structure is None or dvh is None:
            return self._row(
                None,
                "composite",
                status="not evaluable",
                reason=f"{self._missing_reason(organ)}; limit: {lim.note}",
                **base,
            )
        value, reason = self._evaluate(dvh, lim, None)
        status = _status(value, lim.comparator, lim.limit, lim.goal)
        if math.isnan(value) and reason.startswith("PASS:"):
            status, reason = "pass", reason[5:]
        text = f"sum of voxel EQD2 ({label}); {reason}; limit: {lim.note}"
        text += self._composite_coverage(structure) + self._coverage_note(dvh, "the common")
        return self._row(
            None,
            "composite",
            structure=structure.name,
            value=value,
            status=status,
            reason=text,
            **base,
        )

    def _composite_coverage(self, structure: Structure) -> str:
        notes = []
        for lesion in self.lesions:
            dvh = self._physical_dvhs(lesion, [structure])[structure.name]
            if dvh.outside_cc > 1e-6 * max(dvh.volume_cc, 1e-9):
                frac = dvh.outside_cc / max(dvh.outside_cc + dvh.dvh_volume_cc, 1e-12)
                notes.append(
                    f"{lesion.lesion_id}'s dose grid does not cover {frac:.1%} of "
                    f"{structure.name}: no dose from {lesion.lesion_id} is counted there "
                    "(unknown, not 0 Gy)"
                )
        return ("; " + "; ".join(notes)) if notes else ""

    # ----------------------------------------------------------------------------- search
    def _individual(self, lesion_id: str, regimen: Regimen) -> list[ResultRow]:
        return [
            r
            for r in self.lesion_rows(lesion_id, regimen)
            if r.priority == "mandatory" and r.status == "fail"
        ]

    def _single_eqd2(self, lid: str, organ: str, regimen: Regimen) -> DVH | None:
        """One lesion's EQD2 DVH (organ α/β) of an organ: exact monotone map of its DVH."""
        key = (lid, organ, regimen)
        if key not in self._single_cache:
            lesion = self._by_id[lid]
            structure = self.oar_structures[organ]
            dvh = self._physical_dvhs(lesion, [structure])[structure.name]
            ab = self._composite_alpha_beta(organ)
            if dvh.dvh_volume_cc <= 0 or dvh.outside_cc > 1e-6 * max(dvh.volume_cc, 1e-9):
                self._single_cache[key] = None
            else:
                self._single_cache[key] = dvh.scaled(regimen.scale_from(lesion.planned)).mapped(
                    eqd2_transform(regimen.fractions, Model("LQ", ab)), "EQD2", ""
                )
        return self._single_cache[key]

    def _bound(self, lim: CompositeLimit, parts: list[DVH]) -> str:
        """``pass``/``fail``/``unknown`` of a composite limit from single-lesion EQD2 DVHs.

        Sound because each voxel's composite EQD2 is the sum of the lesions' EQD2, all >= 0,
        sampled at the same points (same grid, same structure): for ``Dv`` (and ``Max``, v→0)
        ``max_q [Dv(f_q) + Σ_{p≠q} Dmin_p] <= Dv(Σ f) <= min(Σ_p D_{v/k}(f_p),
        min_q [Dv(f_q) + Σ_{p≠q} Dmax_p])``; the mean is the sum of the means; ``Vt`` and
        ``CVt`` follow from ``{f_q >= t - Σ_{p≠q} Dmax_p} ⊇ {Σ f >= t} ⊇ {f_q >= t - Σ_{p≠q}
        Dmin_p}``. A margin of 0.5 % of the limit (plus two histogram bins) covers the DVH's
        bin interpolation; inside it the voxels decide.
        """
        m = lim.metric
        k = len(parts)
        dmax = [p.dmax_gy for p in parts]
        dmin = [p.dmin_gy for p in parts]
        total_v = parts[0].dvh_volume_cc
        bins = sum(2.0 * (p.dose_gy[-1] / max(len(p.dose_gy), 1)) for p in parts)
        upper_limit = lim.comparator[0] == "<"
        if m.returns_dose:
            tol = 0.005 * abs(lim.limit) + bins
            if m.kind == "Mean":
                lower = upper = sum(p.dmean_gy for p in parts)
            elif m.kind in ("Max", "D"):
                if m.kind == "Max":
                    v = 0.0
                else:
                    v = m.value if m.query_unit == "cc" else m.value / 100.0 * total_v
                single = [p.dose_at(v) if v > 0 else p.dmax_gy for p in parts]
                if any(math.isnan(x) for x in single):
                    return "unknown"
                lower = max(single[q] + sum(dmin) - dmin[q] for q in range(k))
                upper = min(single[q] + sum(dmax) - dmax[q] for q in range(k))
                if v > 0:
                    split = [p.dose_at(v / k) for p in parts]
                    if not any(math.isnan(x) for x in split):
                        upper = min(upper, sum(split))
                else:
                    upper = min(upper, sum(dmax))
            else:
                return "unknown"
        elif m.kind in ("V", "CV") and m.query_unit == "Gy":
            t = m.value
            v_upper = min(
                parts[q].volume_at(t - (sum(dmax) - dmax[q]))
                if t - (sum(dmax) - dmax[q]) > 0
                else total_v
                for q in range(k)
            )
            v_lower = max(
                parts[q].volume_at(t - (sum(dmin) - dmin[q]))
                if t - (sum(dmin) - dmin[q]) > 0
                else total_v
                for q in range(k)
            )
            if m.kind == "CV":
                v_lower, v_upper = total_v - v_upper, total_v - v_lower
            scale = 1.0 if m.out_unit == "cc" else 100.0 / total_v
            lower, upper = v_lower * scale, v_upper * scale
            tol = 0.005 * abs(lim.limit) + 0.002 * (100.0 if m.out_unit == "%" else total_v)
        else:
            return "unknown"
        if upper_limit:
            if upper <= lim.limit - tol:
                return "pass"
            if lower > lim.limit + tol:
                return "fail"
        else:
            if lower >= lim.limit + tol:
                return "pass"
            if upper < lim.limit - tol:
                return "fail"
        return "unknown"

    def _composite_check(
        self,
        subset: dict[str, Regimen],
        *,
        organs: tuple[str, ...] | None = None,
        first_failure: bool = False,
    ) -> tuple[str, ResultRow | None]:
        """Mandatory composite limits on the sum of the ``subset``'s lesions.

        Per organ: (1) sound bounds from the single-lesion EQD2 DVHs; (2) the voxel-wise sum
        of the organ's contributing lesions (cached by their regimens only) bounded with the
        single-lesion DVHs of the others; (3) the voxel-wise sum of all, when neither decides.
        Organ results are cached per subset. ``organs`` restricts the check to those organs;
        ``first_failure`` stops at the first failing organ (cheapest organs first: enough for
        the search, which only needs to know that a combination fails). Returns
        ``("pass", None)`` or ``("fail", the failing row furthest past its limit)``.
        """
        key = _choice_key(subset)
        limits = self.composite_limits(subset)
        regs = tuple(sorted(subset.items()))
        wanted = [
            organ
            for organ, items in limits.items()
            if organ in self.oar_structures
            and (organs is None or organ in organs)
            and any(x.row.priority == "mandatory" for x in items)
        ]
        known = {o: self._check_cache[(key, o)] for o in wanted if (key, o) in self._check_cache}
        failed = [row for row in known.values() if row is not None]
        todo = [o for o in wanted if o not in known]
        if failed and first_failure:
            return "fail", max(failed, key=_excess)
        # bounds first (cheap); what they cannot decide needs the organ's voxels
        pending: dict[str, list[CompositeLimit]] = {}
        for organ in todo:
            undecided = self._undecided(organ, limits[organ], regs)
            if undecided:
                pending[organ] = undecided
            else:
                self._check_cache[(key, organ)] = None
        if first_failure:
            order = sorted(pending, key=lambda o: math.prod(self._box(self.oar_structures[o])[1].shape))
            for organ in order:
                self._composite_evaluations += (organ, regs) not in self._organ_cache
                row = self._voxel_check(organ, pending[organ], subset, regs)
                self._check_cache[(key, organ)] = row
                if row is not None:
                    return "fail", row
            return "pass", None
        # every organ: the voxel-wise sums two organs at a time
        self._composite_evaluations += sum((o, regs) not in self._organ_cache for o in pending)
        self._organ_composites(list(pending), subset)
        for organ, undecided in pending.items():
            row = self._voxel_check(organ, undecided, subset, regs)
            self._check_cache[(key, organ)] = row
            if row is not None:
                failed.append(row)
        return ("fail", max(failed, key=_excess)) if failed else ("pass", None)

    def _undecided(
        self, organ: str, items: list[CompositeLimit], regs: tuple[tuple[str, Regimen], ...]
    ) -> list[CompositeLimit]:
        """The organ's mandatory limits that the single-lesion bounds (and the voxel-wise sum
        of its contributing lesions, when the others are bounded) cannot decide."""
        todo = [x for x in items if x.row.priority == "mandatory"]
        if not todo or not self.common_grid()[1]:
            return todo
        singles = {lid: self._single_eqd2(lid, organ, r) for lid, r in regs}
        if any(p is None for p in singles.values()):
            return todo
        todo = [lim for lim in todo if self._bound(lim, list(singles.values())) != "pass"]
        inner = tuple((lid, r) for lid, r in regs if lid in self.contributors(organ))
        if todo and inner and len(inner) < len(regs):
            partial = self._organ_composite(organ, inner)
            others = [singles[lid] for lid, _ in regs if lid not in dict(inner)]
            todo = [lim for lim in todo if self._bound(lim, [partial] + others) != "pass"]
        return todo

    def _voxel_check(self, organ, todo, subset, regs) -> ResultRow | None:
        """The worst failing row of ``todo`` on the organ's voxel-wise sum, or None."""
        dvh = self._organ_composite(organ, regs)
        structure = self.oar_structures[organ]
        label = ", ".join(f"{lid} {r.label}" for lid, r in regs)
        rows = [self._composite_row(organ, structure, lim, dvh, label) for lim in todo]
        failed = [row for row in rows if row.status == "fail"]
        return max(failed, key=_excess) if failed else None

    def _nogood(self, choice: dict[str, Regimen], row: ResultRow) -> dict[str, Regimen]:
        """A group of lesions (with their regimens) whose sum alone fails ``row``'s organ:
        every combination containing it fails too (more lesions only add EQD2 and more
        fraction numbers only tighten the limits). Deletion filter: drop the lesions one at a
        time, smallest contribution to the organ first, while the rest still fails; the group
        left is irreducible (removing any one lesion makes it pass)."""
        organ = row.organ
        if organ not in self.oar_structures or len(choice) <= 1:
            return dict(choice)
        contributions = []
        for lid, regimen in choice.items():
            part = self._single_eqd2(lid, organ, regimen)
            contributions.append((part.dmax_gy if part is not None else math.inf, lid))
        group = dict(choice)
        for _, lid in sorted(contributions):
            if len(group) == 1:
                break
            trial = {k: v for k, v in group.items() if k != lid}
            status, _ = self._composite_check(trial, organs=(organ,), first_failure=True)
            if status == "fail":
                group = trial
        return group

    def recommend(self, *, max_composite_evaluations: int = 400) -> Recommendation:
        """The highest-BED10 regimen per lesion that passes every mandatory constraint, chosen
        jointly so that the mandatory composite limits pass too.

        Search: regimens that fail a mandatory per-lesion constraint are removed first; the
        remaining combinations are visited by descending total BED10 (best-first over the
        per-lesion lists sorted by BED10). A combination's composite is decided by sound
        bounds from the single-lesion EQD2 DVHs where possible, by voxels otherwise; a failure
        is reduced to the smallest group of lesions that fails on its own, and combinations
        containing that group are skipped. A lesion with no passing regimen keeps the option
        with the fewest mandatory failures (then the highest BED10) and the explanation says
        so. ``binding`` names, for every lesion below its highest-BED10 option, the constraint
        that stopped the next-higher one.
        """
        t0 = time.perf_counter()
        self._composite_evaluations = 0
        self._warm()
        explanation: list[str] = []
        lists: dict[str, list[Regimen]] = {}
        failures: dict[tuple[str, Regimen], list[ResultRow]] = {}
        for lesion in self.lesions:
            lid = lesion.lesion_id
            by_bed = sorted(self.regimens_for(lid), key=lambda r: (-r.bed10_gy(), r.fractions))
            ok = []
            for regimen in by_bed:
                fails = self._individual(lid, regimen)
                failures[(lid, regimen)] = fails
                if not fails:
                    ok.append(regimen)
            if not ok:
                best = min(by_bed, key=lambda r: (len(failures[(lid, r)]), -r.bed10_gy()))
                explanation.append(
                    f"{lid}: no regimen passes every mandatory constraint; {best.label} has the "
                    f"fewest failures ({len(failures[(lid, best)])})"
                )
                ok = [best]
            lists[lid] = ok
        ids = [lesion.lesion_id for lesion in self.lesions]
        beds = {lid: [r.bed10_gy() for r in lists[lid]] for lid in ids}

        def total(index: tuple[int, ...]) -> float:
            return sum(beds[lid][i] for lid, i in zip(ids, index))

        start = tuple(0 for _ in ids)
        heap = [(-total(start), start)]
        seen = {start}
        nogoods: list[dict[str, Regimen]] = []
        chosen_index = None
        composite_status = "fail"
        blocked_by: dict[tuple, ResultRow] = {}
        visited = 0
        while heap and self._composite_evaluations <= max_composite_evaluations:
            _, index = heapq.heappop(heap)
            visited += 1
            choice = {lid: lists[lid][i] for lid, i in zip(ids, index)}
            clash = next(
                (ng for ng in nogoods if all(choice[lid] == reg for lid, reg in ng.items())),
                None,
            )
            if clash is None:
                status, row = self._composite_check(choice, first_failure=True)
                if status == "pass":
                    chosen_index, composite_status = index, "pass"
                    break
                nogoods.append(self._nogood(choice, row))
            for pos in range(len(ids)):
                nxt = list(index)
                nxt[pos] += 1
                nxt = tuple(nxt)
                if nxt[pos] < len(lists[ids[pos]]) and nxt not in seen:
                    seen.add(nxt)
                    heapq.heappush(heap, (-total(nxt), nxt))
        if chosen_index is None:
            chosen_index = start
            explanation.append(
                "no combination of individually acceptable regimens passes the mandatory "
                "composite limits"
                + (" within the search budget" if heap else "")
                + "; the highest-BED10 combination is shown and its composite fails"
            )
        choice = {lid: lists[lid][i] for lid, i in zip(ids, chosen_index)}
        binding: dict[str, str] = {}
        binding_rows: dict[str, ResultRow] = {}
        deescalated: list[str] = []
        for lid in ids:
            regimen = choice[lid]
            by_bed = sorted(self.regimens_for(lid), key=lambda r: (-r.bed10_gy(), r.fractions))
            higher = [r for r in by_bed if r.bed10_gy() > regimen.bed10_gy() + 1e-9]
            if not higher:
                continue
            deescalated.append(lid)
            above = higher[-1]  # the next-higher BED10 option
            fails = failures.get((lid, above), [])
            if fails:
                row = max(fails, key=_excess)
                binding_rows[lid] = row
                binding[lid] = (
                    f"{row.describe()}: {above.label} (BED10 {above.bed10_gy():.1f} Gy) fails it"
                )
            else:
                trial = dict(choice, **{lid: above})
                status, row = self._composite_check(trial)
                if row is not None:
                    blocked_by[(lid, above)] = row
                    binding_rows[lid] = row
                    binding[lid] = (
                        f"composite {row.describe()} with {lid} at {above.label} "
                        f"(BED10 {above.bed10_gy():.1f} Gy) and the other lesions as recommended"
                    )
                else:
                    binding[lid] = (
                        f"{above.label} passes alone and in the composite with the others as "
                        "recommended, but raising it needs another lesion lowered (lower total "
                        "BED10)"
                    )
            explanation.append(
                f"{lid}: {regimen.label} (BED10 {regimen.bed10_gy():.1f} Gy) instead of "
                f"{by_bed[0].label} (BED10 {by_bed[0].bed10_gy():.1f} Gy); binding: {binding[lid]}"
            )
        for lid in ids:
            if lid not in deescalated:
                explanation.append(
                    f"{lid}: {choice[lid].label} (BED10 {choice[lid].bed10_gy():.1f} Gy), its "
                    "highest-BED10 option, passes every mandatory constraint"
                )
        if composite_status == "pass":
            explanation.append(
                f"composite: every mandatory EQD2 limit passes for this choice ({visited} "
                f"combination(s) visited, {self._composite_evaluations} voxel-wise composite "
                "evaluation(s))"
            )
        self.timings["recommend_s"] = time.perf_counter() - t0
        return Recommendation(
            choice=choice,
            binding=binding,
            deescalated=deescalated,
            composite_status=composite_status,
            explanation=explanation,
            binding_rows=binding_rows,
            feasible={lid: list(lists[lid]) for lid in ids},
            composite_evaluations=self._composite_evaluations,
        )

    # ----------------------------------------------------------------------------- all
    def evaluate(self, choice: dict[str, Regimen] | None = None) -> EvaluationResult:
        """Every lesion × regimen, the recommendation, and the composite of ``choice`` (default:
        the recommended choice; a partial ``choice`` is completed from the recommendation)."""
        t0 = time.perf_counter()
        self._warm()
        rows: list[ResultRow] = []
        for lesion in self.lesions:
            for regimen in self.regimens_for(lesion.lesion_id):
                rows += self.lesion_rows(lesion.lesion_id, regimen)
        recommendation = self.recommend()
        final = dict(recommendation.choice)
        for lid, regimen in (choice or {}).items():
            self._lesion(lid)
            self.add_regimen(lid, regimen)
            if not any(r.lesion_id == lid and r.regimen == regimen.label for r in rows):
                rows += self.lesion_rows(lid, regimen)
            final[lid] = regimen
        composite = self.composite_rows(final)
        self.timings["evaluate_s"] = time.perf_counter() - t0
        composite_status = _status_of(composite)
        caveats = list(COMPOSITE_CAVEATS) + [
            (
                "Regimens scale each lesion's planned dose distribution by D/D0: a replan at "
                "another dose may shape the dose differently."
            ),
            (
                "Composite limits: for each organ, the limits at the fraction numbers of the "
                "lesions whose dose reaches >= 10 % of their prescription in it, converted to "
                "EQD2 with the organ's α/β (LQ); the most conservative per organ × metric applies."
            ),
            f"Composite status of the shown choice: {composite_status}.",
        ]
        provenance = {
            "rtplan_assist": __version__,
            "tables": list(self.tables.files),
            "table_notes": list(self.tables.notes),
            "tumour_model": TUMOUR_MODEL.describe(),
            "oar_model": "LQ, organ α/β from alpha_beta.csv",
            "outside_policy": self.outside,
            "name_mapping": dict(self.name_match.matched),
            "name_rules": dict(self.name_match.rule),
            "common_grid_resampled": not self.common_grid()[1],
            "timings_s": dict(self.timings),
        }
        return EvaluationResult(
            patient_id=self.case.patient_id,
            folder=str(self.case.folder),
            lesions=list(self.lesions),
            rows=rows,
            composite_rows=composite,
            recommendation=recommendation,
            choice=final,
            warnings=list(dict.fromkeys(self.warnings + _dvh_warnings(self))),
            caveats=caveats,
            provenance=provenance,
        )


def _status_of(rows: list[ResultRow]) -> str:
    mandatory = [r for r in rows if r.priority == "mandatory"]
    if any(r.status == "fail" for r in mandatory):
        return "fail"
    if any(r.status == "not evaluable" and r.structure for r in mandatory):
        return "not evaluable"
    return "pass"


def _dvh_warnings(evaluator: CaseEvaluator) -> list[str]:
    out = []
    for (lid, _), dvh in evaluator._physical.items():
        out += [f"{lid}: {w}" for w in dvh.warnings]
    return out


# =============================================================================================
# Output
# =============================================================================================


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating,)):
        return _clean(float(value))
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, Regimen):
        return value.label
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _lesion_dict(lesion: Lesion) -> dict:
    return {
        "lesion_id": lesion.lesion_id,
        "label": lesion.label,
        "site": lesion.site,
        "target": lesion.target.name,
        "gtv": lesion.gtv.name if lesion.gtv else None,
        "planned": lesion.planned.label,
        "planned_fractions": lesion.planned.fractions,
        "planned_total_dose_gy": lesion.planned.total_dose_gy,
        "planned_bed10_gy": lesion.planned.bed10_gy(),
        "plan_file": Path(lesion.plan.path).name,
        "dose_file": Path(lesion.dose.path).name,
        "dose_scale_note": lesion.dose_scale_note,
    }


def result_to_dict(result: EvaluationResult) -> dict:
    """JSON-safe dict (NaN → ``None``, regimens as labels) of an :class:`EvaluationResult`."""
    rec = result.recommendation
    return _clean(
        {
            "patient_id": result.patient_id,
            "folder": result.folder,
            "verdict": result.verdict(),
            "lesions": [_lesion_dict(lesion) for lesion in result.lesions],
            "choice": result.choice,
            "recommendation": {
                "choice": rec.choice,
                "binding": rec.binding,
                "binding_rows": {k: asdict(v) for k, v in rec.binding_rows.items()},
                "deescalated": rec.deescalated,
                "composite_status": rec.composite_status,
                "explanation": rec.explanation,
                "feasible": rec.feasible,
            },
            "regimens": {
                lesion.lesion_id: [
                    {
                        "regimen": label,
                        "bed10_gy": reg.bed10_gy(),
                        "eqd2_10_gy": reg.eqd2_10_gy(),
                        "ablative": reg.bed10_gy() >= ABLATIVE_BED10_GY - 1e-9,
                        "mandatory_failures": sum(
                            1
                            for r in result.rows
                            if r.lesion_id == lesion.lesion_id
                            and r.regimen == label
                            and r.priority == "mandatory"
                            and r.status == "fail"
                        ),
                    }
                    for reg in sorted(
                        {
                            _parse_label(r.regimen)
                            for r in result.rows
                            if r.lesion_id == lesion.lesion_id
                        }
                    )
                    for label in [reg.label]
                ]
                for lesion in result.lesions
            },
            "rows": [asdict(r) for r in result.rows],
            "composite_rows": [asdict(r) for r in result.composite_rows],
            "warnings": result.warnings,
            "caveats": result.caveats,
            "provenance": result.provenance,
        }
    )


def _parse_label(label: str) -> Regimen:
    from .regimens import parse_regimen

    return parse_regimen(label)


def result_rows_tidy(result: EvaluationResult) -> list[dict]:
    """Tidy rows (:data:`TIDY_COLUMNS`): every lesion row, then every composite row."""
    return [
        {k: _clean(v) for k, v in asdict(r).items()} for r in result.rows + result.composite_rows
    ]


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _regimen_summary(result: EvaluationResult) -> list[dict]:
    out = []
    for lesion in result.lesions:
        lid = lesion.lesion_id
        labels = sorted(
            {_parse_label(r.regimen) for r in result.rows if r.lesion_id == lid},
            key=lambda g: -g.bed10_gy(),
        )
        for reg in labels:
            rows = [r for r in result.rows if r.lesion_id == lid and r.regimen == reg.label]
            fails = [r for r in rows if r.priority == "mandatory" and r.status == "fail"]
            ne = [r for r in rows if r.status == "not evaluable" and r.structure]
            ptv = {r.metric: r for r in rows if r.role == "target" and r.kind == "physical"}
            gtv = next((r for r in rows if r.role == "target" and r.metric == "Mean[Gy]"), None)
            out.append(
                {
                    "lesion": lid,
                    "regimen": reg.label,
                    "bed10": reg.bed10_gy(),
                    "eqd2": reg.eqd2_10_gy(),
                    "ablative": reg.bed10_gy() >= ABLATIVE_BED10_GY - 1e-9,
                    "d95": ptv.get("D95%[Gy]").value if "D95%[Gy]" in ptv else math.nan,
                    "gtv_bed": gtv.value if gtv else math.nan,
                    "fails": fails,
                    "not_evaluable": ne,
                    "chosen": result.choice.get(lid) == reg,
                    "planned": lesion.planned == reg,
                }
            )
    return out


def result_to_text(result: EvaluationResult) -> str:
    """A readable terminal summary: lesions × regimens, composite, recommendation."""
    lines = [
        f"Patient {result.patient_id}  " + (
            result.folder if result.folder.startswith("(") else f"({result.folder})"
        ),
        f"Verdict for the shown choice: {result.verdict().upper()}",
        "",
    ]
    for lesion in result.lesions:
        lines.append(
            f"{lesion.lesion_id}  {lesion.label}  site {lesion.site}  target {lesion.target.name}"
            f"  planned {lesion.planned.label}"
        )
    lines.append("")
    header = f"{'':2}{'lesion':6} {'regimen':10} {'BED10':>7} {'EQD2':>7} {'D95%':>7} {'GTV BED10':>9}  OARs (mandatory)"
    lines += [header, "-" * len(header)]
    for s in _regimen_summary(result):
        mark = "*" if s["chosen"] else (" " if not s["planned"] else "p")
        if s["fails"]:
            worst = max(s["fails"], key=_excess)
            oars = (
                f"FAIL {len(s['fails'])}: {worst.structure} {worst.metric} {_fmt(worst.value)} "
                f"{_NEGATION[worst.comparator]} {_fmt(worst.limit)}"
            )
        else:
            oars = "pass"
        lines.append(
            f"{mark:2}{s['lesion']:6} {s['regimen']:10} {s['bed10']:7.1f} {s['eqd2']:7.1f} "
            f"{_fmt(s['d95']):>7} {_fmt(s['gtv_bed'], 1):>9}  {oars}"
            + ("" if s["ablative"] else "  (BED10 < 100)")
        )
    lines += [
        "",
        "* recommended/chosen, p planned",
        "",
        "Composite (sum of voxel EQD2, each lesion its own n):",
    ]
    for r in result.composite_rows:
        if not r.structure or r.priority not in ("mandatory",) and r.status not in ("fail",):
            continue
        lines.append(
            f"  {r.status:13} {r.structure:14} {r.metric:16} {_fmt(r.value):>8} {r.comparator:2} "
            f"{_fmt(r.limit):>8} {r.unit}  α/β {r.alpha_beta_gy:g}  [{r.source}, n={r.converted_from_fractions}]"
        )
    rec = result.recommendation
    lines += ["", "Recommendation:"]
    lines += [f"  {lid}: {reg.label}" for lid, reg in rec.choice.items()]
    lines += [f"  - {text}" for text in rec.explanation]
    if result.warnings:
        lines += ["", "Warnings:"] + [f"  - {w}" for w in result.warnings]
    lines += ["", "Caveats:"] + [f"  - {c}" for c in result.caveats]
    return "\n".join(lines) + "\n"


_STATUS_COLOUR = {
    "pass": "#d8f3dc",
    "goal missed": "#fff3bf",
    "fail": "#ffc9c9",
    "not evaluable": "#e9ecef",
    "info": "#e7f5ff",
}


def result_to_html(result: EvaluationResult) -> str:
    """A self-contained HTML page (no scripts, no external files) of the result."""
    e = html.escape

    def table(rows: list[ResultRow]) -> str:
        cols = (
            "lesion_id",
            "regimen",
            "structure",
            "organ",
            "metric",
            "value",
            "unit",
            "kind",
            "model",
            "alpha_beta_gy",
            "comparator",
            "limit",
            "goal",
            "status",
            "priority",
            "source",
            "reason",
        )
        out = [
            "<table><thead><tr>"
            + "".join(f"<th>{e(c)}</th>" for c in cols)
            + "</tr></thead><tbody>"
        ]
        for r in rows:
            d = asdict(r)
            colour = _STATUS_COLOUR.get(r.status, "#fff")
            out.append(
                f'<tr style="background:{colour}">'
                + "".join(
                    f"<td>{e(_fmt(d[c]) if isinstance(d[c], float) or d[c] is None else str(d[c]))}</td>"
                    for c in cols
                )
                + "</tr>"
            )
        out.append("</tbody></table>")
        return "\n".join(out)

    rec = result.recommendation
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>rtplan-assist evaluation {e(result.patient_id)}</title>",
        (
            "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;"
            "font-size:12px}td,th{border:1px solid #ccc;padding:2px 5px;vertical-align:top}"
            "th{background:#f1f3f5}h2{margin-top:1.5em}</style></head><body>"
        ),
        f"<h1>Evaluation of patient {e(result.patient_id)}</h1>",
        (
            f"<p>Folder: {e(result.folder)}<br>Verdict for the shown choice: "
            f"<b>{e(result.verdict())}</b></p>"
        ),
        "<h2>Recommendation</h2><ul>",
    ]
    parts += [f"<li><b>{e(lid)}</b>: {e(reg.label)}</li>" for lid, reg in rec.choice.items()]
    parts.append("</ul><ul>")
    parts += [f"<li>{e(t)}</li>" for t in rec.explanation]
    parts.append(
        "</ul><h2>Lesions × regimens</h2><table><thead><tr><th>lesion</th>"
        "<th>regimen</th><th>BED10 (Gy)</th><th>EQD2 (Gy)</th><th>PTV D95% (Gy)</th>"
        "<th>GTV mean BED10 (Gy)</th><th>mandatory OAR</th></tr></thead><tbody>"
    )
    for s in _regimen_summary(result):
        fails = "; ".join(
            f"{r.structure} {r.metric} {_fmt(r.value)} > {_fmt(r.limit)}" for r in s["fails"]
        )
        colour = _STATUS_COLOUR["fail" if s["fails"] else "pass"]
        chosen = " (chosen)" if s["chosen"] else ""
        parts.append(
            f"<tr style='background:{colour}'><td>{e(s['lesion'])}</td><td>{e(s['regimen'])}{chosen}</td>"
            f"<td>{s['bed10']:.1f}</td><td>{s['eqd2']:.1f}</td><td>{_fmt(s['d95'])}</td>"
            f"<td>{_fmt(s['gtv_bed'], 1)}</td><td>{e(fails or 'pass')}</td></tr>"
        )
    parts.append("</tbody></table>")
    parts.append("<h2>Composite (EQD2)</h2>" + table(result.composite_rows))
    parts.append("<h2>All lesion rows</h2>" + table(result.rows))
    parts.append(
        "<h2>Warnings</h2><ul>" + "".join(f"<li>{e(w)}</li>" for w in result.warnings) + "</ul>"
    )
    parts.append(
        "<h2>Caveats</h2><ul>" + "".join(f"<li>{e(c)}</li>" for c in result.caveats) + "</ul>"
    )
    parts.append(
        f"<p><small>rtplan-assist {e(__version__)}; tables: "
        f"{e(', '.join(result.provenance.get('tables', [])))}</small></p></body></html>"
    )
    return "\n".join(parts)
