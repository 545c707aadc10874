"""Fractionation options ("regimens") per lesion: a number of fractions and a total dose.

A lesion's plan (its RTDOSE at the planned ``n0`` fractions and prescription ``D0``) is scaled
to a regimen ``(n, D)`` by the factor ``D / D0``; every voxel then receives ``D_i · D / D0`` Gy in
``n`` fractions of ``D_i · D / (D0 · n)`` Gy. Scaling keeps the shape of the dose distribution,
which is what a replanned SBRT dose at a new prescription looks like to first order; it does
not model a changed margin or beam arrangement.

The default catalogue is the one of GitHub issue 3 (reference
``shared/reference/constraints-radiobiology.md`` §6.1 lists its BED10/EQD2 values). A regimen
file overrides it per lesion::

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
    "DEFAULT_CATALOGUE",
    "TUMOUR_MODEL",
    "Regimen",
    "load_regimen_file",
    "parse_regimen",
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
        return f"{_number(self.total_dose_gy)} Gy/{self.fractions}"

    def bed10_gy(self) -> float:
        """Prescription BED (Gy) at α/β = 10 Gy, LQ (:data:`TUMOUR_MODEL`)."""
        return float(bed(self.total_dose_gy, self.fractions, TUMOUR_MODEL))

    def eqd2_10_gy(self) -> float:
        """Prescription EQD2 (Gy) at α/β = 10 Gy, LQ."""
        return float(eqd2(self.total_dose_gy, self.fractions, TUMOUR_MODEL))

    def scale_from(self, planned: Regimen) -> float:
        """Dose scale factor ``D / D0`` from the ``planned`` regimen to this one."""
        return self.total_dose_gy / planned.total_dose_gy

    def __str__(self) -> str:
        return self.label


def _number(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"


DEFAULT_CATALOGUE: tuple[Regimen, ...] = tuple(
    Regimen(n, d)
    for d, n in (
        (34, 1),
        (54, 3),
        (48, 4),
        (50, 5),
        (55, 5),
        (60, 8),
        (50, 10),
        (45, 15),
        (60, 15),
        (60, 30),
    )
)
"""The issue-3 catalogue for oligoresidual NSCLC consolidation (SBRT to conventional)."""

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
        When the text is not ``DOSE/FRACTIONS``.

    Examples
    --------
    >>> parse_regimen("54 Gy/3")
    Regimen(fractions=3, total_dose_gy=54.0)
    """
    match = _REGIMEN.match(str(text))
    if not match:
        raise EvaluationError(
            f"'{text}' is not a regimen; write TOTAL_DOSE/FRACTIONS, e.g. 50/5 or '50 Gy/5'"
        )
    return Regimen(int(match["n"]), float(match["dose"]))


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
