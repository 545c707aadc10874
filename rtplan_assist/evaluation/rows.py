"""Result rows: a DVH and a limit make a row.

Pure functions: the lesion's DVHs, the regimen's scale factor and the organ's rows in, a list
of :class:`~rtplan_assist.evaluation.records.ResultRow` out. The session caches them.
"""

from __future__ import annotations

import math
import re

from ..constraints import Constraint, adjacent_regime
from ..dvh import DVH
from ..model import Structure
from ..radiobiology import Model, bed_transform, eqd2_transform
from ..regimens import TUMOUR_MODEL, Regimen, control_target
from .records import (
    CompositeLimit,
    Lesion,
    ResultRow,
    compare,
    excess,
    row_status,
    short_source,
)


def make_row(patient_id: str, lesion: Lesion | None, regimen: str, **values) -> ResultRow:
    """A :class:`ResultRow` with every field defaulted (``info``, NaN value, unit Gy) but
    ``values``; ``lesion`` None makes a composite row."""
    return _new_row(patient_id, lesion.lesion_id if lesion else "composite", regimen, values)


#: Every field of a row with its default, in field order (:func:`make_row`).
_ROW_DEFAULTS = {
    "patient_id": "",
    "lesion_id": "",
    "regimen": "",
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
    "robustness": "",
    "robustness_note": "",
}
_NEW = object.__new__


def _new_row(patient_id: str, lesion_id: str, regimen: str, values: dict,
             more: dict | None = None) -> ResultRow:
    """``ResultRow(**fields)`` of the defaults, the ids, ``values`` and ``more``: the same
    frozen record, made without the dataclass ``__init__`` (23 ``object.__setattr__`` calls;
    6,000+ rows an evaluation). An unknown field is refused as ``__init__`` refuses it."""
    state = _ROW_DEFAULTS.copy()
    state["patient_id"] = patient_id
    state["lesion_id"] = lesion_id
    state["regimen"] = regimen
    state.update(values)
    if more:
        state.update(more)
    if len(state) != len(_ROW_DEFAULTS):
        unknown = sorted(set(state) - set(_ROW_DEFAULTS))
        raise TypeError(f"ResultRow got unexpected field(s) {', '.join(unknown)}")
    row = _NEW(ResultRow)
    row.__dict__.update(state)
    return row


