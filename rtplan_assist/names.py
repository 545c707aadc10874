"""Map a case's structure names to TG-263 names, reporting what cannot be mapped safely.

Order of matching for each case structure name:

1. a user override (``--map NAME=TG263`` or a mapping CSV, :func:`load_mapping_file`);
2. an exact TG-263 primary name, case-insensitive (``spinalcord`` → ``SpinalCord``), including
   PRV names ``<TG-263 name>_PRVxx`` (TG-263 worksheet pattern);
3. a TG-263 Reverse Order name, case-insensitive (``L_Lung`` → ``Lung_L``);
4. the alias table (``constraints/aliases.csv``) and the TG-263 names, both compared after
   :func:`normalise_name` (case, spaces, underscores, hyphens and apostrophes ignored:
   ``"LUNGS-ITV's"`` → ``Lungs-ITV``).

Nothing is guessed: two case structures that map to one TG-263 organ, or one name with two
candidates, are reported in ``NameMatch.ambiguous`` and left unmapped until an override
resolves them. Overrides win over every other rule.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .constraints import Alias, ConstraintSet, load_tg263_names
from .errors import ConstraintTableError, EvaluationError

__all__ = [
    "Ambiguity",
    "NameMatch",
    "check_mapping_file",
    "folder_map_file",
    "folder_mapping",
    "load_mapping_file",
    "match_structures",
    "normalise_name",
    "parse_map_argument",
]

_IGNORED = re.compile(r"[\s_\-'’`]+")
_PRV = re.compile(r"^(?P<base>.+)_PRV(?P<margin>\d{1,2})$", re.IGNORECASE)


def normalise_name(name: str) -> str:
    """Casefold and drop spaces, underscores, hyphens and apostrophes.

    >>> normalise_name("LUNGS-ITV's")
    'lungsitvs'
    """
    return _IGNORED.sub("", name).casefold()


@dataclass(frozen=True)
class Ambiguity:
    """A mapping left undecided.

    Attributes
    ----------
    kind : {"organ", "name"}
        ``organ``: several case structures map to one TG-263 organ (``key`` is the organ,
        ``candidates`` the case names). ``name``: one case name has several TG-263 candidates
        (``key`` is the case name, ``candidates`` the TG-263 names).
    key : str
    candidates : tuple of str
    """

    kind: str
    key: str
    candidates: tuple[str, ...]

    def describe(self) -> str:
        listed = ", ".join(self.candidates)
        if self.kind == "organ":
            return f"{self.key}: several structures match ({listed}); choose one with --map"
        return f"'{self.key}': several TG-263 candidates ({listed}); choose one with --map"


@dataclass(frozen=True)
class NameMatch:
    """Result of :func:`match_structures`.

    Attributes
    ----------
    matched : dict of str to str
        Case structure name → TG-263 name, only for unambiguous matches.
    rule : dict of str to str
        Case structure name → the rule that matched (``override``, ``tg263``, ``tg263-prv``,
        ``tg263-reverse``, ``alias``, ``tg263-normalised``).
    unmatched : tuple of str
        Case structure names with no TG-263 name.
    ambiguous : tuple of Ambiguity
    overridden : tuple of str
        Case names that matched an organ some override assigned to another structure.
    missing : tuple of str
        Organs needed with no (unambiguous) case structure.
    """

    matched: dict[str, str] = field(default_factory=dict)
    rule: dict[str, str] = field(default_factory=dict)
    unmatched: tuple[str, ...] = ()
    ambiguous: tuple[Ambiguity, ...] = ()
    overridden: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    def structure_for(self, organ: str) -> str | None:
        """The case structure mapped to TG-263 ``organ``, or ``None``."""
        for name, target in self.matched.items():
            if target == organ:
                return name
        return None


def parse_map_argument(text: str) -> tuple[str, str]:
    """Parse one ``--map NAME=TG263`` argument into ``(case name, TG-263 name)``."""
    name, sep, target = text.partition("=")
    if not sep or not name.strip() or not target.strip():
        raise EvaluationError(
            f"--map '{text}': expected STRUCTURE=TG263NAME, e.g. 'My Cord=SpinalCord'"
        )
    return name.strip(), target.strip()


FOLDER_MAP_FILE = "rtplan-assist-map.csv"
"""A ``structure,tg263`` mapping kept with a patient's files; applied to that patient and
reported (explicit ``--map`` overrides win). Where it is looked for: :func:`folder_map_file`."""


def folder_map_file(where) -> Path | None:
    """The patient's mapping file (:data:`FOLDER_MAP_FILE`), or None: the one rule of the CLI,
    the batch and the app (folders and uploads).

    ``where`` is a case (:class:`~rtplan_assist.model.Case`) or a folder. For a case with a
    structure set: the file in the structure set's folder, else in the nearest folder above it
    up to and including the folder the case was loaded from (``case.folder``), so that
    ``evaluate OUT`` finds the file ``demo --out OUT`` writes in ``OUT/RTPA-DEMO-0000/`` as
    ``evaluate OUT/RTPA-DEMO-0000`` does, and an uploaded zip of either finds it too. For a
    folder, or a case without a structure set: the file in that folder.
    """
    folder = getattr(where, "folder", where)
    if not folder:
        return None
    root = Path(folder)
    places = []
    near = getattr(where, "structure_set_path", None)
    if near:
        here = Path(near).parent
        while here == root or root in here.parents:
            places.append(here)
            if here == root:
                break
            here = here.parent
    if root not in places:
        places.append(root)
    for place in places:
        path = place / FOLDER_MAP_FILE
        if path.is_file():
            return path
    return None


def folder_mapping(where, *,
                   lines: dict[str, int] | None = None) -> tuple[dict[str, str], str | None]:
    """The patient's mapping file, if any (:func:`folder_map_file`; ``where``: a case or a
    folder): (mapping, file path or None); ``lines`` as in :func:`load_mapping_file`."""
    path = folder_map_file(where)
    if path is None:
        return {}, None
    return load_mapping_file(path, lines=lines), str(path)


def load_mapping_file(path: str | Path, *, lines: dict[str, int] | None = None,
                      plan_options: list[tuple[str, str, str]] | None = None) -> dict[str, str]:
    """Read a mapping CSV with columns ``structure,tg263`` (header required).

    Rows whose first cell is ``--target`` or ``--prescription`` carry the ``evaluate``
    option of that name for this patient (second cell: ``PLAN=ROI[,ROI...]`` or
    ``PLAN=DOSE/FRACTIONS``); they are not mappings and go to ``plan_options`` as
    ``(option, value, "file:line")`` when given.

    ``lines``, when given, receives the line number of each structure's entry (for
    :func:`check_mapping_file`).

    Returns
    -------
    dict of str to str
        Case structure name → TG-263 name.

    Raises
    ------
    ConstraintTableError
        ``file:line: message`` for a missing header, an empty cell or a structure given twice
        with different targets.
    """
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ConstraintTableError(f"{path}: cannot read ({exc.strerror})") from exc
    mapping: dict[str, str] = {}
    with handle:
        reader = csv.reader(handle)
        header = [cell.strip().casefold() for cell in next(reader, [])]
        if header != ["structure", "tg263"]:
            raise ConstraintTableError(f"{path.name}:1: header must be 'structure,tg263'")
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if cells and cells[0].strip() in ("--target", "--prescription"):
                if plan_options is not None:
                    plan_options.append((cells[0].strip(), ",".join(cells[1:]).strip(),
                                         f"{path.name}:{line}"))
                continue
            if len(cells) != 2 or not cells[0].strip() or not cells[1].strip():
                raise ConstraintTableError(f"{path.name}:{line}: expected 'structure,tg263'")
            name, target = cells[0].strip(), cells[1].strip()
            if mapping.get(name, target) != target:
                raise ConstraintTableError(
                    f"{path.name}:{line}: '{name}' mapped twice ({mapping[name]}, {target})"
                )
            mapping[name] = target
            if lines is not None:
                lines[name] = line
    return mapping


def check_mapping_file(path: str | Path, mapping: Mapping[str, str], lines: Mapping[str, int],
                       structure_names: Iterable[str],
                       tables: ConstraintSet | None = None) -> None:
    """Refuse a mapping-file entry that names no structure of the case or no known TG-263 name,
    as ``file:line: message`` (:func:`match_structures` can only say ``--map``).

    Raises
    ------
    EvaluationError
    """
    path = Path(path)
    names = set(structure_names)
    if tables is not None and tables.tg263_names:
        known = list(tables.tg263_names) + list(tables.organs())
    else:
        known = list(load_tg263_names()[0]) + (list(tables.organs()) if tables else [])
    known_cf = {k.casefold() for k in known}
    for name, target in mapping.items():
        where = f"{path.name}:{lines.get(name, '?')}"
        if name not in names:
            raise EvaluationError(
                f"{where}: no structure '{name}' in the case (have "
                f"{', '.join(sorted(names)) or 'none'})"
            )
        if target.casefold() not in known_cf:
            raise EvaluationError(f"{where}: '{target}' is not a known TG-263 name")


def _alias_pairs(aliases) -> list[tuple[str, str, str]]:
    if isinstance(aliases, ConstraintSet):
        aliases = aliases.aliases
    if isinstance(aliases, Mapping):
        return [(alias, target, "normalised") for alias, target in aliases.items()]
    pairs = []
    for entry in aliases:
        if isinstance(entry, Alias):
            pairs.append((entry.alias, entry.tg263, entry.match))
        else:
            alias, target = entry
            pairs.append((alias, target, "normalised"))
    return pairs


def match_structures(
    structure_names: Iterable[str],
    organs_needed: Iterable[str],
    aliases: Mapping[str, str] | Iterable[Alias] | ConstraintSet,
    overrides: Mapping[str, str] | None = None,
    *,
    tg263_names: Iterable[str] | None = None,
    tg263_reverse: Mapping[str, str] | None = None,
) -> NameMatch:
    """Map case structure names to TG-263 names (module docstring gives the rules).

    Parameters
    ----------
    structure_names : iterable of str
        The case's structure names (RTSTRUCT ROI names).
    organs_needed : iterable of str
        TG-263 organs the evaluation needs (for ``missing``).
    aliases : mapping, iterable of Alias, or ConstraintSet
        Alias → TG-263 name; a :class:`ConstraintSet` gives its ``aliases.csv`` rows.
    overrides : mapping of str to str, optional
        Case structure name (exact) → TG-263 name; wins over every other rule.
    tg263_names, tg263_reverse : optional
        TG-263 primary names and Reverse Order → primary map; default: the shipped
        ``tg263_names.csv`` (or those of a given ``ConstraintSet``).

    Returns
    -------
    NameMatch

    Raises
    ------
    EvaluationError
        An override that names a structure absent from the case or a target that is not a
        known TG-263 name.
    """
    names = list(dict.fromkeys(structure_names))
    needed = list(dict.fromkeys(organs_needed))
    if tg263_names is None:
        if isinstance(aliases, ConstraintSet) and aliases.tg263_names:
            tg263_names, tg263_reverse = aliases.tg263_names, aliases.tg263_reverse
        else:
            tg263_names, shipped_reverse = load_tg263_names()
            tg263_reverse = tg263_reverse if tg263_reverse is not None else shipped_reverse
    primary = {name.casefold(): name for name in tg263_names}
    for organ in needed:
        primary.setdefault(organ.casefold(), organ)
    reverse = {k.casefold(): v for k, v in (tg263_reverse or {}).items()}
    normalised: dict[str, set[str]] = {}
    for name in primary.values():
        normalised.setdefault(normalise_name(name), set()).add(name)
    exact_aliases: dict[str, set[str]] = {}
    for alias, target, how in _alias_pairs(aliases):
        if how == "exact":
            exact_aliases.setdefault(alias.strip(), set()).add(target)
        else:
            normalised.setdefault(normalise_name(alias), set()).add(target)

    overrides = dict(overrides or {})
    for name, target in overrides.items():
        if name not in names:
            raise EvaluationError(f"--map '{name}={target}': no structure '{name}' in the case")
        if target.casefold() not in primary:
            raise EvaluationError(f"--map '{name}={target}': '{target}' is not a known TG-263 name")

    candidates: dict[str, tuple[str, ...]] = {}
    rule: dict[str, str] = {}
    for name in names:
        key = name.strip()
        if name in overrides:
            candidates[name] = (primary[overrides[name].casefold()],)
            rule[name] = "override"
        elif key.casefold() in primary:
            candidates[name] = (primary[key.casefold()],)
            rule[name] = "tg263"
        elif (prv := _PRV.match(key)) and prv["base"].casefold() in primary:
            base = primary[prv["base"].casefold()]
            candidates[name] = (f"{base}_PRV{int(prv['margin']):02d}",)
            rule[name] = "tg263-prv"
        elif key.casefold() in reverse:
            candidates[name] = (reverse[key.casefold()],)
            rule[name] = "tg263-reverse"
        elif key in exact_aliases or normalise_name(key) in normalised:
            found = exact_aliases.get(key) or normalised[normalise_name(key)]
            candidates[name] = tuple(sorted(found))
            rule[name] = "alias"

    ambiguous: list[Ambiguity] = []
    by_organ: dict[str, list[str]] = {}
    for name, found in candidates.items():
        if len(found) > 1:
            ambiguous.append(Ambiguity("name", name, found))
            continue
        by_organ.setdefault(found[0], []).append(name)

    matched: dict[str, str] = {}
    overridden: list[str] = []
    for organ, case_names in by_organ.items():
        chosen = [n for n in case_names if rule[n] == "override"]
        if chosen:
            overridden.extend(n for n in case_names if rule[n] != "override")
            case_names = chosen
        if len(case_names) > 1:
            ambiguous.append(Ambiguity("organ", organ, tuple(case_names)))
            continue
        matched[case_names[0]] = organ

    unmatched = tuple(n for n in names if n not in candidates)
    mapped = set(matched.values())
    return NameMatch(
        matched=matched,
        rule={n: rule[n] for n in matched},
        unmatched=unmatched,
        ambiguous=tuple(ambiguous),
        overridden=tuple(overridden),
        missing=tuple(o for o in needed if o not in mapped),
    )


#: Prefixes of helper/planning structures (optimisation rings, "z" helpers, targets). Matched
#: as whole words only: the prefix must be followed by the end of the name, a separator
#: (space, ``_``, ``-``, ``.``, ``^``, ``~``) or a digit, so "OPTIC STRUCTURES", "Zygoma" or
#: "Ringer" are not helpers (issue 12).
HELPER_PREFIXES = ("PTV", "GTV", "CTV", "ITV", "iGTV", "IGTV", "z", "opt", "ring", "help", "helper")
_HELPER_RE = re.compile(
    r"^\s*(?:" + "|".join(HELPER_PREFIXES) + r")(?=$|[\s_\-.^~0-9])", re.IGNORECASE
)


def is_helper_name(name: str) -> bool:
    """True for a target or helper structure name by a whole-word prefix (``z_Ring``,
    ``opt PTV``, ``PTV_60``, ``Ring 2``); False for ``OPTIC STRUCTURES``, ``Zygoma``."""
    return bool(_HELPER_RE.match(name))


def unmatched_report(names) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split unmatched structure names into (listed as unmatched, recognised helpers/targets).

    Both lists are meant to be shown: nothing is hidden, helpers are only labelled."""
    names = tuple(names)
    helpers = tuple(n for n in names if is_helper_name(n))
    return tuple(n for n in names if n not in helpers), helpers
