"""Fractionation options ("regimens") per lesion: a number of fractions and a total dose.

A lesion's plan (its RTDOSE at the planned ``n0`` fractions and prescription ``D0``) is scaled
to a regimen ``(n, D)`` by the factor ``D / D0``; every voxel then receives ``D_i · D / D0`` Gy in
``n`` fractions of ``D_i · D / (D0 · n)`` Gy. Scaling keeps the shape of the dose distribution,
which is what a replanned SBRT dose at a new prescription looks like to first order; it does
not model a changed margin or beam arrangement.

The catalogue (:data:`CATALOGUE`) is the list of GitHub issue 3 (reference
``shared/reference/constraints-radiobiology.md`` §6.1 lists its BED10/EQD2 values) and the
regimens issue 13 added (60 Gy/12, 35 Gy/5, 30 Gy/3, 24 Gy/2, 16-20 Gy/1, 45 Gy/3, 30 Gy/5,
55 Gy/20, 30 Gy/10), each with the sites where it is standard and where that is cited. A lesion
is offered the issue-3 list plus its site's standard regimens (:func:`site_regimens`). A
regimen file overrides it per lesion::

    lesion,total_dose_gy,fractions
    *,50,5          # every lesion
    L2,60,15        # one lesion (ids L1, L2, ... in plan order)

Rows for a lesion replace the ``*`` rows for that lesion.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConstraintTableError, EvaluationError
from .radiobiology import Model, bed, eqd2

__all__ = [
    "ABLATIVE_BED10_GY",
    "CATALOGUE",
    "CONTROL_TARGETS",
    "DEFAULT_CATALOGUE",
    "TUMOUR_MODEL",
    "ControlTarget",
    "Regimen",
    "citations",
    "control_target",
    "is_standard",
    "load_regimen_file",
    "parse_regimen",
    "site_regimens",
]

#: BED10 (Gy, LQ) that SBRT literature calls ablative: "BED > 100 Gy is required in order to
#: achieve a > 85 % local control rate regardless of tumor size" (Radiat Oncol J, PMC4206062;
#: reference §6.1).
ABLATIVE_BED10_GY = 100.0

#: Tumour model of the target BED10/EQD2 rows: LQ with α/β = 10 Gy (NSCLC SBRT convention,
#: reference §6.2).
TUMOUR_MODEL = Model("LQ", 10.0)


@dataclass(frozen=True, order=True)
class Regimen:
    """A fractionation option: ``fractions`` equal fractions to a total of ``total_dose_gy``.

    Attributes
    ----------
    fractions : int
        Number of fractions, >= 1.
    total_dose_gy : float
        Total prescription dose (Gy), > 0.

    Examples
    --------
    >>> Regimen(5, 50.0).label
    '50 Gy/5'
    >>> Regimen(5, 50.0).dose_per_fraction_gy
    10.0
    """

    fractions: int
    total_dose_gy: float

    def __post_init__(self) -> None:
        n = self.fractions
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise EvaluationError(f"a regimen needs an integer number of fractions >= 1, got {n}")
        object.__setattr__(self, "fractions", int(n))
        dose = float(self.total_dose_gy)
        if not (math.isfinite(dose) and dose > 0):
            raise EvaluationError(f"a regimen needs a total dose > 0 Gy, got {self.total_dose_gy}")
        object.__setattr__(self, "total_dose_gy", dose)

    @property
    def dose_per_fraction_gy(self) -> float:
        """Prescription dose per fraction (Gy)."""
        return self.total_dose_gy / self.fractions

    @property
    def label(self) -> str:
        """``"50 Gy/5"``; non-integer doses keep up to 2 decimals (``"27.5 Gy/5"``)."""
        key = ("label", self.fractions, self.total_dose_gy)
        text = _DERIVED.get(key)
        if text is None:
            text = _derived(key, f"{_number(self.total_dose_gy)} Gy/{self.fractions}")
        return text

    def bed10_gy(self) -> float:
        """Prescription BED (Gy) at α/β = 10 Gy, LQ (:data:`TUMOUR_MODEL`)."""
        key = ("bed10", self.fractions, self.total_dose_gy)
        value = _DERIVED.get(key)
        if value is None:
            value = _derived(key, float(bed(self.total_dose_gy, self.fractions, TUMOUR_MODEL)))
        return value

    def eqd2_10_gy(self) -> float:
        """Prescription EQD2 (Gy) at α/β = 10 Gy, LQ."""
        key = ("eqd2_10", self.fractions, self.total_dose_gy)
        value = _DERIVED.get(key)
        if value is None:
            value = _derived(key, float(eqd2(self.total_dose_gy, self.fractions, TUMOUR_MODEL)))
        return value

    def scale_from(self, planned: Regimen) -> float:
        """Dose scale factor ``D / D0`` from the ``planned`` regimen to this one."""
        return self.total_dose_gy / planned.total_dose_gy

    def __str__(self) -> str:
        return self.label


#: Label, BED10 and EQD2 of the regimens met so far, by (what, fractions, total dose): pure
#: functions of the two numbers, asked tens of thousands of times an evaluation.
_DERIVED: dict[tuple, object] = {}


def _derived(key: tuple, value):
    if len(_DERIVED) > 30_000:
        _DERIVED.clear()
    _DERIVED[key] = value
    return value


def _number(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"


#: Where each regimen of the catalogue is used, per site. Only citations read in the project's
#: reference documents (``shared/reference/constraints-radiobiology.md`` §4, §5.2; clinical
#: audit (e)) or found with the search tool are given; "no citation found" says so.
#: Evidence tags as in the reference: [P] primary or near-primary, [S] secondary.
COMET = "SABR-COMET phase II protocol, Palma et al., BMC Cancer 2012;12:305, Table 1 [P]"
COMET10 = "SABR-COMET-10, Palma et al., BMC Cancer 2019 (abstract) [P]"
NCCN = "NCCN NSCLC, Principles of Radiation Therapy, SABR dose table [S]"
LUSTRE = "LUSTRE trial design (48 Gy/4 peripheral, 60 Gy/8 central vs 60 Gy/15) [S]"
SC24 = (
    "SC.24, Sahgal et al., Lancet Oncol 2021, PMID 34126044 (abstract): spine SBRT 24 Gy in 2 "
    "daily fractions"
)
CONVENTIONAL = "RTOG 0617 / PACIFIC-era conventional 60 Gy/30 (reference §5.2) [S]"
ISSUE3 = "issue-3 catalogue (no trial citation found here)"
NO_CITATION = "no trial citation found here (listed by the clinical audit (e) as a gap)"

SITE_NAMES = ("lung", "central lung", "node", "liver", "bone", "vertebra", "adrenal", "unknown")


@dataclass(frozen=True)
class CatalogueEntry:
    """A regimen of the catalogue, the sites where it is a standard choice, and citations.

    ``standard_for`` lists the sites whose cited practice uses this regimen (the objective's
    third criterion prefers them); ``citations`` says where (one text per source).
    """

    regimen: Regimen
    standard_for: tuple[str, ...]
    citations: tuple[str, ...]


def _entry(dose, n, sites, *citations) -> CatalogueEntry:
    return CatalogueEntry(Regimen(n, float(dose)), tuple(sites), tuple(citations))


CATALOGUE: tuple[CatalogueEntry, ...] = (
    _entry(34, 1, ("lung",), "NCCN SABR 25-34 Gy/1 [S]"),
    _entry(54, 3, ("lung", "liver", "node"),
           COMET + ": lung <= 3 cm 54 Gy/3; other sites 45-60 Gy in 3-8 fx"),
    _entry(48, 4, ("lung",), NCCN + ": 48-50 Gy/4", LUSTRE + ": peripheral 48 Gy/4"),
    _entry(50, 5, ("lung", "liver", "node"), NCCN + ": 50-55 Gy/5",
           COMET + ": other sites 45-60 Gy in 3-8 fx"),
    _entry(55, 5, ("lung", "liver", "node"),
           COMET + ": lung > 3 cm or abutting the chest wall 55 Gy/5; other sites 45-60 Gy in 3-8 fx"),
    _entry(60, 8, ("central lung", "adrenal", "node", "liver"),
           COMET + ": within 2 cm of the mediastinum or brachial plexus 60 Gy/8; adrenal 60 Gy/8",
           LUSTRE + ": central 60 Gy/8"),
    _entry(60, 12, ("central lung",),
           COMET + ": central 60 Gy/8, 12 fractions if the oesophagus constraint cannot be met"),
    _entry(50, 10, (), ISSUE3),
    _entry(45, 15, (), ISSUE3),
    _entry(60, 15, ("central lung",), LUSTRE + ": comparator 60 Gy/15"),
    _entry(60, 30, ("node",), CONVENTIONAL),
    _entry(45, 3, ("liver", "node"), NCCN + ": 45-60 Gy/3",
           COMET + ": other sites 45-60 Gy in 3-8 fx"),
    _entry(35, 5, ("bone", "vertebra"), COMET + ": bone 35 Gy/5", COMET10 + ": 35 Gy/5"),
    _entry(30, 3, ("bone", "vertebra"), COMET + ": vertebral 30 Gy/3", COMET10 + ": 30 Gy/3"),
    _entry(24, 2, ("vertebra",), SC24),
    _entry(20, 1, ("bone", "vertebra"), COMET + ": vertebral 16-20 Gy/1", COMET10 + ": 20 Gy/1"),
    _entry(18, 1, ("vertebra",), COMET + ": vertebral 16-20 Gy/1"),
    _entry(16, 1, ("vertebra",), COMET + ": vertebral 16-20 Gy/1"),
    _entry(30, 5, (), NO_CITATION),
    _entry(55, 20, (), NO_CITATION),
    _entry(30, 10, (), NO_CITATION),
)
"""The regimen catalogue: the issue-3 list (SBRT to conventional) and the regimens issue 13
asked for, each with the sites that use it and where (see :data:`CATALOGUE` comments)."""

#: The issue-3 regimens: offered for every site (so that every lesion is compared on the same
#: baseline list).
ISSUE3_REGIMENS: tuple[Regimen, ...] = tuple(
    Regimen(n, d)
    for d, n in (
        (34, 1), (54, 3), (48, 4), (50, 5), (55, 5), (60, 8), (50, 10), (45, 15), (60, 15),
        (60, 30),
    )
)

DEFAULT_CATALOGUE: tuple[Regimen, ...] = tuple(e.regimen for e in CATALOGUE)
"""Every regimen of :data:`CATALOGUE`."""

_BY_REGIMEN = {e.regimen: e for e in CATALOGUE}


def site_regimens(site: str) -> list[Regimen]:
    """The default regimens of a lesion at ``site``: the issue-3 list plus every catalogue
    regimen that is standard for the site (``central lung`` also gets the lung ones,
    ``vertebra`` the bone ones)."""
    wanted = {site} | ({"lung"} if site == "central lung" else set())
    wanted |= {"bone"} if site == "vertebra" else set()
    extra = [e.regimen for e in CATALOGUE if wanted & set(e.standard_for)]
    return list(dict.fromkeys(list(ISSUE3_REGIMENS) + extra))


def is_standard(regimen: Regimen, site: str) -> bool:
    """Whether the catalogue cites ``regimen`` as a standard choice at ``site``."""
    entry = _BY_REGIMEN.get(regimen)
    if entry is None:
        return False
    return site in entry.standard_for or (site == "vertebra" and "bone" in entry.standard_for)


def citations(regimen: Regimen) -> tuple[str, ...]:
    """Where a catalogue regimen is used (empty for a regimen not in the catalogue)."""
    entry = _BY_REGIMEN.get(regimen)
    return entry.citations if entry else ()


@dataclass(frozen=True)
class ControlTarget:
    """A site's cited tumour-control target: prescription BED (LQ, α/β 10 Gy) >= ``bed10_gy``."""

    site: str
    bed10_gy: float
    source: str