def target_rows(
    patient_id: str, lesion: Lesion, regimen: Regimen, dvhs: dict[str, DVH], factor: float
) -> list[ResultRow]:
    """Target rows of one lesion at one regimen: prescription BED10 and EQD2 (LQ, α/β 10 Gy,
    against the ablative line), PTV D95%, D98%, V100% (physical) and the GTV mean BED10.

    Parameters
    ----------
    dvhs : dict of str to DVH
        The lesion's *planned* physical DVHs by structure name.
    factor : float
        ``D / D0``, the regimen's scale of the planned dose.
    """
    label = regimen.label
    n = regimen.fractions
    ptv = lesion.target.name
    bed10 = regimen.bed10_gy()
    eqd2_10 = regimen.eqd2_10_gy()
    target = control_target(lesion.site)
    if target is not None:
        reached = "reached" if bed10 >= target.bed10_gy - 1e-9 else "not reached"
        target_text = f"{lesion.site} control target BED10 {target.bed10_gy:g} Gy {reached}"
    else:
        target_text = f"no cited control target for site '{lesion.site}' (BED10 shown only)"
    common = {
        "structure": ptv,
        "role": "target",
        "constraint_fractions": n,
        "priority": "report",
    }
    rows = [
        make_row(
            patient_id,
            lesion,
            label,
            metric="Rx[Gy]",
            value=bed10,
            kind="BED",
            model="LQ",
            alpha_beta_gy=10.0,
            comparator=">=" if target else "",
            limit=target.bed10_gy if target else None,
            status="info",
            reason=(
                f"prescription {regimen.total_dose_gy:g} Gy in {n} × "
                f"{regimen.dose_per_fraction_gy:.3g} Gy: BED10 {bed10:.1f} Gy; {target_text}"
            ),
            source=target.source if target else "",
            **common,
        ),
        make_row(
            patient_id,
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
    ptv_scaled = ptv_dvh.scaled(factor) if ptv_dvh is not None else None
    for metric in ("D95%[Gy]", "D98%[Gy]", "V100%[%]"):
        if ptv_dvh is None:
            rows.append(
                make_row(
                    patient_id,
                    lesion,
                    label,
                    metric=metric,
                    status="not evaluable",
                    reason=f"{ptv} has no contours",
                    **common,
                )
            )
            continue
        mv = ptv_scaled.metric(metric, prescription_gy=regimen.total_dose_gy)
        reason = mv.note
        if not reason and mv.unit == "Gy":
            reason = f"{100 * mv.value / regimen.total_dose_gy:.1f} % of the prescription"
        elif not reason:
            reason = f"volume receiving >= {regimen.total_dose_gy:g} Gy"
        reason += coverage_note(ptv_dvh)
        rows.append(
            make_row(
                patient_id,
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
            make_row(
                patient_id,
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
            make_row(
                patient_id,
                lesion,
                label,
                metric="Mean[Gy]",
                value=mapped.dmean_gy,
                kind="BED",
                model="LQ",
                alpha_beta_gy=10.0,
                comparator=">=" if target else "",
                limit=target.bed10_gy if target else None,
                status="info" if not math.isnan(mapped.dmean_gy) else "not evaluable",
                reason=(
                    "mean of voxel BED10 over the GTV dose distribution (not the BED of the "
                    f"mean dose, {gtv_dvh.dmean_gy:.2f} Gy physical)"
                    + coverage_note(dvhs[lesion.gtv.name])
                ),
                source=target.source if target else "",
                **gtv_common,
            )
        )
    return rows


def coverage_note(dvh: DVH, who: str = "this lesion's") -> str:
    """``"; x % (y cc) of NAME lies outside ... dose grid: ..."`` or ``""``."""
    if dvh.outside_cc > 1e-6 * max(dvh.volume_cc, 1e-9):
        frac = dvh.outside_cc / max(dvh.outside_cc + dvh.dvh_volume_cc, 1e-12)
        how = (
            "excluded (not assumed 0 Gy)" if dvh.outside_policy == "exclude" else "counted at 0 Gy"
        )
        return (
            f"; {frac:.1%} ({dvh.outside_cc:.2f} cc) of {dvh.name} lies outside {who} dose "
            f"grid: {how}"
        )
    return ""


def oar_rows(
    patient_id: str,
    lesion: Lesion,
    regimen: Regimen,
    organ: str,
    constraints: list[Constraint],
    table_note: str,
    structure: Structure | None,
    missing: str,
    dvhs: dict[str, DVH],
    factor: float,
    templates: list[tuple[dict, str]] | None = None,
) -> list[ResultRow]:
    """Every constraint row of one organ for one lesion at one regimen.

    Parameters
    ----------
    constraints, table_note
        The organ's rows at ``regimen.fractions`` (:func:`.organs.constraints_at`).
    structure : Structure or None
        The case structure of the organ (None: every row is ``not evaluable``, ``missing``
        says why).
    dvhs, factor
        As for :func:`target_rows`.
    templates : list, optional
        :func:`constraint_templates` of ``constraints`` (the session keeps them per organ and
        fraction number; computed here when not given). Each row is its template's fields
        with the ids, value, status and reason set: the record ``ResultRow(**fields)`` makes,
        without the dataclass ``__init__``.
    """
    label = regimen.label
    n = regimen.fractions
    lid = lesion.lesion_id
    rows = []
    if templates is None:
        templates = constraint_templates(organ, constraints)
    if structure is None or structure.name not in dvhs:
        for state, conv in templates:
            rows.append(_row_from(
                state,
                patient_id=patient_id,
                lesion_id=lid,
                regimen=label,
                status="not evaluable",
                reason=_joined(missing, conv),
            ))
    else:
        # the organ's DVH at this regimen, and under each (kind, α/β) its rows use: computed
        # once for all of its constraints (the same DVH objects as one per constraint)
        planned = dvhs[structure.name]
        coverage = coverage_note(planned)
        name = structure.name
        total = regimen.total_dose_gy
        scaled = planned.scaled(factor) if constraints else None
        mapped: dict[tuple, DVH] = {}
        for c, (state, conv) in zip(constraints, templates):
            dvh = scaled
            if c.dose_kind != "physical":
                dvh = mapped.get((c.dose_kind, c.alpha_beta))
                if dvh is None:
                    model = Model("LQ", c.alpha_beta)
                    transform = (
                        eqd2_transform(n, model) if c.dose_kind == "EQD2"
                        else bed_transform(n, model)
                    )
                    dvh = scaled.mapped(transform, c.dose_kind, model.describe())
                    mapped[(c.dose_kind, c.alpha_beta)] = dvh
            value, reason = evaluate_constraint(dvh, c, total)
            status = row_status(value, c.comparator, c.limit, c.goal)
            if math.isnan(value) and reason.startswith("PASS:"):
                status, reason, value = "pass", reason[5:], math.nan
            rows.append(_row_from(
                state,
                patient_id=patient_id,
                lesion_id=lid,
                regimen=label,
                structure=name,
                value=value,
                status=status,
                reason=_joined(reason, conv) + coverage,
            ))
    if table_note:
        # issue 12: an organ with no cited limit at n fx whose advisory limits from an adjacent
        # regime (SBRT <-> moderately hypofractionated <-> conventional) this regimen exceeds
        # cannot be judged: the row is mandatory and not evaluable, so the regimen never reads
        # as passing. SBRT point limits extrapolated to 16-35 fx are known to be wrong
        # (clinical audit (c) 7) and stay advisory.
        exceeded = [
            r for c, r in zip(constraints, rows)
            if r.status == "fail" and c.extrapolated and adjacent_regime(c, n)
        ] if "no cited limit" in table_note else []
        worst = max(exceeded, key=excess) if exceeded else None
        extra = {}
        reason = table_note
        if worst is not None:
            reason += (
                f"; the advisory limit {worst.metric} {worst.comparator} {worst.limit:.4g} "
                f"{worst.unit} ({worst.source}, converted from "
                f"{worst.converted_from_fractions} fx) is exceeded ({worst.value:.2f} "
                f"{worst.unit}): this regimen cannot be judged for {organ} without a cited limit"
            )
            extra = {"metric": "no cited limit", "constraint_fractions": n}
        rows.append(
            make_row(
                patient_id,
                lesion,
                label,
                organ=organ,
                structure=structure.name if structure else "",
                status="not evaluable",
                reason=reason,
                priority="mandatory" if worst is not None else "report",
                **({"source": "no table of "
                    + ", ".join(sorted({c.source_id for c in constraints}) or ["any source"])
                    + f" covers {n} fx"} | extra),
            )
        )
    return rows


def _row_from(state: dict, **values) -> ResultRow:
    """The row of a template's fields ``state`` (every field, in field order) with ``values``
    set: ``ResultRow(**{**state, **values})`` without the dataclass ``__init__``."""
    row = _NEW(ResultRow)
    fields = row.__dict__
    fields.update(state)
    fields.update(values)
    return row


def _joined(first: str, second: str) -> str:
    """``"; ".join(x for x in (first, second) if x)``."""
    if first and second:
        return first + "; " + second
    return first or second


def constraint_templates(organ: str, constraints: list[Constraint]) -> list[tuple[dict, str]]:
    """Per constraint of an organ at one fraction number: every field of its rows, in field
    order, with the defaults of :func:`make_row` and the fields that depend on the constraint
    only (metric, unit, kind, model, α/β, comparator, limit, goal, source, fraction numbers,
    priority), and the conversion text of its reason; the same for every lesion and regimen
    at that fraction number (:func:`oar_rows` sets the ids, the value, status and reason)."""
    out = []
    for c in constraints:
        lq = bool(c.converted_from_fractions or c.dose_kind != "physical")
        base = {
            "organ": organ,
            "metric": c.metric,
            "unit": c.unit,
            "kind": c.dose_kind,
            "model": "LQ" if lq else "",
            "alpha_beta_gy": c.alpha_beta if lq else None,
            "comparator": c.comparator,
            "limit": c.limit,
            "goal": c.goal,
            "source": short_source(c),
            "constraint_fractions": c.fractions,
            "converted_from_fractions": c.converted_from_fractions,
            "priority": c.priority,
        }
        state = _ROW_DEFAULTS.copy()
        state.update(base)
        conv = "; ".join(x for x in (
            c.reason,
            f"converted from n={c.converted_from_fractions}: {c.conversion_note}"
            if c.converted_from_fractions
            else "",
        ) if x)
        out.append((state, conv))
    return out


def evaluate_constraint(
    dvh: DVH, c: Constraint | CompositeLimit, prescription_gy: float | None
) -> tuple[float, str]:
    """(value, reason) of a constraint on a DVH; reason ``PASS:...`` for trivially met."""
    metric = c.parsed_metric if isinstance(c, Constraint) else c.metric
    comparator = c.comparator
    limit = c.limit
    mv = dvh.metric(metric, prescription_gy=prescription_gy)
    unit = mv.unit
    kind = "" if dvh.dose_kind == "physical" else f" {dvh.dose_kind}"
    if mv.evaluable:
        verb = "meets" if compare(mv.value, comparator, limit) else "violates"
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


def composite_row(
    patient_id: str,
    organ: str,
    structure: Structure | None,
    lim: CompositeLimit,
    dvh: DVH | None,
    label: str,
    missing: str,
    coverage: str,
) -> ResultRow:
    """One composite row: ``lim`` on the organ's composite EQD2 DVH.

    ``missing`` is the reason when there is no structure or DVH; ``coverage`` the note on the
    lesion grids that do not cover the organ (:meth:`Evaluation._composite_coverage`).
    """
    base = {
        "organ": organ,
        "metric": str(lim.metric),
        "unit": lim.metric.out_unit,
        "kind": "EQD2" if lim.alpha_beta_gy is not None else "physical",
        "model": "LQ" if lim.alpha_beta_gy is not None else "",
        "alpha_beta_gy": lim.alpha_beta_gy,
        "comparator": lim.comparator,
        "limit": lim.limit,
        "goal": lim.goal,
        "source": short_source(lim.row),
        "constraint_fractions": None,
        "converted_from_fractions": (
            (lim.row.converted_from_fractions or lim.row.fractions or None)
            if lim.alpha_beta_gy is not None
            else None
        ),
        "priority": lim.row.priority,
    }
    if structure is None or dvh is None:
        return make_row(
            patient_id,
            None,
            "composite",
            status="not evaluable",
            reason=f"{missing}; limit: {lim.note}",
            **base,
        )
    value, reason = evaluate_constraint(dvh, lim, None)
    status = row_status(value, lim.comparator, lim.limit, lim.goal)
    if math.isnan(value) and reason.startswith("PASS:"):
        status, reason = "pass", reason[5:]
    what = "sum of voxel EQD2" if lim.alpha_beta_gy is not None else "sum of physical dose"
    text = f"{what} ({label}); {reason}; limit: {lim.note}"
    text += coverage + coverage_note(dvh, "the common")
    return make_row(
        patient_id,
        None,
        "composite",
        structure=structure.name,
        value=value,
        status=status,
        reason=text,
        **base,
    )
