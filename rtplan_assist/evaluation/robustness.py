"""Uncertainty of every verdict (issue 13): α/β over each organ's cited range, the dose within
the borderline band, and (for the tumour) LQ against LQ-L/USC above 10 Gy per fraction.

A row with a limit is

* ``pass-robust`` / ``fail-robust``: the same status at both ends of the organ's α/β range
  (``alpha_beta.csv`` ``low_gy``/``high_gy``; an organ without a cited range is checked at its
  default only, and the note says so) and with the value moved by ± the borderline band
  (:data:`~.objective.BORDERLINE_FRACTION` of the limit, the dose-calculation uncertainty);
* ``fragile``: the status flips inside that range; the note gives the α/β at which it flips
  (converted limits move monotonically with α/β, so the ends decide and a root finder finds
  the flip) or says that the value is borderline;
* ``not assessed``: what this module cannot re-evaluate without the dose (a converted volume
  metric's dose threshold; composite EQD2 rows at another α/β); said, never implied robust.

Only per-lesion rows of converted D-metric limits depend on α/β here (the physical value does
not); a tabulated limit at the regimen's own fraction number does not depend on it.
"""

from __future__ import annotations

import math
from dataclasses import replace as _replace
from functools import lru_cache

from ..constraints import replace_fields
from ..radiobiology import Model, dose_for_eqd2, eqd2
from .objective import BORDERLINE_FRACTION, BORDERLINE_SOURCE, relative_margin
from .records import ResultRow, compare


def replace(row: ResultRow, **changes) -> ResultRow:
    """``dataclasses.replace`` of a :class:`ResultRow` with its two robustness fields,
    without re-running ``__init__`` field by field (:func:`~rtplan_assist.constraints.
    replace_fields`): an equal row, a third of the time (it runs for every row of a
    session)."""
    if type(row) is not ResultRow:
        return _replace(row, **changes)
    return replace_fields(row, _ROBUSTNESS_FIELDS, **changes)


_ROBUSTNESS_FIELDS = frozenset({"robustness", "robustness_note"})


@lru_cache(maxsize=1 << 16, typed=True)
def converted_limit(limit0: float, n0: int, n: int, alpha_beta_gy: float) -> float:
    """A dose limit tabulated for ``n0`` fractions, converted to ``n`` fractions at equal EQD2
    (LQ, ``alpha_beta_gy``). Memoised (a pure function of its four numbers): the rows of
    every lesion x regimen ask the same few conversions thousands of times."""
    model = Model("LQ", float(alpha_beta_gy))
    return float(dose_for_eqd2(eqd2(limit0, n0, model), n, model))


def eqd2_band(total_gy: float, n: int, low: float, high: float) -> tuple[float, float]:
    """EQD2 (LQ) of ``total_gy`` in ``n`` fractions at α/β ``low`` and ``high``: a zero-width
    band at 2 Gy per fraction (EQD2 of 2 Gy fractions is the dose itself)."""
    return (
        float(eqd2(total_gy, n, Model("LQ", float(low)))),
        float(eqd2(total_gy, n, Model("LQ", float(high)))),
    )


def _source_limit(row: ResultRow) -> float | None:
    """The tabulated limit behind a converted D-metric row (inverse of the conversion)."""
    n0, n, ab = row.converted_from_fractions, row.constraint_fractions, row.alpha_beta_gy
    if n0 is None or n is None or ab is None or row.limit is None or row.unit != "Gy":
        return None
    if not row.metric.startswith(("D", "Max", "Min")) or row.kind != "physical":
        return None
    return converted_limit(row.limit, n, n0, ab)


