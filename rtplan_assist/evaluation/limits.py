"""Composite limits: fixed per organ, the same whatever regimens are chosen (issue 12).

:func:`rtplan_assist.constraints.composite_limits` decides them from the tables alone:
cumulative EQD2 limits where a source gives them (cord: HyTEC thecal sac Dmax EQD2 <= 70 Gy at
α/β 2); otherwise every per-course row re-expressed in EQD2 at its own fraction number with the
organ's α/β (LQ), rows of tables written for another regime than the conventional one of an
EQD2 sum being advisory only, and per metric the most conservative of the highest priority,
naming its source. Lung low-dose-bath rows (V <= 5 Gy) stay physical and are judged on the
physical dose sum. This module turns them into the evaluator's :class:`CompositeLimit`.
"""

from __future__ import annotations

from dataclasses import replace

from ..constraints import ConstraintSet, composite_limits
from .records import PRIORITY_RANK, CompositeLimit


def organ_limits(organ: str, tables: ConstraintSet, ab: float | None) -> tuple[list[CompositeLimit], str]:
    """The composite limits of one organ and a note on what was left out.

    Parameters
    ----------
    organ : str
    tables : ConstraintSet
    ab : float or None
        The organ's α/β (Gy) of its EQD2 sum; an EQD2 limit stated at another α/β is left
        out (named in the note).

    Returns
    -------
    limits : list of CompositeLimit
        Ordered by priority, then metric. ``alpha_beta_gy`` is None for a limit on the
        physical dose sum.
    note : str
    """
    chosen, left_out = [], []
    for lim in composite_limits(organ, tables):
        if lim.kind == "EQD2" and (ab is None or abs(lim.alpha_beta - ab) > 1e-9):
            left_out.append(
                f"{lim.row.metric} stated at α/β {lim.alpha_beta:g} Gy, the organ's EQD2 sum "
                f"uses {ab} Gy"
            )
            continue
        row = replace(lim.row, priority=lim.priority)
        chosen.append(
            CompositeLimit(
                organ, row.parsed_metric, row.comparator, row.limit, row.goal,
                lim.alpha_beta, row, lim.reason,
            )
        )
    chosen.sort(key=lambda x: (PRIORITY_RANK.get(x.row.priority, 3), str(x.metric)))
    note = f"{organ}: left out of the composite: {'; '.join(left_out)}" if left_out else ""
    return chosen, note