#: Cited control targets per site. Only the lung line is cited in the reference documents
#: (§6.1); nodes, liver, bone, vertebra and adrenal have none there, and none is invented:
#: :func:`control_target` returns None and the objective says "no cited target".
CONTROL_TARGETS: dict[str, ControlTarget] = {
    site: ControlTarget(
        site,
        100.0,
        "lung SABR: BED10 > 100 Gy for > 85 % local control regardless of tumour size "
        "(Radiat Oncol J, PMC4206062, abstract [P]; reference §6.1)",
    )
    for site in ("lung", "central lung")
}


def control_target(site: str) -> ControlTarget | None:
    """The site's cited control target, or None (no cited target)."""
    return CONTROL_TARGETS.get(site)

_REGIMEN = re.compile(
    r"^\s*(?P<dose>\d+(?:\.\d*)?|\.\d+)\s*(?:gy)?\s*(?:/|\s+in\s+|x)\s*(?P<n>\d+)\s*"
    r"(?:fx|fractions?)?\s*$",
    re.IGNORECASE,
)


def parse_regimen(text: str) -> Regimen:
    """Parse ``"50/5"``, ``"50Gy/5"``, ``"50 Gy/5"`` or ``"50 Gy in 5 fx"`` (total / fractions).

    Raises
    ------
    EvaluationError
        When the text is not ``DOSE/FRACTIONS``; the message says what is wrong (empty, no
        ``/``, a dose that is not a positive number, fractions that are not a whole number
        >= 1).

    Examples
    --------
    >>> parse_regimen("54 Gy/3")
    Regimen(fractions=3, total_dose_gy=54.0)
    """
    match = _REGIMEN.match(str(text))
    if not match:
        raise EvaluationError(_why_not_a_regimen(str(text)))
    return Regimen(int(match["n"]), float(match["dose"]))


