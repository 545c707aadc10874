"""One parser for the TG-263 (Mayo) DVH metric grammar, used by the DVH, the constraint
tables, the CLI and the UI alike.

Grammar (Mayo CS et al., TG-263, IJROBP 2018;100(4):1057-66; as implemented by ESAPIX,
Mayo et al. 2016)::

    metric      := ( ("V" | "CV" | "DC" | "D") value query_unit | "Mean" | "Max" | "Min" ) "[" out_unit "]"
    query_unit  := "cc" | "%" | "Gy" | "cGy"
    out_unit    := "cc" | "%" | "Gy" | "cGy"

``Dmean``, ``Dmax`` and ``Dmin`` are accepted on input and written back as ``Mean``, ``Max``
and ``Min``; without an output unit (``Dmax``, ``mean``) they mean ``[Gy]``. A dose in % (``V95%[%]``, ``D2%[%]`` as an output) is a percentage of the
prescription.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import MetricSyntaxError

_NUMBER = r"(?P<value>\d+(?:\.\d*)?|\.\d+)"
_PATTERN = re.compile(
    r"^\s*(?:(?P<kind>CV|DC|D|V)" + _NUMBER + r"(?P<query>cc|%|cGy|Gy)"
    r"|(?P<stat>D?(?:Mean|Max|Min)))\s*\[(?P<out>cc|%|cGy|Gy)\]\s*$",
    re.IGNORECASE,
)
_BARE_STAT = re.compile(r"^\s*D?(?:Mean|Max|Min)\s*$", re.IGNORECASE)
_CANON_UNIT = {"cc": "cc", "%": "%", "gy": "Gy", "cgy": "cGy"}
_DOSE_UNITS = ("Gy", "cGy")


@dataclass(frozen=True)
class Metric:
    """A parsed DVH metric.

    Attributes
    ----------
    kind : {"D", "V", "CV", "DC", "Mean", "Max", "Min"}
        ``D``: dose to the hottest ``value``; ``V``: volume receiving at least ``value``;
        ``CV``: volume receiving less than ``value`` (critical volume, spared volume);
        ``DC``: the highest dose in the coldest ``value`` (dose complement).
    value : float or None
        The query number (``None`` for Mean, Max, Min).
    query_unit : {"cc", "%", "Gy", "cGy"} or None
    out_unit : {"cc", "%", "Gy", "cGy"}
    """

    kind: str
    value: float | None
    query_unit: str | None
    out_unit: str

    @property
    def returns_dose(self) -> bool:
        """True when the metric's value is a dose (Gy, cGy or % of prescription)."""
        return self.kind in ("D", "DC", "Mean", "Max", "Min")

    @property
    def needs_prescription(self) -> bool:
        """True when a % dose appears in the query or the output."""
        query_pct = self.kind in ("V", "CV") and self.query_unit == "%"
        out_pct = self.returns_dose and self.out_unit == "%"
        return query_pct or out_pct

    def __str__(self) -> str:
        text = self.__dict__.get("_text")  # made once per metric: DVH metrics label every value
        if text is None:
            if self.value is None:
                text = f"{self.kind}[{self.out_unit}]"
            else:
                text = f"{self.kind}{_format_number(self.value)}{self.query_unit}[{self.out_unit}]"
            object.__setattr__(self, "_text", text)  # a cache, not a field
        return text


def _format_number(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text else "0"


def parse_metric(text: str) -> Metric:
    """Parse a TG-263 metric string such as ``D95%[Gy]``, ``V20Gy[%]`` or ``Mean[Gy]``.

    Parameters
    ----------
    text : str

    Returns
    -------
    Metric

    Raises
    ------
    MetricSyntaxError
        When ``text`` is not in the grammar, or combines units that mean nothing
        (``D20Gy[...]``: a dose queried by dose; ``V95%[Gy]``: a volume returned as dose).
    """
    if not isinstance(text, str):
        raise MetricSyntaxError(f"metric must be a string, got {type(text).__name__}")
    if _BARE_STAT.match(text):  # 'Dmax', 'Dmean', 'Min': the README's short names, in Gy
        text = text.strip() + "[Gy]"
    match = _PATTERN.match(text)
    if not match:
        raise MetricSyntaxError(
            f"'{text}' is not a TG-263 DVH metric; examples: D95%[Gy], D0.03cc[Gy], "
            "V20Gy[%], CV12.4Gy[cc], Mean[Gy], Max[Gy]"
        )
    out = _CANON_UNIT[match["out"].lower()]
    if match["stat"]:
        stat = match["stat"].lower().lstrip("d")
        kind = {"mean": "Mean", "max": "Max", "min": "Min"}[stat]
        if out == "cc":
            raise MetricSyntaxError(f"'{text}': {kind} returns a dose; use [Gy], [cGy] or [%]")
        return Metric(kind, None, None, out)
    kind = match["kind"].upper()
    value = float(match["value"])
    query = _CANON_UNIT[match["query"].lower()]
    if kind in ("D", "DC"):
        if query in _DOSE_UNITS:
            raise MetricSyntaxError(
                f"'{text}': {kind} is queried by a volume (cc or %), not by a dose"
            )
        if out == "cc":
            raise MetricSyntaxError(f"'{text}': {kind} returns a dose; use [Gy], [cGy] or [%]")
        if query == "%" and not 0 <= value <= 100:
            raise MetricSyntaxError(f"'{text}': a volume percentage must lie in 0..100")
    else:
        if query == "cc":
            raise MetricSyntaxError(
                f"'{text}': {kind} is queried by a dose (Gy, cGy or % of prescription)"
            )
        if out in _DOSE_UNITS:
            raise MetricSyntaxError(f"'{text}': {kind} returns a volume; use [cc] or [%]")
    return Metric(kind, value, query, out)
