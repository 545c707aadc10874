"""Composite limits: an organ's table rows expressed as EQD2 limits.

Every tabulated row of an organ is converted to EQD2 at its own fraction number with the
organ's α/β (LQ; reference §10.3: "``D0.35cc[Gy] <= 18`` in 3 fx → EQD2 36.0 Gy at α/β 2"): a
dose limit becomes an EQD2 limit; a volume metric queried at a dose (``V20Gy``, ``CV12.4Gy``)
has its dose threshold converted and keeps its volume limit. Rows relative to the prescription
are left out. Per organ × metric the most conservative converted limit of the highest priority
present applies, naming its source.
"""

from __future__ import annotations

from collections.abc import Callable

from ..constraints import Constraint, conservative_threshold
from ..metrics import Metric
from ..radiobiology import Model, eqd2
from .records import CONTRIBUTION_FRACTION, PRIORITY_RANK, CompositeLimit


def to_eqd2(c: Constraint, model: Model) -> tuple[Metric, float, float | None, str] | None:
    """``(metric, limit, goal, note)`` of a table row in EQD2 at ``model``'s α/β, or None for a
    volume metric not queried at a dose."""
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


def organ_limits(
    organ: str,
    nset: tuple[int, ...],
    rows_at: Callable[[int], list[Constraint]],
    ab: float,
) -> list[CompositeLimit]:
    """The EQD2 limits of one organ's composite.

    Parameters
    ----------
    organ : str
    nset : tuple of int
        Fraction numbers of the organ's contributing lesions.
    rows_at : callable
        Fraction number → the organ's rows there (:func:`.organs.constraints_at`).
    ab : float
        The organ's α/β (Gy).

    Returns
    -------
    list of CompositeLimit
        One per organ × metric group (the most conservative of the highest priority), ordered
        by priority, then metric.
    """
    model = Model("LQ", ab)
    groups: dict[tuple, list[tuple]] = {}
    for n in nset:
        for c in rows_at(n):
            m = c.parsed_metric
            if c.limit_relative_to == "rx" or m.needs_prescription:
                continue
            converted = to_eqd2(c, model)
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
    return chosen