def assess_row(row: ResultRow, ab_range: tuple[float, float] | None, range_source: str) -> ResultRow:
    """The row with ``robustness`` and ``robustness_note`` filled (see the module)."""
    if row.limit is None or row.status in ("info", "not evaluable") or math.isnan(row.value):
        return row
    status = compare(row.value, row.comparator, row.limit)
    if row.converted_from_fractions is None and not (
        row.lesion_id == "composite" and row.kind == "EQD2"
    ):
        # a limit at its own fraction number (most rows): only the borderline band can flip
        # it; the same verdict and note as the general path below
        margin = relative_margin(row)
        if not math.isnan(margin) and abs(margin) < BORDERLINE_FRACTION:
            return replace(row, robustness="fragile", robustness_note=(
                f"flips: borderline: {abs(margin):.1%} from the limit, within the "
                f"±{BORDERLINE_FRACTION:.0%} dose-calculation band; {_BAND_NOTE}"))
        return replace(row, robustness="pass-robust" if status else "fail-robust",
                       robustness_note=_BAND_NOTE)
    notes = []
    flips: list[str] = []
    limit0 = _source_limit(row) if row.converted_from_fractions is not None else None
    if row.lesion_id == "composite" and row.kind == "EQD2":
        return replace(
            row,
            robustness="not assessed",
            robustness_note="composite EQD2 at another α/β not re-evaluated (not done); "
            + _band_note(row),
        )
    if limit0 is not None:
        low, high = ab_range or (row.alpha_beta_gy, row.alpha_beta_gy)
        if ab_range is None or low == high:
            notes.append(f"α/β {row.alpha_beta_gy:g} Gy only ({range_source or 'no cited range'})")
        else:
            n0, n = row.converted_from_fractions, row.constraint_fractions
            lim_low = converted_limit(limit0, n0, n, low)
            lim_high = converted_limit(limit0, n0, n, high)
            notes.append(
                f"converted limit {lim_low:.2f}-{lim_high:.2f} Gy over α/β {low:g}-{high:g} Gy "
                f"({range_source})"
            )
            s_low = compare(row.value, row.comparator, lim_low)
            s_high = compare(row.value, row.comparator, lim_high)
            if s_low != s_high:
                flip = _flip(lambda ab: compare(row.value, row.comparator,
                                                converted_limit(limit0, n0, n, ab)), low, high)
                flips.append(f"α/β {flip:.2f} Gy")
    elif row.converted_from_fractions is not None and (ab_range is None or ab_range[0] == ab_range[1]):
        notes.append(f"α/β {row.alpha_beta_gy:g} Gy only ({range_source or 'no cited range'})")
    elif row.converted_from_fractions is not None and row.lesion_id != "composite":
        return replace(
            row,
            robustness="not assessed",
            robustness_note="converted volume-metric threshold: α/β sensitivity needs the DVH "
            "at another threshold (not done); " + _band_note(row),
        )
    margin = relative_margin(row)
    if not math.isnan(margin) and abs(margin) < BORDERLINE_FRACTION:
        flips.append(
            f"borderline: {abs(margin):.1%} from the limit, within the ±{BORDERLINE_FRACTION:.0%} "
            "dose-calculation band"
        )
    if flips:
        verdict = "fragile"
        notes.insert(0, "flips: " + "; ".join(flips))
    else:
        verdict = "pass-robust" if status else "fail-robust"
    notes.append(_band_note(row))
    return replace(row, robustness=verdict, robustness_note="; ".join(notes))


def _band_note(row: ResultRow) -> str:
    return _BAND_NOTE


_BAND_NOTE = f"borderline band ±{BORDERLINE_FRACTION:.0%} of the limit ({BORDERLINE_SOURCE})"


def _flip(ok, low: float, high: float) -> float:
    """The α/β in [low, high] where ``ok`` changes (bisection; ``ok`` is monotone)."""
    a, b = low, high
    fa = ok(a)
    for _ in range(60):
        m = 0.5 * (a + b)
        if ok(m) == fa:
            a = m
        else:
            b = m
    return 0.5 * (a + b)