def _why_not_a_regimen(text: str) -> str:
    """The specific complaint about a text :data:`_REGIMEN` refuses."""
    example = "write TOTAL_DOSE/FRACTIONS, e.g. 50/5 or '50 Gy/5'"
    if not text.strip():
        return f"empty regimen; {example}"
    separator = next((sep for sep in (r"/", r"\s+in\s+", r"x") if re.search(sep, text, re.I)),
                     "/")
    parts = re.split(separator, text, flags=re.IGNORECASE)
    if len(parts) != 2:
        return f"'{text}' is not a regimen: expected one '/' between dose and fractions; {example}"
    dose_text = re.sub(r"\s*gy\s*$", "", parts[0].strip(), flags=re.IGNORECASE)
    n_text = re.sub(r"\s*(fx|fractions?)\s*$", "", parts[1].strip(), flags=re.IGNORECASE)
    try:
        dose = float(dose_text)
    except ValueError:
        return f"'{text}': the total dose '{parts[0].strip()}' is not a number of Gy; {example}"
    if not (math.isfinite(dose) and dose > 0):
        return f"'{text}': the total dose must be > 0 Gy, got {dose_text}"
    try:
        n = float(n_text)
    except ValueError:
        return f"'{text}': the number of fractions '{parts[1].strip()}' is not a number; {example}"
    if n != int(n) or n < 1:
        return f"'{text}': the number of fractions must be a whole number >= 1, got {n_text}"
    return f"'{text}' is not a regimen; {example}"


