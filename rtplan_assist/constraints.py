"""Cited OAR constraint tables: loading, validation, lookup by organ and fraction number, and
LQ conversion to a fraction number no table has.

The data live in ``constraints/`` (package ``rtplan_assist.constraints``): one flat CSV per
source × fraction scheme, ``sources.yaml`` with full citations, ``alpha_beta.csv``,
``aliases.csv`` and ``tg263_names.csv``. ``constraints/README.md`` describes the columns and
the evidence rule (only rows read in a primary source, P, or in two agreeing secondary
transcriptions, S2, are shipped). The design follows
``shared/reference/constraints-radiobiology.md`` §10.

Converted limits are never stored: :func:`constraints_for` computes them on demand and marks
them ``converted_from_fractions``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field, fields
from dataclasses import replace as _dataclass_replace
from pathlib import Path

import yaml

from .errors import ConstraintTableError, MetricSyntaxError
from .metrics import Metric, parse_metric
from .radiobiology import Model, dose_for_eqd2, eqd2

__all__ = [
    "REGIMES",
    "TABLE_COLUMNS",
    "Alias",
    "AlphaBeta",
    "CompositeLimit",
    "Constraint",
    "ConstraintSet",
    "LimitsAt",
    "Source",
    "composite_limits",
    "constraints_at",
    "constraints_for",
    "convert_constraint",
    "load_tables",
    "load_tg263_names",
    "regime_of",
    "shipped_folder",
    "site_coverage",
    "adjacent_regime",
]

TABLE_COLUMNS = (
    "source_id",
    "table_ref",
    "fractions",
    "organ",
    "organ_source",
    "metric",
    "comparator",
    "limit",
    "goal",
    "unit",
    "limit_relative_to",
    "dose_kind",
    "alpha_beta",
    "priority",
    "endpoint",
    "risk",
    "evidence",
    "verified_against",
    "notes",
    "fractions_range",
    "scope",
)
REQUIRED_COLUMNS = (
    "source_id",
    "table_ref",
    "fractions",
    "organ",
    "organ_source",
    "metric",
    "comparator",
    "limit",
    "unit",
    "dose_kind",
    "priority",
    "evidence",
    "verified_against",
)
COMPARATORS = ("<", "<=", ">", ">=")
DOSE_KINDS = ("physical", "EQD2", "BED")
PRIORITIES = ("mandatory", "optimal", "report")
#: P = primary, S2 = two agreeing secondary transcriptions, I = a clinic's own protocol (user
#: tables only). S (one secondary source) and U (unverified) are refused.
ACCEPTED_EVIDENCE = ("P", "S2", "I")
SOURCE_STATUSES = (
    "primary-verified",
    "secondary-verified",
    "institutional",
    "untranscribed",
    "single-secondary",
    "reference",
)
TABLE_STATUSES = ("primary-verified", "secondary-verified", "institutional")
SKIPPED_STATUSES = ("untranscribed", "single-secondary")
DATA_FILES = ("alpha_beta.csv", "aliases.csv", "tg263_names.csv")
#: Fractionation regimes (issue 12): a table is written for one range of fraction numbers.
#: Within a regime a limit is converted through EQD2 (marked); outside it a converted limit is
#: at most advisory (``report``, "extrapolated outside the source's fractionation range").
REGIMES = (
    ("SBRT", 1, 5),
    ("moderately hypofractionated", 6, 15),
    ("conventional", 16, 35),
)
EXTRAPOLATED = "extrapolated outside the source's fractionation range"
SCOPES = ("course", "cumulative")
_DOSE_UNITS = ("Gy", "cGy")


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Source:
    """One entry of ``sources.yaml``.

    Attributes
    ----------
    source_id : str
    citation : str
        Full citation.
    status : str
        One of :data:`SOURCE_STATUSES`.
    details : tuple of (str, str)
        The remaining YAML fields as text (url, pmid, errata, notes, ...).
    """

    source_id: str
    citation: str
    status: str
    details: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AlphaBeta:
    """Default α/β of an organ (``alpha_beta.csv``)."""

    organ: str
    alpha_beta_gy: float
    source_id: str
    evidence: str
    note: str = ""
    low_gy: float | None = None
    high_gy: float | None = None
    range_source: str = ""

    @property
    def range_gy(self) -> tuple[float, float]:
        """(low, high) α/β for a sensitivity check; the default value when no range is cited."""
        low = self.low_gy if self.low_gy is not None else self.alpha_beta_gy
        high = self.high_gy if self.high_gy is not None else self.alpha_beta_gy
        return low, high


@dataclass(frozen=True)
class Alias:
    """A structure name that is not TG-263 and the TG-263 name it stands for (``aliases.csv``).

    ``match`` is ``normalised`` (compare after :func:`rtplan_assist.names.normalise_name`) or
    ``exact`` (case-sensitive, whitespace-stripped).
    """

    alias: str
    tg263: str
    match: str
    source_id: str
    note: str = ""


@dataclass(frozen=True)
class Constraint:
    """One row of a constraint table, validated.

    Attributes
    ----------
    source_id, table_ref : str
        Key into ``sources.yaml``; table/row as printed in the source.
    fractions : int
        The fraction number the limit applies to.
    organ : str
        TG-263 primary name.
    organ_source : str
        The organ wording of the source.
    metric : str
        Canonical TG-263 metric string (``D0.035cc[Gy]``, ``CV12.4Gy[cc]``, ``Mean[Gy]``).
    parsed_metric : Metric
    comparator : {"<", "<=", ">", ">="}
    limit : float
        In the metric's output unit (``unit``).
    goal : float or None
        The optimal value when the source gives one.
    unit : {"Gy", "cGy", "cc", "%"}
    limit_relative_to : {"rx"} or None
        ``"rx"`` when a dose limit is a % of the prescription.
    dose_kind : {"physical", "EQD2", "BED"}
        What the source states.
    alpha_beta : float or None
        α/β (Gy) stated for this row; ``None``: use the organ default (``alpha_beta.csv``).
    priority : {"mandatory", "optimal", "report"}
    endpoint, risk : str
    evidence : {"P", "S2", "I"}
    verified_against : str
        Where the value was checked (section of the reference).
    notes : str
    file : str
        Table file the row came from; ``line`` its line number (1 = header).
    converted_from_fractions : int or None
        Set by :func:`convert_constraint`: the tabulated fraction number the limit was converted
        from (LQ, equal EQD2). ``None`` for a tabulated row.
    conversion_note : str
        Model, α/β and assumption of the conversion; empty for a tabulated row.
    fractions_range : (int, int)
        The fraction numbers the table was written for (column ``fractions_range``; default:
        the regime of :data:`REGIMES` that contains ``fractions``).
    scope : {"course", "cumulative"}
        ``cumulative`` rows are limits on the sum of courses (EQD2), used only by
        :func:`composite_limits`; their ``fractions`` is 0.
    applicability : {"tabulated", "converted within regime", "extrapolated"}
        Set by :func:`constraints_at`.
    reason : str
        Why the row applies at the asked fraction number (set by :func:`constraints_at`).
    source_priority : str
        The priority the source gives (``priority`` may be lowered to ``report`` when the row
        is extrapolated across regimes).
    decides : bool
        The most conservative of the applicable rows of its metric (:func:`constraints_at`).
    """

    source_id: str
    table_ref: str
    fractions: int
    organ: str
    organ_source: str
    metric: str
    parsed_metric: Metric
    comparator: str
    limit: float
    goal: float | None
    unit: str
    limit_relative_to: str | None
    dose_kind: str
    alpha_beta: float | None
    priority: str
    endpoint: str
    risk: str
    evidence: str
    verified_against: str
    notes: str
    file: str
    line: int
    converted_from_fractions: int | None = None
    conversion_note: str = ""
    fractions_range: tuple[int, int] = (0, 0)
    scope: str = "course"
    applicability: str = "tabulated"
    reason: str = ""
    source_priority: str = ""
    decides: bool = False

    @property
    def regime(self) -> str:
        """Name of the regime of the source table (``SBRT``, ``conventional``, ...)."""
        return regime_name(self.fractions_range)

    @property
    def extrapolated(self) -> bool:
        """True for a limit converted across regimes (advisory only)."""
        return self.applicability == "extrapolated"

    @property
    def where(self) -> str:
        """``file:line`` of the row."""
        return f"{self.file}:{self.line}"

    def describe(self) -> str:
        """One-line label, e.g. ``"SpinalCord D0.035cc[Gy] <= 21.9 Gy (tg101_2010, 3 fx)"``."""
        unit = "% of Rx" if self.limit_relative_to == "rx" else self.unit
        kind = "" if self.dose_kind == "physical" else f" {self.dose_kind}"
        text = (
            f"{self.organ} {self.metric} {self.comparator} {self.limit:g} {unit}{kind} "
            f"({self.source_id}, {self.fractions} fx"
        )
        if self.converted_from_fractions is not None:
            text += f", converted from n={self.converted_from_fractions}"
        if self.extrapolated:
            text += f", {EXTRAPOLATED}"
        return text + ")"


def replace_fields(record, names: frozenset, **changes):
    """``dataclasses.replace(record, **changes)`` for a frozen dataclass of plain fields
    without ``__post_init__`` (:class:`Constraint`, the evaluation's ``ResultRow``) when every
    changed name is in ``names``: an equal record, its fields in the same order, without the
    ``__init__``'s ``object.__setattr__`` per field (thousands an evaluation); otherwise
    ``dataclasses.replace`` itself."""
    if not names.issuperset(changes):
        return _dataclass_replace(record, **changes)
    new = object.__new__(type(record))
    state = new.__dict__
    state.update(record.__dict__)
    state.update(changes)
    return new


def _replace(row, **changes):
    """:func:`replace_fields` of a :class:`Constraint` (:func:`constraints_at` makes
    thousands); other records: ``dataclasses.replace``."""
    if type(row) is not Constraint:
        return _dataclass_replace(row, **changes)
    return replace_fields(row, _CONSTRAINT_FIELDS, **changes)


_CONSTRAINT_FIELDS = frozenset(f.name for f in fields(Constraint))


@dataclass(frozen=True)
class ConstraintSet:
    """All loaded rows with the data needed to use them.

    Attributes
    ----------
    constraints : tuple of Constraint
    sources : dict of str to Source
    alpha_beta : dict of str to AlphaBeta
        Organ (TG-263) → default α/β.
    aliases : tuple of Alias
    tg263_names : tuple of str
        TG-263 primary names known to the loader.
    tg263_reverse : dict of str to str
        TG-263 Reverse Order name → primary name.
    notes : tuple of str
        What was skipped and why (untranscribed or single-secondary sources).
    files : tuple of str
        The table files loaded.
    cumulative : tuple of Constraint
        Limits on the sum of courses (``scope`` cumulative, EQD2/BED); kept apart from the
        per-course ``constraints`` and used only by :func:`composite_limits`.
    """

    constraints: tuple[Constraint, ...]
    sources: dict[str, Source] = field(default_factory=dict)
    alpha_beta: dict[str, AlphaBeta] = field(default_factory=dict)
    aliases: tuple[Alias, ...] = ()
    tg263_names: tuple[str, ...] = ()
    tg263_reverse: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    cumulative: tuple[Constraint, ...] = ()

    def organs(self) -> tuple[str, ...]:
        """TG-263 organs with at least one row, sorted."""
        return self._by_organ()[2]

    def _by_organ(self) -> tuple:
        """``(constraints, organ → its rows in order, sorted organs)``, made once for this
        tuple of rows (the evaluation asks thousands of times)."""
        cached = self.__dict__.get("_organ_index")
        if cached is None or cached[0] is not self.constraints:
            index: dict[str, list[Constraint]] = {}
            for c in self.constraints:
                index.setdefault(c.organ, []).append(c)
            cached = (self.constraints, index, tuple(sorted(index)))
            object.__setattr__(self, "_organ_index", cached)  # a cache, not a field
        return cached

    def fractions_for(self, organ: str) -> tuple[int, ...]:
        """Fraction numbers tabulated for ``organ`` (any source), sorted."""
        return tuple(sorted({c.fractions for c in self.constraints if c.organ == organ}))

    def alpha_beta_for(self, organ: str) -> float | None:
        """Default α/β (Gy) of ``organ`` from ``alpha_beta.csv``, or ``None``."""
        entry = self.alpha_beta.get(organ)
        return entry.alpha_beta_gy if entry else None

    def alpha_beta_range(self, organ: str) -> tuple[float, float] | None:
        """(low, high) α/β (Gy) of ``organ`` for a sensitivity check, or ``None``."""
        entry = self.alpha_beta.get(organ)
        return entry.range_gy if entry else None

    def course_rows(self, organ: str) -> list[Constraint]:
        """Per-course rows of ``organ`` (the cumulative ones are in ``cumulative``)."""
        return list(self._by_organ()[1].get(organ, ()))


# --------------------------------------------------------------------------- loading


def shipped_folder() -> Path:
    """Folder of the shipped data files: the package ``rtplan_assist.constraint_tables``,
    mapped from ``constraints/`` at the top of the source tree (``pyproject.toml``)."""
    try:
        from importlib.resources import files

        candidate = Path(str(files("rtplan_assist.constraint_tables")))
        if (candidate / "sources.yaml").is_file():
            return candidate
    except (ModuleNotFoundError, TypeError):
        pass
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "constraints", here / "constraints"):
        if (candidate / "sources.yaml").is_file():
            return candidate
    raise ConstraintTableError(
        f"shipped constraint tables not found next to {here} (expected constraints/sources.yaml)"
    )


def _error(path: Path, line: int | None, message: str) -> ConstraintTableError:
    where = f"{path.name}:{line}" if line is not None else path.name
    return ConstraintTableError(f"{where}: {message}")


def _read_csv(path: Path, columns: tuple[str, ...], required: tuple[str, ...]):
    """Yield (line number, row dict) after checking the header."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ConstraintTableError(f"{path}: cannot read ({exc.strerror})") from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise _error(path, 1, "empty file; expected a header row") from None
        unknown = [name for name in header if name not in columns]
        if unknown:
            raise _error(
                path, 1, f"unknown column(s) {', '.join(map(repr, unknown))}; allowed: {columns}"
            )
        missing = [name for name in required if name not in header]
        if missing:
            raise _error(path, 1, f"missing required column(s) {', '.join(missing)}")
        duplicated = {name for name in header if header.count(name) > 1}
        if duplicated:
            raise _error(path, 1, f"duplicated column(s) {', '.join(sorted(duplicated))}")
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                raise _error(
                    path,
                    line,
                    f"{len(cells)} cells for {len(header)} columns (check commas/quotes)",
                )
            yield line, {name: cell.strip() for name, cell in zip(header, cells)}


def _number(path: Path, line: int, column: str, text: str, *, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _error(path, line, f"{column} '{text}' is not a number") from None
    if not math.isfinite(value):
        raise _error(path, line, f"{column} must be finite, got '{text}'")
    if positive and value <= 0:
        raise _error(path, line, f"{column} must be > 0, got '{text}'")
    return value


def load_tg263_names(folder: str | Path | None = None) -> tuple[tuple[str, ...], dict[str, str]]:
    """TG-263 primary names and the Reverse Order → primary map from ``tg263_names.csv``.

    The shipped list is the subset of the TG-263 worksheet (2017-08-15) relevant to thoracic,
    abdominal and CNS consolidation RT; a user ``folder`` with its own ``tg263_names.csv``
    extends it.
    """
    paths = [shipped_folder() / "tg263_names.csv"]
    if folder is not None and (Path(folder) / "tg263_names.csv").is_file():
        paths.append(Path(folder) / "tg263_names.csv")
    names: list[str] = []
    reverse: dict[str, str] = {}
    for path in paths:
        for line, row in _read_csv(path, ("tg263", "reverse_order", "description"), ("tg263",)):
            if not row["tg263"]:
                raise _error(path, line, "empty tg263 name")
            if row["tg263"] not in names:
                names.append(row["tg263"])
            if row.get("reverse_order") and row["reverse_order"] != row["tg263"]:
                reverse[row["reverse_order"]] = row["tg263"]
    return tuple(names), reverse


def _parse_yaml(text: str):
    """``(yaml.compose(text), yaml.safe_load(text) or {})``: one parse by libyaml's loader
    when PyYAML has it (20 ms less of every start), the same nodes and data; a text it
    refuses is parsed again by PyYAML's own loader, whose error (message and mark) is the one
    reported."""
    loader_class = getattr(yaml, "CSafeLoader", None)
    if loader_class is not None:
        loader = loader_class(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
            return root, data or {}
        except yaml.YAMLError:
            pass
        finally:
            loader.dispose()
    return yaml.compose(text), yaml.safe_load(text) or {}


def _load_sources(paths: list[Path]) -> dict[str, Source]:
    sources: dict[str, Source] = {}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        try:
            root, data = _parse_yaml(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            raise _error(path, line, f"invalid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise _error(path, 1, "expected a mapping of source_id: {citation, status, ...}")
        lines = {key.value: key.start_mark.line + 1 for key, _ in root.value} if root else {}
        for source_id, entry in data.items():
            line = lines.get(source_id)
            if not isinstance(entry, dict):
                raise _error(path, line, f"source '{source_id}' must be a mapping")
            citation = entry.get("citation")
            if not isinstance(citation, str) or not citation.strip():
                raise _error(path, line, f"source '{source_id}' has no citation")
            status = entry.get("status")
            if status not in SOURCE_STATUSES:
                raise _error(
                    path, line, f"source '{source_id}': status {status!r} not in {SOURCE_STATUSES}"
                )
            details = tuple(
                (str(key), str(value))
                for key, value in entry.items()
                if key not in ("citation", "status")
            )
            sources[str(source_id)] = Source(str(source_id), citation.strip(), status, details)
    return sources


def _load_alpha_beta(path: Path, sources: dict[str, Source]) -> dict[str, AlphaBeta]:
    columns = (
        "organ", "alpha_beta_gy", "source_id", "evidence", "note", "low_gy", "high_gy",
        "range_source",
    )
    table: dict[str, AlphaBeta] = {}
    for line, row in _read_csv(path, columns, columns[:4]):
        value = _number(path, line, "alpha_beta_gy", row["alpha_beta_gy"], positive=True)
        low = (
            _number(path, line, "low_gy", row["low_gy"], positive=True)
            if row.get("low_gy") else None
        )
        high = (
            _number(path, line, "high_gy", row["high_gy"], positive=True)
            if row.get("high_gy") else None
        )
        if (low is not None and low > value) or (high is not None and high < value):
            raise _error(path, line, f"range {low}-{high} does not contain {value:g}")
        if row["source_id"] not in sources:
            raise _error(path, line, f"unknown source_id '{row['source_id']}'")
        if row["evidence"] not in ("P", "S2", "S"):
            raise _error(path, line, f"evidence '{row['evidence']}' not in P, S2, S")
        if row["organ"] in table:
            raise _error(path, line, f"duplicate organ '{row['organ']}'")
        table[row["organ"]] = AlphaBeta(
            row["organ"], value, row["source_id"], row["evidence"], row.get("note", ""),
            low, high, row.get("range_source", ""),
        )
    return table


def _load_aliases(path: Path, sources: dict[str, Source], names: tuple[str, ...]):
    columns = ("alias", "tg263", "match", "source_id", "note")
    aliases: list[Alias] = []
    for line, row in _read_csv(path, columns, columns[:4]):
        if row["match"] not in ("normalised", "exact"):
            raise _error(path, line, f"match '{row['match']}' must be 'normalised' or 'exact'")
        if row["tg263"] not in names:
            raise _error(path, line, f"'{row['tg263']}' is not in tg263_names.csv")
        if row["source_id"] not in sources:
            raise _error(path, line, f"unknown source_id '{row['source_id']}'")
        aliases.append(
            Alias(row["alias"], row["tg263"], row["match"], row["source_id"], row.get("note", ""))
        )
    return tuple(aliases)


def _parse_row(
    path: Path,
    line: int,
    row: dict[str, str],
    sources: dict[str, Source],
    names: tuple[str, ...],
    alias_targets: dict[str, str],
) -> Constraint:
    def get(name: str) -> str:
        return row.get(name, "")

    for name in REQUIRED_COLUMNS:
        if not get(name):
            raise _error(path, line, f"empty required column '{name}'")
    source_id = get("source_id")
    if source_id not in sources:
        raise _error(path, line, f"unknown source_id '{source_id}' (not in sources.yaml)")
    scope = get("scope") or "course"
    if scope not in SCOPES:
        raise _error(path, line, f"scope '{scope}' not in {SCOPES}")
    try:
        fractions_value = float(get("fractions"))
    except ValueError:
        raise _error(path, line, f"fractions '{get('fractions')}' is not an integer") from None
    if scope == "cumulative":
        if fractions_value != 0:
            raise _error(path, line, "a cumulative row has fractions = 0 (it limits a sum)")
        if get("dose_kind") == "physical":
            raise _error(path, line, "a cumulative row must be an EQD2 or BED limit")
    elif not fractions_value.is_integer() or fractions_value < 1:
        raise _error(path, line, f"fractions must be an integer >= 1, got '{get('fractions')}'")
    fractions_range = _fractions_range(path, line, get("fractions_range"), int(fractions_value),
                                       scope)
    organ = get("organ")
    if organ not in names:
        if organ in alias_targets:
            raise _error(
                path,
                line,
                f"organ '{organ}' is an alias; use the TG-263 name '{alias_targets[organ]}'",
            )
        raise _error(path, line, f"organ '{organ}' is not a TG-263 name in tg263_names.csv")
    try:
        metric = parse_metric(get("metric"))
    except MetricSyntaxError as exc:
        raise _error(path, line, str(exc)) from None
    comparator = get("comparator")
    if comparator not in COMPARATORS:
        raise _error(path, line, f"comparator '{comparator}' not in {COMPARATORS}")
    if metric.kind == "CV" and comparator not in (">", ">="):
        raise _error(path, line, f"{metric} is a spared volume: the comparator must be > or >=")
    if metric.kind in ("D", "V", "Mean", "Max") and comparator not in ("<", "<="):
        raise _error(path, line, f"{metric} is an OAR upper limit: the comparator must be < or <=")
    limit = _number(path, line, "limit", get("limit"))
    goal = _number(path, line, "goal", get("goal")) if get("goal") else None
    unit = get("unit")
    if unit != metric.out_unit:
        raise _error(path, line, f"unit '{unit}' does not match the metric's unit ({metric})")
    relative = get("limit_relative_to") or None
    if relative not in (None, "rx"):
        raise _error(path, line, f"limit_relative_to '{relative}' must be empty or 'rx'")
    if metric.returns_dose and metric.out_unit == "%" and relative != "rx":
        raise _error(path, line, f"{metric} gives a dose in %: set limit_relative_to = rx")
    if relative == "rx" and not metric.needs_prescription:
        raise _error(path, line, f"limit_relative_to = rx but {metric} has no % dose")
    dose_kind = get("dose_kind")
    if dose_kind not in DOSE_KINDS:
        raise _error(path, line, f"dose_kind '{dose_kind}' not in {DOSE_KINDS}")
    alpha_beta = (
        _number(path, line, "alpha_beta", get("alpha_beta"), positive=True)
        if get("alpha_beta")
        else None
    )
    if dose_kind != "physical" and alpha_beta is None:
        raise _error(path, line, f"a {dose_kind} limit needs its alpha_beta")
    priority = get("priority")
    if priority not in PRIORITIES:
        raise _error(path, line, f"priority '{priority}' not in {PRIORITIES}")
    evidence = get("evidence")
    if evidence in ("U", "S"):
        kind = "unverified" if evidence == "U" else "single-secondary"
        raise _error(
            path,
            line,
            f"evidence '{evidence}' ({kind}) rows are not loaded: read the value in the "
            "primary source (P) or have a second transcription agree (S2)",
        )
    if evidence not in ACCEPTED_EVIDENCE:
        raise _error(path, line, f"evidence '{evidence}' not in {ACCEPTED_EVIDENCE}")
    return Constraint(
        source_id=source_id,
        table_ref=get("table_ref"),
        fractions=int(fractions_value),
        organ=organ,
        organ_source=get("organ_source"),
        metric=str(metric),
        parsed_metric=metric,
        comparator=comparator,
        limit=limit,
        goal=goal,
        unit=unit,
        limit_relative_to=relative,
        dose_kind=dose_kind,
        alpha_beta=alpha_beta,
        priority=priority,
        endpoint=get("endpoint"),
        risk=get("risk"),
        evidence=evidence,
        verified_against=get("verified_against"),
        notes=get("notes"),
        file=path.name,
        line=line,
        fractions_range=fractions_range,
        scope=scope,
        source_priority=priority,
    )


def _fractions_range(path: Path, line: int, text: str, fractions: int, scope: str):
    if scope == "cumulative":
        return (0, 0)
    if not text:
        regime = regime_of(fractions)
        if regime is None:
            raise _error(path, line, f"{fractions} fx is in no regime {REGIMES}: give fractions_range")
        return regime[1], regime[2]
    try:
        low, high = (int(x) for x in text.split("-"))
    except ValueError:
        raise _error(path, line, f"fractions_range '{text}' is not 'low-high'") from None
    if not 1 <= low <= fractions <= high:
        raise _error(path, line, f"fractions_range '{text}' must contain fractions = {fractions}")
    return low, high


def load_tables(
    names: list[str] | tuple[str, ...] | None = None, folder: str | Path | None = None
) -> ConstraintSet:
    """Load and validate constraint tables.

    Parameters
    ----------
    names : sequence of str, optional
        Table names (file stems such as ``"tg101_2010_3fx"``); default: every table in the
        folder.
    folder : str or Path, optional
        A folder of user tables in the same format. Its ``sources.yaml`` adds to (and may
        override) the shipped one; its ``alpha_beta.csv``/``aliases.csv`` replace the shipped
        ones when present; its ``tg263_names.csv`` extends the shipped list. Default: the
        shipped tables.

    Returns
    -------
    ConstraintSet

    Raises
    ------
    ConstraintTableError
        ``file:line: message`` for an unknown or missing column, an empty required cell, a
        metric outside the TG-263 grammar, a non-numeric limit, an unknown comparator, a
        fraction number < 1, an unknown source id, a source without citation, an organ that is
        not a TG-263 name, evidence U or S, or a duplicate (source, fractions, organ, metric).

    Notes
    -----
    Sources with status ``untranscribed`` (UK SABR) or ``single-secondary`` (NCCN, COSINR) are
    not errors: they are listed in ``ConstraintSet.notes`` as skipped, and any table rows citing
    them are skipped too.
    """
    shipped = shipped_folder()
    base = Path(folder) if folder is not None else shipped
    if not base.is_dir():
        raise ConstraintTableError(f"{base}: constraint folder not found")
    source_files = [shipped / "sources.yaml"]
    if base != shipped and (base / "sources.yaml").is_file():
        source_files.append(base / "sources.yaml")
    sources = _load_sources(source_files)
    tg263, reverse = load_tg263_names(base if base != shipped else None)

    def data_file(name: str) -> Path:
        return base / name if (base / name).is_file() else shipped / name

    alpha_beta = _load_alpha_beta(data_file("alpha_beta.csv"), sources)
    aliases = _load_aliases(data_file("aliases.csv"), sources, tg263)
    alias_targets = {a.alias: a.tg263 for a in aliases}
    for organ in alpha_beta:
        if organ not in tg263:
            raise _error(data_file("alpha_beta.csv"), None, f"'{organ}' is not a TG-263 name")

    available = {p.stem: p for p in sorted(base.glob("*.csv")) if p.name not in DATA_FILES}
    if names is None:
        selected = list(available.values())
    else:
        unknown = [name for name in names if name not in available]
        if unknown:
            raise ConstraintTableError(
                f"{base}: unknown table(s) {', '.join(unknown)}; available: {', '.join(available)}"
            )
        selected = [available[name] for name in names]

    notes = [
        f"{s.source_id}: skipped (status {s.status}): {s.citation}"
        for s in sources.values()
        if s.status in SKIPPED_STATUSES
    ]
    rows: list[Constraint] = []
    seen: dict[tuple, Constraint] = {}
    for path in selected:
        skipped_here = 0
        for line, row in _read_csv(path, TABLE_COLUMNS, REQUIRED_COLUMNS):
            source = sources.get(row.get("source_id", ""))
            if source is not None and source.status in SKIPPED_STATUSES:
                skipped_here += 1
                continue
            if source is not None and source.status not in TABLE_STATUSES:
                raise _error(
                    path,
                    line,
                    f"source '{source.source_id}' has status {source.status!r}: "
                    "it is not a constraint source",
                )
            constraint = _parse_row(path, line, row, sources, tg263, alias_targets)
            key = (constraint.source_id, constraint.fractions, constraint.organ, constraint.metric)
            if key in seen:
                raise _error(
                    path,
                    line,
                    f"duplicate of {seen[key].where} (same source, fractions, organ and metric)",
                )
            seen[key] = constraint
            rows.append(constraint)
        if skipped_here:
            notes.append(f"{path.name}: {skipped_here} row(s) skipped (source not verified)")
    return ConstraintSet(
        constraints=tuple(c for c in rows if c.scope == "course"),
        cumulative=tuple(c for c in rows if c.scope == "cumulative"),
        sources=sources,
        alpha_beta=alpha_beta,
        aliases=aliases,
        tg263_names=tg263,
        tg263_reverse=reverse,
        notes=tuple(notes),
        files=tuple(p.name for p in selected),
    )


# --------------------------------------------------------------------------- lookup / convert


def _nearest_fraction(target: int, tabulated: tuple[int, ...]) -> int:
    # distance in log(n): for a fixed total dose the dose per fraction scales as 1/n, so 15 fx
    # is nearer 30 fx (ratio 2) than 5 fx (ratio 3); ties go to the smaller n
    return min(tabulated, key=lambda n: (abs(math.log(n / target)), n))


def regime_of(fractions: int) -> tuple[str, int, int] | None:
    """The regime (name, first n, last n) of :data:`REGIMES` that contains ``fractions``."""
    for regime in REGIMES:
        if regime[1] <= fractions <= regime[2]:
            return regime
    return None


def _regime_index(fractions: int) -> int | None:
    for i, (_, low, high) in enumerate(REGIMES):
        if low <= fractions <= high:
            return i
    return None


def adjacent_regime(row: Constraint, fractions: int) -> bool:
    """True when the table of ``row`` was written for the regime of ``fractions`` or a
    neighbouring one (SBRT and moderately hypofractionated, or moderately hypofractionated and
    conventional), not SBRT against conventional."""
    here = _regime_index(fractions)
    there = _regime_index(row.fractions_range[0])
    return here is not None and there is not None and abs(here - there) <= 1


def regime_name(fractions_range: tuple[int, int]) -> str:
    """``"SBRT (1-5 fx)"`` for a range equal to a regime, else ``"1-8 fx"``."""
    for name, low, high in REGIMES:
        if (low, high) == tuple(fractions_range):
            return f"{name} ({low}-{high} fx)"
    return f"{fractions_range[0]}-{fractions_range[1]} fx"


@dataclass(frozen=True)
class LimitsAt:
    """The limits of one organ at one fraction number (:func:`constraints_at`).

    Attributes
    ----------
    organ : str
    fractions : int
    rows : tuple of Constraint
        Every applicable row: tabulated at ``fractions``, converted within the regime (marked
        ``converted within regime``), or, when no source of the organ covers ``fractions``,
        extrapolated from other regimes (``report`` only, ``extrapolated``). Each carries
        ``reason``; ``decides`` marks the most conservative row of each metric.
    no_cited_limit : bool
        True when no table of the organ was written for ``fractions`` (only advisory rows, or
        none, remain).
    note : str
        ``"no cited limit at 15 fx for Heart"`` and what was left out (rows that cannot be
        converted, e.g. relative to the prescription).
    """

    organ: str
    fractions: int
    rows: tuple[Constraint, ...]
    no_cited_limit: bool
    note: str = ""

    @property
    def cited(self) -> tuple[Constraint, ...]:
        """Rows from a table written for this fraction number (tabulated or converted within
        the regime)."""
        return tuple(c for c in self.rows if not c.extrapolated)

    @property
    def mandatory(self) -> tuple[Constraint, ...]:
        return tuple(c for c in self.rows if c.priority == "mandatory")


def _nearest_in(target: int, tabulated) -> list[int]:
    """The tabulated n nearest ``target`` in log(n); both on an exact tie."""
    tabulated = sorted(set(tabulated))
    best = min(abs(math.log(n / target)) for n in tabulated)
    return [n for n in tabulated if abs(abs(math.log(n / target)) - best) < 1e-12]


def constraints_at(
    organ: str,
    fractions: int,
    constraint_set: ConstraintSet,
    alpha_beta: float | None = None,
) -> LimitsAt:
    """Every applicable limit of ``organ`` at ``fractions``, with its status and reason.

    Rules (issue 12):

    * A table applies when its ``fractions_range`` (its regime: SBRT 1-5, moderately
      hypofractionated 6-15, conventional 16-35 fx) contains ``fractions``. **Every** source
      with such a table is used, not only the nearest n: per source, the rows tabulated at
      ``fractions`` as they are, else those of the source's nearest tabulated n inside the
      regime (both on a tie) converted at equal EQD2 (LQ, the row's or organ's α/β) and marked
      ``converted within regime``. Priorities are kept.
    * Sources without a table for ``fractions`` add, for the metrics no covering table has
      (every metric when nothing covers ``fractions``), the rows of their nearest tabulated n
      converted across regimes, as advisory only: ``priority``
      ``report``, ``applicability`` ``extrapolated``, reason "extrapolated outside the
      source's fractionation range". Never mandatory. When nothing covers ``fractions``,
      ``no_cited_limit`` is True and ``note`` says "no cited limit at n fx".
    * Within each metric the most conservative row of the highest priority present is marked
      ``decides`` and named in its reason; all rows are returned.

    Cumulative rows (``scope`` cumulative) are not per-course limits and are left out
    (:func:`composite_limits` uses them).
    """
    if int(fractions) != fractions or fractions < 1:
        raise ConstraintTableError(f"fractions must be an integer >= 1, got {fractions}")
    fractions = int(fractions)
    rows = constraint_set.course_rows(organ)
    regime = regime_of(fractions)
    where = regime_name((regime[1], regime[2])) if regime else f"{fractions} fx (no regime)"
    if not rows:
        return LimitsAt(organ, fractions, (), True, f"no cited limit at {fractions} fx for {organ}: "
                        "no table constrains this organ")
    default_ab = constraint_set.alpha_beta_for(organ)
    by_source: dict[str, list[Constraint]] = {}
    for c in rows:
        by_source.setdefault(c.source_id, []).append(c)
    in_regime = {
        sid: [c for c in group if c.fractions_range[0] <= fractions <= c.fractions_range[1]]
        for sid, group in by_source.items()
    }
    in_regime = {sid: group for sid, group in in_regime.items() if group}
    cited = bool(in_regime)
    covered = {c.metric for group in in_regime.values() for c in group}
    pools = dict(in_regime)
    for sid, group in by_source.items():
        if sid in in_regime:
            continue
        # a source without a table in this regime: advisory rows for the metrics no cited
        # table covers (all of them when nothing is cited)
        rest = [c for c in group if c.metric not in covered]
        if rest:
            pools[sid] = rest
    out: list[Constraint] = []
    left_out: list[str] = []
    for sid, group in sorted(pools.items()):
        in_this_regime = sid in in_regime
        at_n = [c for c in group if c.fractions == fractions]
        if at_n and in_this_regime:
            out += [
                _replace(c, applicability="tabulated",
                        reason=f"tabulated at {fractions} fx ({c.source_id}, {c.regime})")
                for c in at_n
            ]
            continue
        for n_src in _nearest_in(fractions, [c.fractions for c in group]):
            for c in group:
                if c.fractions != n_src:
                    continue
                ab = alpha_beta if alpha_beta is not None else (c.alpha_beta or default_ab)
                try:
                    converted = convert_constraint(c, fractions, ab)
                except ConstraintTableError as exc:
                    left_out.append(str(exc))
                    continue
                if in_this_regime:
                    out.append(_replace(
                        converted, applicability="converted within regime",
                        reason=(f"converted from {n_src} fx within the source's regime "
                                f"{c.regime} (LQ, equal EQD2)"),
                    ))
                else:
                    out.append(_replace(
                        converted, applicability="extrapolated", priority="report",
                        reason=(f"{EXTRAPOLATED} ({c.source_id}: {c.regime}; converted from "
                                f"{n_src} fx to {fractions} fx, LQ): advisory only, "
                                f"source priority {c.priority}"),
                    ))
    out = _mark_decisive(out)
    note = ""
    if not cited:
        note = (f"no cited limit at {fractions} fx for {organ}: no table of its sources "
                f"covers {where}")
        if out:
            note += "; advisory extrapolations shown"
    if left_out:
        note = "; ".join(x for x in [note, "left out: " + "; ".join(left_out)] if x)
    return LimitsAt(organ, fractions, tuple(out), not cited, note)


def _stricter(a: Constraint, b: Constraint) -> bool:
    """True when ``a`` is a stricter limit than ``b`` (same metric)."""
    if a.comparator.startswith(">"):
        return a.limit > b.limit
    return a.limit < b.limit


_PRIORITY_ORDER = {"mandatory": 0, "optimal": 1, "report": 2}


def _mark_decisive(rows: list[Constraint]) -> list[Constraint]:
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(rows):
        if c.limit_relative_to == "rx":
            continue
        groups.setdefault(c.metric, []).append(i)
    out = list(rows)
    for metric, idx in groups.items():
        top = min(_PRIORITY_ORDER.get(rows[i].priority, 3) for i in idx)
        best = None
        for i in idx:
            if _PRIORITY_ORDER.get(rows[i].priority, 3) != top:
                continue
            if best is None or _stricter(rows[i], rows[best]):
                best = i
        c = rows[best]
        text = c.reason
        if len(idx) > 1:
            text += (f"; the most conservative of {len(idx)} applicable {metric} rows "
                     f"({c.source_id} {c.limit:g} {c.unit}) decides")
        out[best] = _replace(c, decides=True, reason=text)
    return out


def constraints_for(
    organ: str,
    fractions: int,
    constraint_set: ConstraintSet,
    alpha_beta: float | None = None,
) -> list[Constraint]:
    """The rows of :func:`constraints_at` as a list (kept for callers that need only rows)."""
    return list(constraints_at(organ, fractions, constraint_set, alpha_beta).rows)


#: Organs at risk of a lesion site that has no table of its own in the thoracic/abdominal
#: scope (issue 12: "a site with no constraint table (e.g. brain) says so").
SITE_ORGANS = {
    "brain": ("Brain", "Brainstem", "OpticChiasm", "OpticNrv_L", "OpticNrv_R", "Cochlea_L",
              "Cochlea_R"),
}


def site_coverage(site: str, constraint_set: ConstraintSet) -> str:
    """A sentence when no loaded table constrains the organs of ``site`` (e.g. brain), else
    ``""``."""
    organs = SITE_ORGANS.get(site)
    if organs is None:
        return ""
    covered = {c.organ for c in constraint_set.constraints}
    if covered & set(organs):
        return ""
    return (
        f"{site} lesion: no constraint table covers the {site} or its organs at risk "
        f"({', '.join(organs)}); none was transcribed (constraints/README.md), so its OAR "
        "limits cannot be evaluated"
    )


# --------------------------------------------------------------------------- composite

#: Lung low-dose-bath metrics: a volume queried at or below this physical dose (Gy) is judged
#: on the physical plan sum, never converted through LQ (issue 12).
LOW_DOSE_BATH_GY = 5.0
LUNG_ORGANS = ("Lungs", "Lungs-GTV", "Lungs-ITV", "Lung_L", "Lung_R")
#: The regime of an EQD2 sum (2 Gy fractions): conventional.
COMPOSITE_REGIME = (16, 35)


@dataclass(frozen=True)
class CompositeLimit:
    """A limit on the sum of courses, the same whatever regimens are chosen.

    Attributes
    ----------
    row : Constraint
        The decisive row as applied: an EQD2 limit (``dose_kind`` EQD2, metric and limit in
        EQD2 at ``alpha_beta``) or, for a low-dose-bath metric, the physical row unchanged.
    kind : {"EQD2", "physical"}
        Which dose sum it is judged on.
    alpha_beta : float or None
        α/β of the EQD2 sum (``None`` for a physical sum).
    priority : str
    reason : str
        Which source decides, how it was expressed in EQD2, and how many rows were compared.
    candidates : int
        Rows of the organ compared for this metric.
    """

    row: Constraint
    kind: str
    alpha_beta: float | None
    priority: str
    reason: str
    candidates: int = 1


def _metric_family(c: Constraint) -> str:
    """Rows compared with each other in the composite: the same source metric (``V20Gy[%]``,
    ``D0.035cc[Gy]``, ``Mean``, ``Max``); spared-volume rows by their volume (``CV >= 1000
    cc``), since their dose thresholds differ by source and fraction number."""
    m = c.parsed_metric
    if m.kind == "CV":
        return f"CV[{m.out_unit}] {c.comparator} {c.limit:g}"
    if m.kind in ("Mean", "Max", "Min"):
        return m.kind
    return str(m)


def composite_limits(organ: str, constraint_set: ConstraintSet) -> list[CompositeLimit]:
    """Fixed cumulative limits of ``organ`` for the composite (independent of the choice).

    * Where a source gives cumulative EQD2/BED limits for the organ (``scope`` cumulative,
      e.g. HyTEC's thecal-sac Dmax EQD2 <= 70 Gy at α/β 2), they are the organ's composite
      limits.
    * Every other per-course row of the organ is expressed in EQD2 at its own fraction number
      and its α/β (LQ, :func:`convert_constraint` semantics; a single-course tolerance
      re-expressed in EQD2, not a validated cumulative limit). An EQD2 sum is expressed in
      2 Gy fractions, the conventional regime: rows of tables written for another regime
      (SBRT point limits) are extrapolated outside their fractionation range and only
      advisory (``report``), as in :func:`constraints_at`. Rows are grouped by metric (the
      source metric; spared volumes by volume); within a group the highest priority present
      wins and, among those, the most conservative EQD2 limit decides, naming its source.
    * Lung low-dose-bath rows (V at <= 5 Gy) stay physical: judged on the physical dose sum,
      never LQ-converted; priority ``optimal`` (single-course bath limits, not validated for a
      multi-course sum). Lung Mean and V20 are mandatory when any source makes them so.
    """
    rows = [c for c in constraint_set.constraints + constraint_set.cumulative if c.organ == organ]
    default_ab = constraint_set.alpha_beta_for(organ)
    groups: dict[str, list[tuple[Constraint, Constraint, str]]] = {}
    for c in rows:
        if c.limit_relative_to == "rx":
            continue
        m = c.parsed_metric
        if c.scope == "cumulative":
            groups.setdefault("cumulative " + str(m), []).append((c, c, "cumulative"))
            continue
        if organ in LUNG_ORGANS and m.kind in ("V", "CV") and m.query_unit == "Gy" and (
            m.value <= LOW_DOSE_BATH_GY
        ) and c.dose_kind == "physical":
            key = f"bath {m}"
            groups.setdefault(key, []).append((c, c, "physical"))
            continue
        ab = c.alpha_beta or default_ab
        if ab is None:
            continue
        if c.dose_kind == "physical":
            applied = _to_eqd2(c, ab)
        else:
            applied = c
        # an EQD2 sum is expressed in 2 Gy fractions: the conventional regime. Limits of
        # tables written for another regime (SBRT point limits) re-expressed in EQD2 are
        # extrapolated outside their fractionation range: advisory only
        inside = c.fractions_range[0] <= COMPOSITE_REGIME[1] and c.fractions_range[1] >= COMPOSITE_REGIME[0]
        if not inside:
            c = _replace(c, priority="report", applicability="extrapolated")
        groups.setdefault(_metric_family(c), []).append((c, applied, "EQD2"))
    out: list[CompositeLimit] = []
    if any(k.startswith("cumulative ") for k in groups):
        # a source gives cumulative limits for this organ: they are its composite limits (the
        # single-course rows are not re-expressed); low-dose-bath rows stay as they are
        groups = {k: v for k, v in groups.items() if k.startswith(("cumulative ", "bath "))}
    for key, items in sorted(groups.items()):
        top = min(_PRIORITY_ORDER.get(src.priority, 3) for src, _, _ in items)
        best = None
        for it in items:
            if _PRIORITY_ORDER.get(it[0].priority, 3) != top:
                continue
            if best is None or _stricter_applied(it[1], best[1]):
                best = it
        src, applied, kind = best
        priority = src.priority
        if kind == "physical":
            priority = "optimal" if priority == "mandatory" else priority
            reason = (f"{src.source_id} {src.metric} {src.comparator} {src.limit:g} {src.unit} "
                      f"({src.fractions} fx) judged on the PHYSICAL dose sum (low-dose bath, "
                      "never LQ-converted); a single-course limit applied to the plan sum: "
                      "optimal, not mandatory")
        elif kind == "cumulative":
            reason = (f"{src.source_id}: cumulative limit {src.metric} {src.comparator} "
                      f"{src.limit:g} Gy {src.dose_kind} at α/β {src.alpha_beta:g} Gy")
        else:
            reason = (f"{src.source_id} {src.metric} {src.comparator} {src.limit:g} {src.unit} in "
                      f"{src.fractions} fx, re-expressed in EQD2 at α/β {applied.alpha_beta:g} Gy: "
                      f"a single-course tolerance, not a validated cumulative limit")
            if getattr(applied.parsed_metric, "kind", "") == "Mean":
                reason += ("; a mean-dose limit re-expressed as if the organ received it "
                           "uniformly (APPROXIMATE, conservative: EQD2 of a mean is not the "
                           "mean of the voxel EQD2, which the composite computes)")
            if src.extrapolated:
                reason += (f"; {EXTRAPOLATED} ({src.regime}; the EQD2 sum is in the "
                           "conventional regime): advisory only, no cited cumulative limit "
                           f"for this metric (source priority {src.source_priority})")
        if len(items) > 1:
            reason += (f"; the most conservative {priority} row of the {len(items)} rows of this metric "
                       f"({', '.join(sorted({it[0].source_id + ' ' + str(it[0].fractions) + ' fx' for it in items}))})")
        out.append(CompositeLimit(
            row=applied,
            kind="physical" if kind == "physical" else "EQD2",
            alpha_beta=None if kind == "physical" else (applied.alpha_beta or default_ab),
            priority=priority,
            reason=reason,
            candidates=len(items),
        ))
    return out


def _stricter_applied(a: Constraint, b: Constraint) -> bool:
    ma, mb = a.parsed_metric, b.parsed_metric
    if ma.kind in ("V", "CV") and mb.kind == ma.kind and ma.value != mb.value:
        # V_t <= x is stricter at a lower threshold t with the same or lower x; compare the
        # thresholds first (lower dose threshold = stricter for V, higher for CV)
        if ma.kind == "V":
            return (ma.value, a.limit) < (mb.value, b.limit)
        return (-ma.value, -a.limit) < (-mb.value, -b.limit)
    return _stricter(a, b)


def _to_eqd2(c: Constraint, alpha_beta: float) -> Constraint:
    """A physical row at its own n expressed as an EQD2 limit (LQ, α/β of the organ)."""
    model = Model("LQ", float(alpha_beta))
    m = c.parsed_metric
    n = c.fractions
    if m.returns_dose:
        scale = 0.01 if m.out_unit == "cGy" else 1.0
        limit = eqd2(c.limit * scale, n, model) / scale
        goal = eqd2(c.goal * scale, n, model) / scale if c.goal is not None else None
        return _replace(c, limit=limit, goal=goal, dose_kind="EQD2", alpha_beta=float(alpha_beta),
                       converted_from_fractions=n,
                       conversion_note=(f"EQD2 of {c.limit:g} {c.unit} in {n} fx at α/β "
                                        f"{alpha_beta:g} Gy (LQ)"))
    scale = 0.01 if m.query_unit == "cGy" else 1.0
    exact = eqd2(m.value * scale, n, model) / scale
    threshold = conservative_threshold(exact, m.kind, c.comparator, m.query_unit)
    metric = Metric(m.kind, threshold, m.query_unit, m.out_unit)
    return _replace(c, metric=str(metric), parsed_metric=metric, dose_kind="EQD2",
                   alpha_beta=float(alpha_beta), converted_from_fractions=n,
                   conversion_note=(f"dose threshold {m.value:g} {m.query_unit} in {n} fx = EQD2 "
                                    f"{exact:.4f}, rounded to {threshold:g} (stricter side)"))


def conservative_threshold(value: float, kind: str, comparator: str, unit: str = "Gy") -> float:
    """Round a converted dose threshold of a volume metric to 0.01 Gy (1 cGy) on the
    stricter side, so that metric names stay readable (``V17.57Gy[%]``, not
    ``V17.578123Gy[%]``) and the limit never loosens.

    ``V_t`` (volume at or above ``t``) falls as ``t`` rises: an upper limit (``<``, ``<=``)
    is stricter at a lower ``t`` (round down), a lower limit at a higher ``t`` (round up).
    ``CV_t`` (volume below ``t``) rises with ``t``: the other way round.
    """
    step = 1.0 if unit == "cGy" else 0.01
    upper = comparator.startswith("<")
    down = upper if kind == "V" else not upper
    # a hair of tolerance: 17.5700000001 is 17.57, not 17.58
    q = value / step
    rounded = math.floor(q + 1e-9) if down else math.ceil(q - 1e-9)
    return round(rounded * step, 6)


def convert_constraint(
    row: Constraint, to_fractions: int, alpha_beta: float | None = None
) -> Constraint:
    """Convert a physical-dose limit to another fraction number at equal EQD2 (LQ).

    Parameters
    ----------
    row : Constraint
        A tabulated row (``row.fractions`` = n_from).
    to_fractions : int
        Target fraction number n_to.
    alpha_beta : float, optional
        α/β (Gy); default ``row.alpha_beta``. Required one way or the other.

    Returns
    -------
    Constraint
        A copy with ``fractions = to_fractions``, ``converted_from_fractions = n_from``, a
        ``conversion_note`` naming model, α/β and EQD2, and

        * dose-returning metrics (``D…[Gy]``, ``Max``, ``Min``, ``Mean``, ``DC…``): ``limit``
          and ``goal`` converted;
        * volume metrics queried at a dose (``V20Gy[%]``, ``CV12.4Gy[cc]``): the dose threshold
          in the metric converted, the volume limit unchanged;
        * EQD2/BED rows: values unchanged (they do not depend on n).

    Raises
    ------
    ConstraintTableError
        No α/β, or a limit relative to the prescription (``105 % of Rx``, ``V95%``): it cannot
        be converted without the new prescription.

    Notes
    -----
    Assumption: the voxel at the limit received it in n_from equal fractions of
    ``limit / n_from`` Gy (``threshold / n_from`` for volume metrics), i.e. the dose per
    fraction of that voxel, not of the prescription. This is exact for point/max-type and D/V
    metrics of a single plan (EQD2 is monotone in voxel dose, reference §6.5) and an
    approximation for mean doses, which the note says. LQ is used for every conversion
    (reference §6.4: OAR tables are physical per scheme; conversions between schemes use LQ).
    """
    n_from = row.fractions
    if int(to_fractions) != to_fractions or to_fractions < 1:
        raise ConstraintTableError(f"{row.where}: to_fractions must be an integer >= 1")
    n_to = int(to_fractions)
    if n_to == n_from:
        return row
    ab = alpha_beta if alpha_beta is not None else row.alpha_beta
    if ab is None:
        raise ConstraintTableError(
            f"{row.where}: no α/β to convert {row.organ} {row.metric} from {n_from} to {n_to} "
            "fractions; give alpha_beta or add the organ to alpha_beta.csv"
        )
    if row.dose_kind != "physical":
        return _replace(
            row,
            fractions=n_to,
            converted_from_fractions=n_from,
            conversion_note=f"{row.dose_kind} limit: independent of the fraction number",
        )
    metric = row.parsed_metric
    if row.limit_relative_to == "rx" or metric.needs_prescription:
        raise ConstraintTableError(
            f"{row.where}: {row.metric} is relative to the prescription and cannot be converted "
            f"from {n_from} to {n_to} fractions; use a table at {n_to} fractions"
        )
    model = Model("LQ", float(ab))

    def convert_dose(value: float, unit: str) -> tuple[float, float]:
        scale = 0.01 if unit == "cGy" else 1.0
        equivalent = eqd2(value * scale, n_from, model)
        return dose_for_eqd2(equivalent, n_to, model) / scale, equivalent

    if metric.returns_dose:
        limit, equivalent = convert_dose(row.limit, metric.out_unit)
        goal = convert_dose(row.goal, metric.out_unit)[0] if row.goal is not None else None
        new_metric = metric
        what = f"limit {row.limit:g} {row.unit} in {n_from} fx = EQD2 {equivalent:.2f} Gy"
    else:
        exact, equivalent = convert_dose(metric.value, metric.query_unit)
        threshold = conservative_threshold(exact, metric.kind, row.comparator,
                                           metric.query_unit)
        new_metric = Metric(metric.kind, threshold, metric.query_unit, metric.out_unit)
        limit, goal = row.limit, row.goal
        what = (
            f"dose threshold {metric.value:g} {metric.query_unit} in {n_from} fx = "
            f"EQD2 {equivalent:.2f} Gy = {exact:.4f} {metric.query_unit} in {n_to} fx, "
            f"rounded to {threshold:g} (the stricter side)"
        )
    note = (
        f"LQ, α/β = {ab:g} Gy, converted from n={n_from} to n={n_to} at equal EQD2: {what}; "
        f"assumes the voxel at the limit received it in {n_from} equal fractions"
    )
    if metric.kind == "Mean":
        note += "; APPROXIMATE for a mean dose (EQD2 of a mean is not the mean EQD2)"
    return _replace(
        row,
        fractions=n_to,
        metric=str(new_metric),
        parsed_metric=new_metric,
        limit=limit,
        goal=goal,
        alpha_beta=float(ab),
        converted_from_fractions=n_from,
        conversion_note=note,
    )
