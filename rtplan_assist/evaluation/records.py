"""Records of an evaluation: lesions, result rows, composite limits, the recommendation and the
result, with the rules that decide a row's status and a verdict.

Plain frozen dataclasses (``Recommendation`` and ``EvaluationResult`` are mutable containers);
nothing here computes a dose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from ..constraints import Constraint
from ..errors import EvaluationError
from ..metrics import Metric
from ..model import Dose, Plan, Structure
from ..regimens import Regimen
from ..status import PRIORITY_RANK  # noqa: F401 - re-exported (evaluation.PRIORITY_RANK)

ABLATIVE_SOURCE = "ablative line BED10 >= 100 Gy: Radiat Oncol J, PMC4206062 (reference §6.1)"
SITES = ("lung", "central lung", "liver", "bone", "vertebra", "node", "adrenal", "unknown")
#: A lesion sets an organ's composite limits when its dose reaches this fraction of its
#: prescription somewhere in the organ (:meth:`CaseEvaluator.contributors`).
CONTRIBUTION_FRACTION = 0.10


@dataclass(frozen=True)
class Lesion:
    """One treated lesion: a plan, its total dose and its target.

    Attributes
    ----------
    lesion_id : str
        ``L1``, ``L2``, ... in the order of the plans in the case.
    label : str
        RTPlanLabel (else RTPlanName, else the lesion id).
    site : {"lung", "central lung", "liver", "bone", "vertebra", "node", "adrenal", "unknown"}
        From the organ structure that contains the target centre, else from the names; lung
        within 2 cm of a mediastinal structure is ``central lung``, a vertebral bone lesion
        ``vertebra``.
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

    def __repr__(self) -> str:
        gtv = f", GTV {self.gtv.name!r}" if self.gtv else ""
        return (
            f"<Lesion {self.lesion_id} {self.label!r} ({self.site}): PTV {self.target.name!r}"
            f"{gtv}, planned {self.planned.label}>"
        )


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
    #: ``pass-robust``, ``fail-robust``, ``fragile`` or ``not assessed`` (issue 13;
    #: :mod:`.robustness`); empty for rows without a limit.
    robustness: str = ""
    robustness_note: str = ""

    def __repr__(self) -> str:
        text = f"<ResultRow {self.lesion_id} {self.status}: {self.describe()}>"
        return text if len(text) <= 400 else text[:396] + "...>"

    def describe(self) -> str:
        """One line for explanations, e.g. ``Esophagus D0.03cc[Gy] = 37.6 Gy > 32.9 Gy ...``."""
        value = "n/a" if math.isnan(self.value) else f"{self.value:.2f} {self.unit}"
        kind = "" if self.kind == "physical" else f" {self.kind}"
        limit = ""
        if self.limit is not None:
            op = self.comparator if self.status != "fail" else NEGATION[self.comparator]
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
NEGATION = {"<=": ">", "<": ">=", ">=": "<", ">": "<=", "": ""}


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
    reasons : dict of str to str
        Lesion id → why its regimen: control target (or "no cited target"), smallest margin
        to a mandatory limit, standard regimen (issue 13 objective).
    robustness : dict of str to str
        Lesion id → whether the recommendation is robust to α/β and the tumour model, and what
        would change it (filled by the evaluation).
    alternatives : dict of str to Regimen
        Lesion id → the option the objective preferred and rejected (the one ``binding``
        explains), for every de-escalated lesion (:mod:`.reasons` names it).
    """

    choice: dict[str, Regimen]
    binding: dict[str, str]
    deescalated: list[str]
    composite_status: str
    explanation: list[str]
    binding_rows: dict[str, ResultRow] = field(default_factory=dict)
    feasible: dict[str, list[Regimen]] = field(default_factory=dict)
    composite_evaluations: int = 0
    reasons: dict[str, str] = field(default_factory=dict)
    robustness: dict[str, str] = field(default_factory=dict)
    alternatives: dict[str, Regimen] = field(default_factory=dict)

    def __repr__(self) -> str:
        choice = ", ".join(f"{lid} {r.label}" for lid, r in self.choice.items())
        down = f", de-escalated {', '.join(self.deescalated)}" if self.deescalated else ""
        text = f"<Recommendation {choice}; composite {self.composite_status}{down}>"
        return text if len(text) <= 400 else text[:396] + "...>"


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

    def __repr__(self) -> str:
        choice = ", ".join(f"{lid} {r.label}" for lid, r in self.choice.items())
        text = (
            f"<EvaluationResult patient {self.patient_id!r}: {self.verdict()} for {choice}; "
            f"{len(self.rows)} lesion rows, {len(self.composite_rows)} composite rows, "
            f"{len(self.warnings)} warning(s)>"
        )
        return text if len(text) <= 400 else text[:396] + "...>"

    def table(self) -> dict[str, list]:
        """Every lesion row, then every composite row, as columns (:data:`TIDY_COLUMNS`):
        ``pandas.DataFrame(result.table())``. Values not evaluable are NaN; absent limits,
        goals and α/β are None."""
        return {
            name: [getattr(r, name) for r in self.rows + self.composite_rows]
            for name in TIDY_COLUMNS
        }

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
    structure present in the case has no value or a lesion has no evaluable mandatory OAR row
    (:func:`unevaluable_lesions`); else ``pass`` (rows of absent organs, structure ``""``, do
    not decide otherwise)."""
    mandatory = [r for r in rows if r.priority == "mandatory"]
    if any(r.status == "fail" for r in mandatory):
        return "fail"
    if any(r.status == "not evaluable" and r.structure for r in mandatory):
        return "not evaluable"
    if unevaluable_lesions(rows):
        return "not evaluable"
    return "pass"