def assess_rows(rows: list[ResultRow], tables, cache: dict | None = None) -> list[ResultRow]:
    """Every row assessed (:func:`assess_row`) with its organ's cited α/β range; ``cache``
    keeps a session from assessing a row twice: ``id(row)`` → ``(row, assessed row)`` (the
    session's cached rows are the same objects on every call; keyed by identity, not by the
    rows' 23-field hash, and the row kept so that its id is not reused)."""
    cache = cache if cache is not None else {}
    out = []
    alpha_beta = tables.alpha_beta
    for row in rows:
        if row.limit is None or row.status in ("info", "not evaluable"):
            out.append(row)  # nothing to assess (assess_row returns the row itself)
            continue
        hit = cache.get(id(row))
        if hit is not None and hit[0] is row:
            out.append(hit[1])
            continue
        entry = alpha_beta.get(row.organ) if row.organ else None
        ab_range = entry.range_gy if entry else None
        done = assess_row(row, ab_range, entry.range_source if entry else "")
        cache[id(row)] = (row, done)
        out.append(done)
    return out


def assess_composite(evaluation, rows: list[ResultRow], choice) -> list[ResultRow]:
    """Composite EQD2 rows of organs with a cited α/β range, re-evaluated at both ends of the
    range: the voxel-wise EQD2 sum at that α/β against the same table rows converted at that
    α/β (:func:`.limits.organ_limits`). A limit stated at one α/β only (a cumulative EQD2
    limit) is not converted and is said so."""
    from .limits import organ_limits
    from .rows import composite_row

    regs = tuple(sorted(choice.items()))
    out = []
    at_cache: dict = {}
    for row in rows:
        if row.robustness != "not assessed" or row.lesion_id != "composite" or row.kind != "EQD2":
            out.append(row)
            continue
        entry = evaluation.tables.alpha_beta.get(row.organ)
        structure = evaluation.oar_structures.get(row.organ)
        if entry is None or structure is None or entry.range_gy[0] == entry.range_gy[1]:
            note = (f"α/β {row.alpha_beta_gy:g} Gy only (no cited α/β range for {row.organ})"
                    if entry is not None else "no α/β entry")
            margin = relative_margin(row)
            flips = (not math.isnan(margin)) and abs(margin) < BORDERLINE_FRACTION
            status = compare(row.value, row.comparator, row.limit)
            verdict = "fragile" if flips else ("pass-robust" if status else "fail-robust")
            text = (f"flips: borderline: {abs(margin):.1%} from the limit; " if flips else "")
            out.append(replace(row, robustness=verdict,
                               robustness_note=text + note + "; " + _band_note(row)))
            continue
        statuses, notes = [], []
        for ab in entry.range_gy:
            key = (row.organ, ab)
            if key not in at_cache:
                lims, _ = organ_limits(row.organ, evaluation.tables, ab)
                dvh = evaluation._organ_composite(row.organ, regs, alpha_beta=ab)
                at_cache[key] = [
                    composite_row(evaluation.case.patient_id, row.organ, structure, lim, dvh,
                                  "", "", "")
                    for lim in lims if lim.alpha_beta_gy is not None
                ]
            same = [r for r in at_cache[key] if r.source == row.source
                    and r.comparator == row.comparator and r.unit == row.unit]
            if len(same) != 1 or math.isnan(same[0].value):
                notes.append(f"at α/β {ab:g} Gy: the limit is not converted (stated at one α/β)")
                continue
            other = same[0]
            statuses.append(compare(other.value, other.comparator, other.limit))
            notes.append(f"at α/β {ab:g} Gy: {other.metric} = {other.value:.2f} vs "
                         f"{other.limit:.2f} {other.unit}")
        status = compare(row.value, row.comparator, row.limit)
        margin = relative_margin(row)
        flips = []
        if any(s != status for s in statuses):
            flips.append(f"between α/β {entry.range_gy[0]:g} and {entry.range_gy[1]:g} Gy")
        if not math.isnan(margin) and abs(margin) < BORDERLINE_FRACTION:
            flips.append(f"borderline: {abs(margin):.1%} from the limit")
        if flips:
            verdict = "fragile"
        elif not statuses:
            verdict = "not assessed"
        else:
            verdict = "pass-robust" if status else "fail-robust"
        text = ("flips: " + "; ".join(flips) + "; " if flips else "") + "; ".join(notes)
        out.append(replace(row, robustness=verdict, robustness_note=(
            f"{text} ({entry.range_source}); {_band_note(row)}")))
    return out


