"""Plain-language reasons of an evaluation (issue 14): why each lesion got its regimen, why the
option above it was rejected, and what the composite of the shown choice says — in the words
an MDT reads, with the value, the limit, the organ and the source by name.

Every sentence is a function of the evaluation's records
(:class:`~rtplan_assist.evaluation.records.EvaluationResult`, its
:class:`~rtplan_assist.evaluation.records.Recommendation` and its rows); nothing here computes
a dose. Each :class:`Reason` also carries ``details``: the source key with its CSV file and
line and the engine's own text, for a "details" disclosure.

Examples (demo patient)::

    54 Gy/3, the highest-BED10 option, is rejected: stomach D0.035cc (physical) would be
    22.45 Gy, limit 22.2 Gy at 3 fx (TG-101).
    45 Gy/15 is recommended: the highest-BED10 option that keeps every mandatory limit; no
    cited control target for a vertebra lesion; judged only on advisory limits at 15 fx for
    spinal cord (97 % of its advisory limit) (partly judged).

The words avoid "instead of": an MDT reads the regimen after it as the plan.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import yaml

from ..regimens import Regimen, control_target, parse_regimen
from .objective import target_check
from .records import ResultRow, excess

#: Source keys of the shipped tables (constraints/sources.yaml) in the words of the clinic.
#: A user table's key is shown as written.
SOURCE_NAMES: dict[str, str] = {
    "tg101_2010": "TG-101",
    "hytec_2021_spinalcord": "HyTEC",
    "safron2_2016": "SAFRON II",
    "fastrack2_2018": "FASTRACK II",
    "quantec_2010": "QUANTEC",
    "quantec_2010_cord": "QUANTEC",
    "ro2018_ventilation_proton": "Radiat Oncol 2018 planning table",
    "jrr2014_lung_v5": "J Radiat Res 2014",
    "uk_sabr_2022": "UK SABR 2022",
    "uk_sabr_2019": "UK SABR 2019",
    "nccn_nsclc": "NCCN NSCLC",
    "cosinr": "COSINR",
    "ro2016_renal_sbrt_10fx": "Yamamoto 2016 (10 fx SBRT)",
    "ro2013_rtog_plexus": "RTOG plexus limits (Radiat Oncol 2013)",
}

#: TG-263 organ names in words (lower case: they stand inside a sentence). Others are shown
#: with ``_`` as a space.
ORGAN_WORDS: dict[str, str] = {
    "Lungs-GTV": "lungs minus GTV",
    "Lungs-ITV": "lungs minus ITV",
    "Lungs-PTV": "lungs minus PTV",
    "Lungs": "both lungs",
    "Lung_L": "left lung",
    "Lung_R": "right lung",
    "Esophagus": "oesophagus",
    "Heart": "heart",
    "SpinalCord": "spinal cord",
    "SpinalCanal": "spinal canal",
    "CaudaEquina": "cauda equina",
    "SacralPlex": "sacral plexus",
    "AirWay_Prox": "proximal airway",
    "AirWay_Dist": "distal airway",
    "Bronchus_Main": "main bronchus",
    "Bronchus_L": "left bronchus",
    "Bronchus_R": "right bronchus",
    "Trachea": "trachea",
    "GreatVes": "great vessels",
    "BrachialPlex_L": "left brachial plexus",
    "BrachialPlex_R": "right brachial plexus",
    "BrachialPlexs": "brachial plexus",
    "Chestwall": "chest wall",
    "Rib": "rib",
    "Skin": "skin",
    "Stomach": "stomach",
    "Duodenum": "duodenum",
    "Jejunum_Ileum": "small bowel",
    "Bowel_Small": "small bowel",
    "Colon": "colon",
    "Liver": "liver",
    "Liver-GTV": "liver minus GTV",
    "Kidney_Cortex": "renal cortex",
    "Kidney_Hilums": "renal hilum",
    "Pericardium": "pericardium",
}

_METRIC_WORDS = {"Mean": "mean dose", "Max": "maximum dose", "Min": "minimum dose"}


# ------------------------------------------------------------------------------ words of a row
def source_key(source: str) -> str:
    """The table's source key of a row's ``source`` text (``"safron2_2016, Table 2, 48 Gy/4
    arm (safron2_4fx.csv:6)"`` → ``"safron2_2016"``)."""
    return source.split(",")[0].split(" (")[0].strip()


def source_name(source: str) -> str:
    """The source of a row in words: ``SAFRON II``, ``TG-101``, ``HyTEC``...
    (:data:`SOURCE_NAMES`, else the ``short_name`` of its entry in the shipped
    ``constraints/sources.yaml``); any other key is returned as written."""
    key = source_key(source)
    return SOURCE_NAMES.get(key) or _short_names().get(key) or key


@functools.lru_cache(maxsize=1)
def _short_names() -> dict[str, str]:
    """``short_name`` fields of the shipped sources.yaml (read once; empty when unreadable)."""
    try:
        from ..constraints import shipped_folder

        data = yaml.safe_load((shipped_folder() / "sources.yaml").read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - names in words are a convenience; the key is shown
        return {}
    return {k: str(v["short_name"]) for k, v in (data or {}).items()
            if isinstance(v, dict) and v.get("short_name")}


def organ_words(organ: str, structure: str = "") -> str:
    """The organ in words, with the case's structure name in brackets when it reads
    differently: ``"lungs minus GTV (LUNGS-ITV's)"``, ``"oesophagus"``."""
    words = ORGAN_WORDS.get(organ) or (organ or structure).replace("_", " ")
    simple = re.sub(r"[^a-z0-9]", "", (structure or "").lower())
    if structure and simple not in (re.sub(r"[^a-z0-9]", "", words.lower()),
                                    re.sub(r"[^a-z0-9]", "", organ.lower())):
        return f"{words} ({structure})"
    return words


def metric_words(metric: str) -> str:
    """A TG-263 metric without its output unit: ``D0.03cc[Gy]`` → ``D0.03cc``,
    ``V5Gy[%]`` → ``V5Gy``, ``Mean[Gy]`` → ``mean dose``."""
    bare = re.sub(r"\[[^\]]*\]$", "", metric or "").strip()
    return _METRIC_WORDS.get(bare, bare)


def quantity_words(row: ResultRow) -> str:
    """``physical`` or ``EQD2, LQ, α/β 3 Gy`` (the dose the row is evaluated on)."""
    if row.kind == "physical" or not row.kind:
        return "physical"
    ab = f", α/β {row.alpha_beta_gy:g} Gy" if row.alpha_beta_gy is not None else ""
    model = f", {row.model}" if row.model else ""
    return f"{row.kind}{model}{ab}"


def number(value: float, digits: int = 1) -> str:
    """``value`` with ``digits`` decimals, trailing zeros dropped (``30.0`` → ``30``)."""
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def value_and_limit(value: float, limit: float) -> tuple[str, str]:
    """The two numbers with as few decimals (1 to 4) as tell them apart: a failing
    22.45 Gy never reads "22.4, limit 22.2" as equal numbers would."""
    for digits in (1, 2, 3, 4):
        a, b = number(value, digits), number(limit, digits)
        if a != b or value == limit:
            return a, b
    return a, b


def _unit(unit: str) -> str:
    return f" {unit}" if unit else ""


def percent_of_limit(row: ResultRow) -> float:
    """The row's value as a percentage of its limit (an upper limit: ``100 value / limit``;
    a lower limit, e.g. ``CV12.4Gy[cc] >= 1000``: ``100 limit / value``); NaN without a
    value or a limit. Above 100 % fails."""
    if row.limit is None or row.value is None or math.isnan(row.value) or not row.limit:
        return math.nan
    if row.comparator in ("<", "<="):
        return 100.0 * row.value / row.limit
    if row.comparator in (">", ">="):
        return 100.0 * row.limit / row.value if row.value else math.inf
    return math.nan


def limit_words(row: ResultRow) -> str:
    """Where the limit comes from, in words: ``SAFRON II, 4 fx``, ``TG-101, 5 fx limit
    converted to 15 fx`` or, for a composite row, ``TG-101, 3 fx limit as EQD2``."""
    name = source_name(row.source)
    if row.regimen == "composite" or row.lesion_id == "composite":
        n = row.converted_from_fractions
        if row.kind == "EQD2":
            return f"{name}, {n} fx limit as EQD2" if n else f"{name}, as EQD2"
        return name
    if row.converted_from_fractions is not None:
        return (f"{name}, {row.converted_from_fractions} fx limit converted to "
                f"{row.constraint_fractions} fx")
    return f"{name}, {row.constraint_fractions} fx" if row.constraint_fractions else name


def row_sentence(row: ResultRow, *, verb: str = "is") -> str:
    """One row in words: ``oesophagus D0.03cc (physical) would be 33.13 Gy, limit 30 Gy
    (SAFRON II, 4 fx)``. ``verb``: ``is`` for the shown choice, ``would be`` for an option
    not taken. A lower limit reads ``at least``; a row without a value says so."""
    what = (f"{organ_words(row.organ, row.structure)} {metric_words(row.metric)} "
            f"({quantity_words(row)})")
    if row.value is None or math.isnan(row.value) or row.limit is None:
        return f"{what} cannot be evaluated ({limit_words(row)})"
    value, limit = value_and_limit(row.value, row.limit)
    bound = "at least " if row.comparator in (">", ">=") else ""
    return (f"{what} {verb} {value}{_unit(row.unit)}, limit {bound}{limit}{_unit(row.unit)} "
            f"({limit_words(row)})")


def row_details(row: ResultRow) -> str:
    """The machine detail of a row for a "details" disclosure: source key, table, CSV file
    and line, conversion, and the engine's reason."""
    conv = (f"; converted from {row.converted_from_fractions} fx"
            if row.converted_from_fractions is not None else "")
    return f"{row.source}{conv}; {row.reason}" if row.reason else f"{row.source}{conv}"


# ------------------------------------------------------------------------------ reasons
@dataclass(frozen=True)
class Reason:
    """One plain-language reason.

    Attributes
    ----------
    lesion_id : str
        ``L1``... or ``composite``.
    kind : {"recommended", "rejected", "chosen", "composite"}
    text : str
        The sentence for the MDT.
    details : str
        Source key, CSV file and line, the engine's text (for a "details" disclosure).
    row : ResultRow or None
        The row the sentence is about (binding, closest or failing), if any.
    """

    lesion_id: str
    kind: str
    text: str
    details: str = ""
    row: ResultRow | None = None


_ADVISORY = re.compile(
    r"the advisory limit (?P<metric>\S+) (?P<cmp><=|<|>=|>) (?P<limit>[-\d.eE+]+) (?P<unit>\S*) "
    r"\((?P<source>[^,()]+).*?converted from (?P<n>\d+) fx\) is exceeded "
    r"\((?P<value>[-\d.eE+]+)"
)


def _rows_by_lesion(result) -> dict[str, dict[str, list[ResultRow]]]:
    """Lesion id → regimen label → the rows of ``result.rows`` (in their order, keys in order
    of first appearance): one pass over the rows instead of one per question asked here
    (6,000+ rows, two dozen questions an output). The last index is kept for the same list
    of rows (identity and length; a result's rows are never changed in place)."""
    rows = result.rows
    cached = _BY_LESION[0]
    if cached is not None and cached[0] is rows and cached[1] == len(rows):
        return cached[2]
    index: dict[str, dict[str, list[ResultRow]]] = {}
    for r in rows:
        by_regimen = index.get(r.lesion_id)
        if by_regimen is None:
            by_regimen = index[r.lesion_id] = {}
        found = by_regimen.get(r.regimen)
        if found is None:
            by_regimen[r.regimen] = [r]
        else:
            found.append(r)
    _BY_LESION[0] = (rows, len(rows), index)
    return index


_BY_LESION: list = [None]


def _rows_of(result, lesion_id: str, label: str) -> list[ResultRow]:
    """``[r for r in result.rows if r.lesion_id == lesion_id and r.regimen == label]``."""
    return list(_rows_by_lesion(result).get(lesion_id, {}).get(label, ()))


def _regimens_of(result, lesion_id: str) -> list[Regimen]:
    labels = _rows_by_lesion(result).get(lesion_id, {})
    out = []
    for label in labels:
        try:
            out.append(parse_regimen(label))
        except Exception:  # noqa: BLE001, S112 - a row label that is not a regimen
            continue
    return out


def _lesion(result, lesion_id: str):
    return next((x for x in result.lesions if x.lesion_id == lesion_id), None)


def _highest_bed(regimen: Regimen, pool: list[Regimen]) -> bool:
    return bool(pool) and regimen.bed10_gy() >= max(r.bed10_gy() for r in pool) - 1e-9


def rejected_alternative(result, lesion_id: str) -> Regimen | None:
    """The option the objective preferred to the recommended one and rejected (the
    recommendation's ``alternatives``, else the regimen of its per-lesion binding row)."""
    rec = result.recommendation
    alt = getattr(rec, "alternatives", {}).get(lesion_id)
    if alt is not None:
        return alt
    row = rec.binding_rows.get(lesion_id)
    if row is not None and row.regimen != "composite":
        try:
            return parse_regimen(row.regimen)
        except Exception:  # noqa: BLE001 - unknown label: no alternative to name
            return None
    return None


def _not_judged_words(row: ResultRow, regimen_fx: int | None) -> str:
    organ = organ_words(row.organ, row.structure)
    n = row.constraint_fractions or regimen_fx
    match = _ADVISORY.search(row.reason or "")
    if "no cited limit" in (row.reason or "") or row.metric == "no cited limit":
        text = f"it cannot be judged for the {organ}: no cited limit at {n} fx"
        if match:
            value, limit = value_and_limit(float(match["value"]), float(match["limit"]))
            unit = _unit(match["unit"])
            text += (f", and the advisory {metric_words(match['metric'])} limit "
                     f"({SOURCE_NAMES.get(match['source'].strip(), match['source'].strip())}, "
                     f"{match['n']} fx limit converted to {n} fx) would be exceeded: "
                     f"{value}{unit}, limit {limit}{unit}")
        return text
    return f"it cannot be judged for the {organ}: {metric_words(row.metric)} has no value"


def rejected_reason(result, lesion_id: str) -> Reason | None:
    """Why the option the objective preferred was not recommended, or None when the lesion
    got its preferred option.

    ``"54 Gy/3, the highest-BED10 option, is rejected: stomach D0.035cc (physical) would be
    22.45 Gy, limit 22.2 Gy (TG-101, 3 fx)"``; a composite limit reads ``with the other
    lesions as recommended, lungs minus GTV V5Gy (physical) would be 95 %, limit 66 %
    (SAFRON II)``."""
    rec = result.recommendation
    if lesion_id not in rec.binding and lesion_id not in rec.deescalated:
        return None
    alt = rejected_alternative(result, lesion_id)
    row = rec.binding_rows.get(lesion_id)
    if alt is None:
        head = "A higher-ranked option is rejected"
    else:
        pool = _regimens_of(result, lesion_id)
        role = ("the highest-BED10 option" if _highest_bed(alt, pool)
                else "the next option in the ranking")
        head = f"{alt.label} (BED10 {number(alt.bed10_gy())} Gy), {role}, is rejected"
    details = rec.binding.get(lesion_id, "")
    if row is None:
        text = (f"{head}: it keeps every limit, but the whole choice ranks higher without it "
                "(another lesion sets the worst margin, or the ranking prefers standard "
                "regimens and fewer fractions once margins are clear)")
        return Reason(lesion_id, "rejected", text, details, None)
    if row.status == "not evaluable":
        text = f"{head}: {_not_judged_words(row, alt.fractions if alt else None)}"
    elif row.regimen == "composite" or row.lesion_id == "composite":
        text = f"{head}: with the other lesions as recommended, {row_sentence(row, verb='would be')}"
    else:
        text = f"{head}: {row_sentence(row, verb='would be')}"
    return Reason(lesion_id, "rejected", text, f"{details}; {row_details(row)}", row)


def _target_words(regimen: Regimen, site: str) -> str:
    check = target_check(regimen, site)
    target = control_target(site)
    if target is None:
        return f"no cited control target for a {site} lesion (BED10 shown only)"
    bed = number(regimen.bed10_gy())
    if check.tier == 2:
        return (f"below the {site} control target: BED10 {bed} Gy, target "
                f"{number(target.bed10_gy)} Gy (LQ, α/β 10 Gy)")
    if check.tier == 1:
        return (f"reaches the {site} control target (BED10 {bed} Gy >= "
                f"{number(target.bed10_gy)} Gy) under LQ only; not under {check.flips}")
    return (f"reaches the {site} control target (BED10 {bed} Gy >= "
            f"{number(target.bed10_gy)} Gy, LQ, α/β 10 Gy)")


def advisory_only(rows: list[ResultRow]) -> list[tuple[str, float]]:
    """Organs judged only on advisory limits in ``rows`` (one lesion at one regimen): each
    present organ with a ``no cited limit`` row and no evaluable mandatory row, with its
    highest percentage of an advisory limit (NaN when no advisory row has a value), highest
    first."""
    uncited = {(r.organ, r.structure) for r in rows
               if r.structure and r.status == "not evaluable" and "no cited limit" in r.reason}
    mandatory = {r.organ for r in rows
                 if r.priority == "mandatory" and r.status in ("pass", "fail", "goal missed")}
    out = []
    for organ, structure in uncited:
        if organ in mandatory:
            continue
        pcts = [percent_of_limit(r) for r in rows if r.organ == organ and r.limit is not None]
        pcts = [p for p in pcts if not math.isnan(p)]
        out.append((organ_words(organ, structure), max(pcts) if pcts else math.nan))
    out.sort(key=lambda t: -t[1] if not math.isnan(t[1]) else math.inf)
    return out


def _partly_judged_words(rows: list[ResultRow], fractions: int, shown: int = 3) -> str:
    organs = advisory_only(rows)
    if not organs:
        return ""
    items = [f"{name} ({number(pct, 0)} % of its advisory limit)" if not math.isnan(pct)
             else name for name, pct in organs[:shown]]
    more = f" and {len(organs) - shown} more" if len(organs) > shown else ""
    return (f"judged only on advisory (converted) limits at {fractions} fx for "
            f"{', '.join(items)}{more} (partly judged)")


def recommended_reason(result, lesion_id: str) -> Reason:
    """Why the lesion's recommended regimen, in words: where it stands among the options,
    the control target of its site, and the organs judged only on advisory limits.

    ``"45 Gy/15 is recommended: the highest-BED10 option that keeps every mandatory limit;
    no cited control target for a vertebra lesion (BED10 shown only); judged only on
    advisory (converted) limits at 15 fx for spinal cord (97 % of its advisory limit)
    (partly judged)"``."""
    rec = result.recommendation
    regimen = rec.choice[lesion_id]
    lesion = _lesion(result, lesion_id)
    site = lesion.site if lesion is not None else "unknown"
    rows = _rows_of(result, lesion_id, regimen.label)
    failing = [r for r in rows if r.priority == "mandatory" and r.status == "fail"]
    pool = _regimens_of(result, lesion_id)
    feasible = rec.feasible.get(lesion_id, [])
    if failing:
        rank = (f"no option keeps every mandatory limit of its own organs; this one fails "
                f"the fewest ({len(failing)})")
    elif lesion_id not in rec.deescalated:
        rank = ("the highest-BED10 option, and it keeps every mandatory limit"
                if _highest_bed(regimen, pool) else
                "the first option in the ranking (control target, margin to the limits, "
                "standard regimen and fewer fractions, then BED10), and it keeps every "
                "mandatory limit")
    elif _highest_bed(regimen, feasible or [regimen]):
        rank = "the highest-BED10 option that keeps every mandatory limit"
    else:
        rank = ("the first option in the ranking that keeps every mandatory limit, its own "
                "and the composite with the other lesions as recommended")
    if len(pool) <= 1:  # nothing to choose from (e.g. a batch without a regimen file)
        worst = max(failing, key=excess) if failing else None
        rank = ("the only regimen evaluated" + (f"; it fails {row_sentence(worst)}" if worst
                                                else "; it keeps every mandatory limit"))
    parts = [rank, _target_words(regimen, site)]
    partly = _partly_judged_words(rows, regimen.fractions)
    if partly:
        parts.append(partly)
    verb = "is shown" if len(pool) <= 1 else "is recommended"
    text = f"{regimen.label} {verb}: " + "; ".join(parts)
    return Reason(lesion_id, "recommended", text, rec.reasons.get(lesion_id, ""), None)


def chosen_reason(result, lesion_id: str) -> Reason | None:
    """For a lesion whose shown regimen is not the recommended one: what the choice does to
    its own mandatory limits (the composite is :func:`composite_reason`); None otherwise."""
    chosen = result.choice.get(lesion_id)
    recommended = result.recommendation.choice.get(lesion_id)
    if chosen is None or chosen == recommended:
        return None
    rows = _rows_of(result, lesion_id, chosen.label)
    fails = [r for r in rows if r.priority == "mandatory" and r.status == "fail"]
    rec_label = recommended.label if recommended is not None else "none"
    head = f"{chosen.label} is chosen (recommended: {rec_label})"
    if fails:
        worst = max(fails, key=excess)
        return Reason(lesion_id, "chosen", f"{head}: it fails {row_sentence(worst)}",
                      row_details(worst), worst)
    unjudged = [r for r in rows if r.priority == "mandatory" and r.status == "not evaluable"
                and r.structure]
    if unjudged:
        return Reason(lesion_id, "chosen",
                      f"{head}: {_not_judged_words(unjudged[0], chosen.fractions)}",
                      row_details(unjudged[0]), unjudged[0])
    return Reason(lesion_id, "chosen",
                  f"{head}: it keeps the mandatory limits of its own organs", "", None)


def composite_reason(result) -> Reason:
    """The composite of the shown choice in words: the failing mandatory limit furthest past
    it, or the one closest to its limit when all pass; said for the regimens "as
    recommended" or "as chosen"."""
    basis = "as recommended" if result.choice == result.recommendation.choice else "as chosen"
    rows = [r for r in result.composite_rows if r.priority == "mandatory" and r.structure]
    fails = [r for r in rows if r.status == "fail"]
    if fails:
        worst = max(fails, key=excess)
        more = f" (and {len(fails) - 1} more mandatory composite limit(s))" if len(fails) > 1 else ""
        return Reason("composite", "composite",
                      f"With the regimens {basis}, the composite fails: "
                      f"{row_sentence(worst)}{more}", row_details(worst), worst)
    unjudged = [r for r in rows if r.status == "not evaluable"]
    judged = [r for r in rows if r.status in ("pass", "goal missed")]
    if unjudged or not judged:
        row = unjudged[0] if unjudged else None
        what = (f"{organ_words(row.organ, row.structure)} {metric_words(row.metric)} has no "
                "value" if row is not None else "no mandatory composite limit applies to "
                "an organ of this case")
        return Reason("composite", "composite",
                      f"With the regimens {basis}, the composite cannot be judged: {what}",
                      row_details(row) if row is not None else "", row)
    closest = max(judged, key=lambda r: percent_of_limit(r) if not math.isnan(
        percent_of_limit(r)) else -1.0)
    pct = percent_of_limit(closest)
    return Reason("composite", "composite",
                  f"With the regimens {basis}, every mandatory composite limit passes; the "
                  f"closest is {row_sentence(closest)}, {number(pct, 0)} % of its limit",
                  row_details(closest), closest)


def lesion_reasons(result, lesion_id: str) -> list[Reason]:
    """The reasons of one lesion, in reading order: recommended, rejected (if any), chosen
    (if the shown regimen is not the recommended one)."""
    out = [recommended_reason(result, lesion_id)]
    for extra in (rejected_reason(result, lesion_id), chosen_reason(result, lesion_id)):
        if extra is not None:
            out.append(extra)
    return out


def all_reasons(result) -> list[Reason]:
    """Every lesion's reasons (:func:`lesion_reasons`, lesion order), then the composite's."""
    out = [r for lesion in result.lesions for r in lesion_reasons(result, lesion.lesion_id)]
    return out + [composite_reason(result)]


# ------------------------------------------------------------------------------ the basis
BASES = ("recommended", "planned", "chosen")


def planned_only(result) -> bool:
    """True when every lesion was evaluated at its planned regimen only (a batch without a
    regimen file): its "recommendation" chose from nothing."""
    index = _rows_by_lesion(result)
    return all(set(index.get(lesion.lesion_id, ())) <= {lesion.planned.label}
               for lesion in result.lesions)


def shown_basis(result) -> str:
    """Which regimens a result shows (its ``choice``): ``recommended`` (the recommendation's
    choice, also when it equals the plan), ``planned`` (every lesion's planned regimen, not
    the recommendation, or only the planned regimens were evaluated) or ``chosen`` (any
    other choice: a user's)."""
    if planned_only(result) and result.choice == {
            lesion.lesion_id: lesion.planned for lesion in result.lesions}:
        return "planned"
    if result.choice == result.recommendation.choice:
        return "recommended"
    if result.choice == {lesion.lesion_id: lesion.planned for lesion in result.lesions}:
        return "planned"
    return "chosen"


def basis_line(result) -> str:
    """One sentence saying what the output shows, with the other basis beside it:
    ``"Shown: the recommended regimens (planned: L2 60 Gy/8, L5 27 Gy/3; the others as
    recommended)"``. Every output of a result (text, HTML, PDF, export) starts with it."""
    basis = shown_basis(result)
    rec = result.recommendation.choice
    planned = {lesion.lesion_id: lesion.planned for lesion in result.lesions}
    if planned_only(result):
        return ("Shown: the planned regimens (only the planned regimens were evaluated: no "
                "recommendation among other regimens)")

    def differing(ref: dict, other: dict) -> list[str]:
        return [f"{lid} {other[lid].label}" for lid in ref
                if lid in other and other[lid] != ref[lid]]

    if basis == "recommended":
        diff = differing(rec, planned)
        beside = ("they are the planned regimens" if not diff else
                  f"planned: {', '.join(diff)}; the others as recommended")
        return f"Shown: the recommended regimens ({beside})"
    if basis == "planned":
        diff = differing(planned, rec)
        return (f"Shown: the planned regimens, not the recommendation (recommended: "
                f"{', '.join(diff)}; the others as planned)")
    # the lesions the user set: those off the basis the others follow
    others_planned = sum(reg == planned.get(lid) for lid, reg in result.choice.items())
    others_rec = sum(reg == rec.get(lid) for lid, reg in result.choice.items())
    ref, ref_name = (planned, "planned") if others_planned > others_rec else (rec, "recommended")
    own = [f"{lid} {reg.label} (recommended {rec[lid].label if lid in rec else 'none'}, "
           f"planned {planned[lid].label if lid in planned else 'none'})"
           for lid, reg in result.choice.items() if reg != ref.get(lid)]
    return (f"Shown: regimens chosen by the user: {'; '.join(own)}; the other lesions as "
            f"{ref_name}")