#: Custom regimens (``evaluate --regimen``, the app's "add regimen"): warned above these ...
PLAUSIBLE_DOSE_PER_FRACTION_GY = 30.0
PLAUSIBLE_BED10_GY = 200.0
#: ... and refused above these. Published SBRT schedules stay below the refusal (34 Gy/1,
#: RTOG 0915: 149.6 Gy BED10, warned for its 34 Gy per fraction; 60 Gy/3: 180 Gy BED10, not
#: warned); 40 Gy per fraction and 300 Gy BED10 leave room for unusual schedules but not
#: for typing errors such as 500 Gy/3.
MAX_DOSE_PER_FRACTION_GY = 40.0
MAX_BED10_GY = 300.0


def check_custom_regimen(regimen: Regimen) -> list[str]:
    """Plausibility of a user-entered regimen.

    Returns
    -------
    list of str
        Warnings (empty when plausible): dose per fraction above
        :data:`PLAUSIBLE_DOSE_PER_FRACTION_GY` or BED10 above :data:`PLAUSIBLE_BED10_GY`.

    Raises
    ------
    EvaluationError
        Above :data:`MAX_DOSE_PER_FRACTION_GY` per fraction or :data:`MAX_BED10_GY` BED10
        (LQ, α/β 10 Gy): almost certainly a typing error.
    """
    d = regimen.dose_per_fraction_gy
    b = regimen.bed10_gy()
    if d > MAX_DOSE_PER_FRACTION_GY:
        raise EvaluationError(
            f"{regimen.label}: {d:.4g} Gy per fraction is above the accepted "
            f"{MAX_DOSE_PER_FRACTION_GY:g} Gy (a typing error?); not added")
    if b > MAX_BED10_GY:
        raise EvaluationError(
            f"{regimen.label}: BED10 {b:.1f} Gy (LQ, α/β 10 Gy) is above the accepted "
            f"{MAX_BED10_GY:g} Gy (a typing error?); not added")
    warnings = []
    if d > PLAUSIBLE_DOSE_PER_FRACTION_GY:
        warnings.append(f"{regimen.label}: {d:.4g} Gy per fraction is above "
                        f"{PLAUSIBLE_DOSE_PER_FRACTION_GY:g} Gy; check the regimen")
    if b > PLAUSIBLE_BED10_GY:
        warnings.append(f"{regimen.label}: BED10 {b:.1f} Gy (LQ, α/β 10 Gy) is above "
                        f"{PLAUSIBLE_BED10_GY:g} Gy; check the regimen")
    return warnings