def unevaluable_lesions(rows) -> list[str]:
    """Lesions (and ``composite``) none of whose mandatory OAR rows could be evaluated: nothing
    unevaluable reads as PASS (issue 12; e.g. every organ renamed to an unknown name, or a
    site with no constraint table)."""
    lesions = {r.lesion_id for r in rows}
    evaluated = {
        r.lesion_id
        for r in rows
        if r.role == "oar"
        and r.priority == "mandatory"
        and r.status in ("pass", "fail", "goal missed")
    }
    return sorted(lesions - evaluated)


def compare(value: float, comparator: str, limit: float) -> bool:
    """``value comparator limit``, with 1e-9 Gy of slack on the inclusive comparators."""
    if comparator == "<=":
        return value <= limit + 1e-9
    if comparator == "<":
        return value < limit
    if comparator == ">=":
        return value >= limit - 1e-9
    if comparator == ">":
        return value > limit
    raise EvaluationError(f"unknown comparator {comparator!r}")


def row_status(value: float, comparator: str, limit: float, goal: float | None) -> str:
    """``not evaluable`` (NaN), ``fail``, ``goal missed`` or ``pass``."""
    if math.isnan(value):
        return "not evaluable"
    if not compare(value, comparator, limit):
        return "fail"
    if goal is not None and not compare(value, comparator, goal):
        return "goal missed"
    return "pass"


def short_source(row: Constraint) -> str:
    """``source_id, table_ref (file:line)`` of a table row."""
    return f"{row.source_id}, {row.table_ref} ({row.file}:{row.line})"


def excess(row: ResultRow) -> float:
    """How far a failing row is past its limit, relative (for choosing the binding row)."""
    if row.limit is None or math.isnan(row.value):
        return 0.0
    scale = abs(row.limit) if row.limit else 1.0
    if row.comparator in ("<", "<="):
        return (row.value - row.limit) / scale
    return (row.limit - row.value) / scale


def choice_key(choice: dict[str, Regimen]) -> tuple:
    """A hashable key of a choice (lesion id → regimen), independent of its order."""
    return tuple(sorted((k, v.fractions, v.total_dose_gy) for k, v in choice.items()))