def recommendation_robustness(rec, rows: list[ResultRow], composite: list[ResultRow],
                              lesions) -> dict[str, str]:
    """Per lesion: whether its recommended regimen is robust, and what would change it."""
    from .objective import target_check

    out = {}
    by_key = {}
    for row in rows:
        by_key.setdefault((row.lesion_id, row.regimen), []).append(row)
    for lesion in lesions:
        lid = lesion.lesion_id
        regimen = rec.choice.get(lid)
        if regimen is None:
            continue
        mine = [r for r in by_key.get((lid, regimen.label), []) if r.priority == "mandatory"]
        mine += [r for r in composite if r.priority == "mandatory"]
        fragile = [r for r in mine if getattr(r, "robustness", "") == "fragile"]
        unassessed = [r for r in mine if getattr(r, "robustness", "") == "not assessed"]
        check = target_check(regimen, lesion.site)
        parts = []
        if fragile or check.tier == 1:
            parts.append("NOT robust: " + "; ".join(
                [f"{r.structure or r.organ} {r.metric} ({r.robustness_note.split('; ')[0]})"
                 for r in fragile]
                + ([f"control target lost under {check.flips}"] if check.tier == 1 else [])))
        else:
            parts.append(
                "robust: every assessed mandatory row keeps its status over the organs' cited "
                f"α/β ranges and ±{BORDERLINE_FRACTION:.0%} dose"
                + ("; the control target holds under LQ, LQ-L and USC"
                   if check.cited and regimen.dose_per_fraction_gy > 10 else "")
            )
        unjudged = sorted({r.structure for r in mine
                           if r.status == "not evaluable" and r.structure})
        if unjudged:
            parts.append(
                "cannot be judged for " + ", ".join(unjudged)
                + " (mandatory rows without a value or a cited limit at this fraction number: "
                "not a pass)"
            )
        uncited = sorted({r.structure for r in by_key.get((lid, regimen.label), [])
                          if r.status == "not evaluable" and r.structure
                          and "no cited limit" in r.reason})
        if uncited:
            parts.append(
                f"no cited limit at {regimen.fractions} fx for " + ", ".join(uncited)
                + " (advisory extrapolations only: judge these organs clinically)"
            )
        if unassessed:
            parts.append(f"{len(unassessed)} mandatory row(s) not assessed (composite EQD2 or "
                         "converted volume thresholds)")
        row = rec.binding_rows.get(lid)
        if row is not None:
            # the first of rows + composite with its lesion, regimen, metric, structure and
            # source: among the rows of its lesion and regimen, then the composite rows
            candidates = by_key.get((row.lesion_id, row.regimen), [])
            assessed = next((r for part in (candidates, composite) for r in part
                             if r.lesion_id == row.lesion_id
                             and r.regimen == row.regimen and r.metric == row.metric
                             and r.structure == row.structure and r.source == row.source), row)
            if getattr(assessed, "robustness", "") == "fragile":
                parts.append(
                    f"would change: the preferred {row.regimen} is stopped by a fragile row "
                    f"({assessed.structure} {assessed.metric}: "
                    f"{assessed.robustness_note.split('; ')[0]})"
                )
            else:
                parts.append(f"would change if the binding limit changed: {row.describe()}")
        if parts[0].startswith("robust") and (unjudged or uncited):
            parts[0] = "partly judged: " + parts[0][len("robust: "):]
        out[lid] = "; ".join(parts)
    return out