def load_regimen_file(path: str | Path) -> dict[str, list[Regimen]]:
    """Read a regimen CSV with the header ``lesion,total_dose_gy,fractions``.

    Parameters
    ----------
    path : str or Path
        UTF-8 CSV; ``lesion`` is a lesion id (``L1``...) or ``*`` for every lesion; blank lines
        and lines starting with ``#`` are ignored.

    Returns
    -------
    dict of str to list of Regimen
        Lesion id (or ``"*"``) → regimens in file order, duplicates removed.

    Raises
    ------
    ConstraintTableError
        ``file:line: message`` for a missing or wrong header, an empty lesion, a dose that is
        not a positive number or a fraction number that is not an integer >= 1.
    """
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ConstraintTableError(f"{path}: cannot read ({exc.strerror})") from exc
    result: dict[str, list[Regimen]] = {}
    with handle:
        reader = csv.reader(handle)
        header = None
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = [c.strip().casefold() for c in cells]
                if header != ["lesion", "total_dose_gy", "fractions"]:
                    raise ConstraintTableError(
                        f"{path.name}:{line}: header must be 'lesion,total_dose_gy,fractions'"
                    )
                continue
            if len(cells) != 3:
                raise ConstraintTableError(
                    f"{path.name}:{line}: expected 3 cells (lesion,total_dose_gy,fractions), "
                    f"got {len(cells)}"
                )
            lesion, dose_text, n_text = (c.strip() for c in cells)
            if not lesion:
                raise ConstraintTableError(f"{path.name}:{line}: empty lesion (use * for all)")
            try:
                dose = float(dose_text)
            except ValueError:
                raise ConstraintTableError(
                    f"{path.name}:{line}: total_dose_gy '{dose_text}' is not a number"
                ) from None
            if not (math.isfinite(dose) and dose > 0):
                raise ConstraintTableError(
                    f"{path.name}:{line}: total_dose_gy must be > 0 Gy, got '{dose_text}'"
                )
            try:
                n_value = float(n_text)
            except ValueError:
                n_value = math.nan
            if not (math.isfinite(n_value) and n_value == int(n_value) and n_value >= 1):
                raise ConstraintTableError(
                    f"{path.name}:{line}: fractions must be an integer >= 1, got '{n_text}'"
                )
            regimen = Regimen(int(n_value), dose)
            bucket = result.setdefault(lesion, [])
            if regimen not in bucket:
                bucket.append(regimen)
        if header is None:
            raise ConstraintTableError(
                f"{path.name}:1: empty file; expected the header 'lesion,total_dose_gy,fractions'"
            )
    return result
