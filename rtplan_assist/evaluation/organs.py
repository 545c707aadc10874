"""Organs of a case: which structure stands for which constrained TG-263 organ, the rows of an
organ at a fraction number, and the α/β of its composite.

Plain functions of the case, the constraint tables and the name match; the session
(:mod:`rtplan_assist.evaluation.session`) caches what they return.
"""

from __future__ import annotations

from pathlib import Path

from ..constraints import Constraint, ConstraintSet
from ..constraints import constraints_at as regime_constraints_at
from ..model import Case, Structure
from ..names import (
    NameMatch,
    check_mapping_file,
    folder_mapping,
    match_structures,
    unmatched_report,
)
from .records import Lesion


def map_organs(
    case: Case,
    tables: ConstraintSet,
    overrides: dict[str, str] | None,
    warnings: list[str],
) -> tuple[NameMatch, dict[str, Structure]]:
    """Match the case's structure names to the organs the tables constrain.

    Parameters
    ----------
    case : Case
    tables : ConstraintSet
    overrides : dict of str to str or None
        Case structure name → TG-263 name (``--map``); they take precedence over a mapping file
        in the case folder (:func:`rtplan_assist.names.folder_mapping`).
    warnings : list of str
        Receives a line naming the folder's mapping file when there is one.

    Returns
    -------
    name_match : NameMatch
    oar_structures : dict of str to Structure
        TG-263 organ → the non-empty case structure matched to it.
    """
    organs = tables.organs()
    lines: dict[str, int] = {}
    folder_map, map_file = folder_mapping(case, lines=lines)
    if folder_map:
        # an entry the case cannot use is refused as file:line (not as '--map ...')
        unused = {k: v for k, v in folder_map.items() if k not in (overrides or {})}
        check_mapping_file(map_file, unused, lines, [s.name for s in case.structures], tables)
        warnings.append(
            f"structure mapping from {Path(map_file).name}: "
            + ", ".join(f"{k} → {v}" for k, v in folder_map.items())
            + (" (command-line mappings take precedence)" if overrides else "")
        )
    merged = {**folder_map, **(overrides or {})}
    name_match = match_structures([s.name for s in case.structures], organs, tables, merged or None)
    by_name = {s.name: s for s in case.structures}
    oar_structures: dict[str, Structure] = {}
    for name, organ in name_match.matched.items():
        if organ in organs and not by_name[name].is_empty:
            oar_structures[organ] = by_name[name]
    return name_match, oar_structures


def name_warnings(
    name_match: NameMatch,
    lesions: list[Lesion],
    oar_structures: dict[str, Structure],
    organs: tuple[str, ...],
) -> list[str]:
    """Warnings about ambiguous names, unmatched structures and constrained organs the case
    lacks (targets and GTVs are not reported; helper structures are listed apart)."""
    out = []
    targets = {lesion.target.name for lesion in lesions}
    targets |= {lesion.gtv.name for lesion in lesions if lesion.gtv}
    for amb in name_match.ambiguous:
        out.append(f"ambiguous structure name: {amb.describe()}")
    # helper prefixes are matched as whole words ("OPTIC STRUCTURES" is not a helper) and
    # helpers are listed too: nothing is hidden (issue 12)
    unmatched, helpers = unmatched_report(n for n in name_match.unmatched if n not in targets)
    if unmatched:
        out.append(
            "structures without a TG-263 name, not evaluated against constraints (map them "
            f"with --map NAME=TG263): {', '.join(unmatched)}"
        )
    if helpers:
        out.append(
            "structures taken as helper/target structures by their prefix, not evaluated "
            f"against constraints: {', '.join(helpers)}"
        )
    missing = [o for o in organs if o not in oar_structures]
    if missing:
        out.append(
            f"{len(missing)} organ(s) that the constraint tables constrain have no structure "
            f"in the case; their rows are 'not evaluable': {', '.join(missing)}"
        )
    return out


def missing_reason(name_match: NameMatch, organ: str) -> str:
    """Why an organ the tables constrain has no structure: an ambiguous name, or none maps."""
    for amb in name_match.ambiguous:
        if amb.key == organ or organ in amb.candidates:
            return f"not evaluated: {amb.describe()}"
    return (
        f"no structure of the case maps to TG-263 '{organ}'; if one exists under another "
        f"name, map it with --map NAME={organ}"
    )


def composite_alpha_beta(tables: ConstraintSet, organ: str) -> float | None:
    """The organ's α/β (Gy) for its composite: ``alpha_beta.csv``, else the one value its
    rows state, else None."""
    ab = tables.alpha_beta_for(organ)
    if ab is None:
        stated = {c.alpha_beta for c in tables.constraints if c.organ == organ}
        stated.discard(None)
        ab = stated.pop() if len(stated) == 1 else None
    return ab


def constraints_at(
    tables: ConstraintSet, organ: str, fractions: int
) -> tuple[list[Constraint], str]:
    """Rows of an organ at a fraction number and a note (issue 12,
    :func:`rtplan_assist.constraints.constraints_at`): every table of the regime of
    ``fractions`` (tabulated or converted within the regime, priorities kept); limits converted
    across regimes are advisory only (``report``, "extrapolated outside the source's
    fractionation range"); the note says "no cited limit at n fx" when no table covers
    ``fractions``."""
    limits = regime_constraints_at(organ, fractions, tables)
    return list(limits.rows), limits.note
