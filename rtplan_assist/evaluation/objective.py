"""The recommendation's objective: per lesion, lexicographic (issue 13).

A choice (one regimen per lesion) is ranked by, in this order:

1. **Control target.** Every lesion reaches its site's *cited* control target
   (:func:`rtplan_assist.regimens.control_target`; lung SABR: prescription BED10 >= 100 Gy,
   LQ). Minimised: the number of lesions below their target, then their summed shortfall
   (Gy BED10; a surplus elsewhere does not offset it), then the number whose target is
   reached only under LQ (above 10 Gy per fraction, where LQ is outside its validated range,
   the target is also checked with LQ-L, d_T 6 and 8 Gy, and USC, Park fit: reference §6.4;
   a regimen that drops below the target under either is *model-fragile*). A site without a
   cited target (nodes, liver, bone, vertebra, adrenal in the reference documents) is stated
   as such and this criterion does not rank its regimens.
2. **Margin to the binding mandatory limits, max-min across lesions.** A lesion's margin is
   its smallest relative margin ``(limit - value) / limit`` over its mandatory rows; the choice
   is ranked by its worst lesion (not a sum). Margins beyond the borderline band
   (:data:`BORDERLINE_FRACTION`) count as equal: a larger margin than the dose-calculation
   uncertainty buys nothing measurable, and criteria 3 and 4 then decide.
3. **Standard regimens, then fewer fractions**: regimens the catalogue cites for the lesion's
   site first (:func:`rtplan_assist.regimens.is_standard`), then the smaller total number of
   fractions.
4. **BED**: the higher total prescription BED10 (LQ).

Lesions of one plan (several targets of one RTPLAN) share one regimen; the search treats
them as one unit. The mandatory composite limits are a condition, not a criterion: the best
choice by 1-4 whose composite passes is recommended.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..radiobiology import Model, bed, usc_park2008_nsclc
from ..regimens import Regimen, control_target, is_standard

#: Relative band around a limit inside which a value is *borderline*: 3 % of the limit.
BORDERLINE_FRACTION = 0.03
BORDERLINE_SOURCE = (
    "3 % of the limit: the TPS dose-calculation tolerance of 3 % (ESTRO 'Dose' course 2018, "
    "TPS commissioning tolerance 3 %/2 mm) and the clinical audit (f) 9 (flag values within "
    "2-3 % of a limit for review)"
)
#: Above this dose per fraction LQ is outside its validated range (Brenner 2008, PMC2750078,
#: reference §6.4) and the tumour target is also checked with LQ-L and USC.
LQ_VALID_DOSE_PER_FRACTION_GY = 10.0
LQL_TRANSITION_DOSES_GY = (6.0, 8.0)  # the d_T of the reference §6.4 comparison (no default
# is verified)


def high_dose_models() -> list[Model]:
    """The tumour models of the model check: LQ-L (α/β 10 Gy, d_T 6 and 8 Gy) and USC (Park
    2008 NSCLC fit, marked unverified)."""
    return [Model("LQ-L", 10.0, t) for t in LQL_TRANSITION_DOSES_GY] + [usc_park2008_nsclc()]


@dataclass(frozen=True)
class TargetCheck:
    """How a regimen meets its site's control target.

    ``tier``: 0 reached robustly, or no cited target; 1 reached under LQ only (model-fragile);
    2 not reached. ``text`` says which, with the model values; ``flips`` names the model under
    which a reached target is lost (empty when robust).
    """

    tier: int
    text: str
    flips: str = ""
    cited: bool = True


def target_check(regimen: Regimen, site: str) -> TargetCheck:
    """The control-target criterion of one regimen at one site."""
    target = control_target(site)
    bed10 = regimen.bed10_gy()
    if target is None:
        return TargetCheck(
            0,
            f"no cited control target for site '{site}' in the reference documents "
            f"(BED10 {bed10:.1f} Gy, LQ, shown only)",
            cited=False,
        )
    line = f"BED10 {bed10:.1f} Gy (LQ, α/β 10 Gy) vs target {target.bed10_gy:g} Gy [{target.source}]"
    if bed10 < target.bed10_gy - 1e-9:
        return TargetCheck(2, f"below the control target: {line}")
    if regimen.dose_per_fraction_gy <= LQ_VALID_DOSE_PER_FRACTION_GY + 1e-9:
        return TargetCheck(0, f"reaches the control target: {line}")
    values = []
    flips = []
    for model in high_dose_models():
        value = float(bed(regimen.total_dose_gy, regimen.fractions, model))
        name = model.name if model.name == "USC" else f"LQ-L d_T {model.transition_dose_gy:g} Gy"
        values.append(f"{name} {value:.1f} Gy")
        if value < target.bed10_gy - 1e-9:
            flips.append(f"{name} ({value:.1f} Gy)")
    models = "; ".join(values)
    if flips:
        return TargetCheck(
            1,
            f"reaches the control target under LQ only: {line}; at "
            f"{regimen.dose_per_fraction_gy:.3g} Gy per fraction LQ is outside its validated "
            f"range and {', '.join(flips)} falls below it ({models})",
            flips=", ".join(flips),
        )
    return TargetCheck(0, f"reaches the control target under LQ, LQ-L and USC: {line}; {models}")


def relative_margin(row) -> float:
    """``(limit - value) / |limit|`` for an upper limit, ``(value - limit) / |limit|`` for a
    lower one; NaN when the row has no value or limit."""
    if row.limit is None or row.value is None or math.isnan(row.value):
        return math.nan
    scale = abs(row.limit) if row.limit else 1.0
    if row.comparator in ("<", "<="):
        return (row.limit - row.value) / scale
    if row.comparator in (">", ">="):
        return (row.value - row.limit) / scale
    return math.nan


@dataclass(frozen=True)
class Option:
    """One regimen of one search unit (a plan's lesions) with its per-unit criteria."""

    regimen: Regimen
    below: int  # lesions below their cited target
    shortfall: float  # summed BED10 (Gy) missing to the targets of the lesions below them
    fragile: int  # lesions reaching it under LQ only
    margin: float  # worst relative margin over the unit's mandatory rows (uncapped)
    margin_row: object  # that row (or None)
    nonstandard: int
    fractions: int
    bed10: float
    failures: int  # mandatory per-lesion failures (0 unless no option passes)

    @property
    def capped(self) -> float:
        """The margin as the objective compares it: capped at the borderline band."""
        return min(self.margin, BORDERLINE_FRACTION) if not math.isnan(self.margin) else (
            BORDERLINE_FRACTION
        )

    def additive(self) -> tuple:
        """The additive part of the key (criteria 1, 3, 4): summed over units."""
        return (self.failures, self.below, round(self.shortfall, 6), self.fragile,
                self.nonstandard, self.fractions, -self.bed10)


def option(regimen: Regimen, lesions, rows_of, failures: int = 0) -> Option:
    """The :class:`Option` of ``regimen`` for a unit of ``lesions`` (``rows_of(lid, regimen)``
    gives a lesion's rows)."""
    below = fragile = nonstandard = 0
    shortfall = 0.0
    margin, margin_row = math.nan, None
    for lesion in lesions:
        check = target_check(regimen, lesion.site)
        below += check.tier == 2
        if check.tier == 2:
            shortfall += control_target(lesion.site).bed10_gy - regimen.bed10_gy()
        fragile += check.tier == 1
        nonstandard += not is_standard(regimen, lesion.site)
        for row in rows_of(lesion.lesion_id, regimen):
            if row.priority != "mandatory" or row.status == "not evaluable":
                continue
            m = relative_margin(row)
            if not math.isnan(m) and (math.isnan(margin) or m < margin):
                margin, margin_row = m, row
    return Option(
        regimen, below, shortfall, fragile, margin, margin_row, nonstandard, regimen.fractions,
        regimen.bed10_gy() * len(lesions), failures,
    )


def choice_key(options: list[Option]) -> tuple:
    """The lexicographic key of a whole choice (smaller is better)."""
    add = [sum(values) for values in zip(*(o.additive() for o in options))]
    worst = min(o.capped for o in options)
    return (add[0], add[1], add[2], add[3], -worst, add[4], add[5], add[6])


def describe_objective() -> list[str]:
    """The objective in words (README, report)."""
    return [
        ("1) every lesion reaches its site's cited control target (lung: BED10 >= 100 Gy, LQ; "
        "above 10 Gy/fx also under LQ-L and USC); a lesion that cannot gets as close as "
        "possible (no surplus elsewhere offsets it); sites without a cited target say so"),
        ("2) margin to the binding mandatory limits, worst lesion first (max-min); margins "
        f"beyond the borderline band ({BORDERLINE_FRACTION:.0%} of the limit) count as equal"),
        "3) regimens the catalogue cites for the site, then fewer fractions",
        "4) higher prescription BED10 (LQ)",
        "the mandatory composite limits must pass",
    ]
