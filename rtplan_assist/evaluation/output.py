"""Output of an :class:`~rtplan_assist.evaluation.records.EvaluationResult`: a JSON-safe
dict, tidy rows, a terminal text and a self-contained HTML page.

Every number comes from the result; nothing here computes a dose.
"""

from __future__ import annotations

import csv
import html
import io
import math
import operator
from dataclasses import fields
from pathlib import Path

import numpy as np

from .. import __version__
from ..jsontext import Records, json_pieces
from ..regimens import ABLATIVE_BED10_GY, Regimen
from ..status import STATUS_STYLE, status_style
from .reasons import (
    all_reasons,
    basis_line,
    composite_reason,
    lesion_reasons,
    limit_words,
    percent_of_limit,
    quantity_words,
    row_details,
    shown_basis,
)
from .records import (
    NEGATION,
    TIDY_COLUMNS,
    EvaluationResult,
    Lesion,
    ResultRow,
    excess,
    rows_verdict,
)


def _clean(value):
    # exact-type fast paths first (6,000+ rows of ~25 fields each for the demo); the ladder
    # below is the rule for everything else (numpy scalars, float subclasses, containers)
    kind = type(value)
    if kind is str or kind is int or value is None or kind is bool:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating,)):
        return _clean(float(value))
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, Regimen):
        return value.label
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _row_dict(row: ResultRow) -> dict:
    """``dataclasses.asdict`` of a flat record (every field of :class:`ResultRow` is a str, a
    number or None), without asdict's recursive deep copy: it took a third of the JSON
    output's time (5,500 rows for the demo)."""
    names = _FIELD_NAMES.get(type(row))
    if names is None:  # dataclasses.fields() per row was a fifth of the CSV's time
        names = _FIELD_NAMES[type(row)] = tuple(f.name for f in fields(row))
    return {name: getattr(row, name) for name in names}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _lesion_dict(lesion: Lesion) -> dict:
    return {
        "lesion_id": lesion.lesion_id,
        "label": lesion.label,
        "site": lesion.site,
        "target": lesion.target.name,
        "gtv": lesion.gtv.name if lesion.gtv else None,
        "planned": lesion.planned.label,
        "planned_fractions": lesion.planned.fractions,
        "planned_total_dose_gy": lesion.planned.total_dose_gy,
        "planned_bed10_gy": lesion.planned.bed10_gy(),
        "plan_file": Path(lesion.plan.path).name,
        "dose_file": Path(lesion.dose.path).name,
        "dose_scale_note": lesion.dose_scale_note,
    }


def result_to_dict(result: EvaluationResult) -> dict:
    """JSON-safe dict (NaN → ``None``, regimens as labels) of an :class:`EvaluationResult`."""
    return _result_dict(result, lambda rows: [_row_dict(r) for r in rows])


def _result_dict(result: EvaluationResult, row_list) -> dict:
    """:func:`result_to_dict` with ``row_list(rows)`` for its two lists of rows."""
    rec = result.recommendation
    # one pass over the rows (not one per lesion x regimen): each lesion's regimen labels and
    # its mandatory failures per regimen
    labels: dict[str, dict] = {}  # insertion-ordered, as the rows first name them
    failures: dict[tuple[str, str], int] = {}
    for r in result.rows:
        labels.setdefault(r.lesion_id, {})[r.regimen] = None
        if r.priority == "mandatory" and r.status == "fail":
            key = (r.lesion_id, r.regimen)
            failures[key] = failures.get(key, 0) + 1
    return _clean(
        {
            "patient_id": result.patient_id,
            "folder": result.folder,
            "verdict": result.verdict(),
            "basis": shown_basis(result),
            "basis_text": basis_line(result),
            "lesions": [_lesion_dict(lesion) for lesion in result.lesions],
            "choice": result.choice,
            "recommendation": {
                "choice": rec.choice,
                "binding": rec.binding,
                "binding_rows": {k: _row_dict(v) for k, v in rec.binding_rows.items()},
                "deescalated": rec.deescalated,
                "composite_status": rec.composite_status,
                "explanation": rec.explanation,
                "feasible": rec.feasible,
                "reasons": rec.reasons,
                "robustness": rec.robustness,
                "alternatives": getattr(rec, "alternatives", {}),
            },
            # issue 14: the reasons in words (plain_reasons[i].details: sources, CSV lines)
            "plain_reasons": [
                {"lesion_id": r.lesion_id, "kind": r.kind, "text": r.text, "details": r.details}
                for r in all_reasons(result)
            ],
            "regimens": {
                lesion.lesion_id: [
                    {
                        "regimen": label,
                        "bed10_gy": reg.bed10_gy(),
                        "eqd2_10_gy": reg.eqd2_10_gy(),
                        "ablative": reg.bed10_gy() >= ABLATIVE_BED10_GY - 1e-9,
                        "mandatory_failures": failures.get((lesion.lesion_id, label), 0),
                    }
                    for reg in sorted(
                        {_parse_label(text) for text in labels.get(lesion.lesion_id, ())}
                    )
                    for label in [reg.label]
                ]
                for lesion in result.lesions
            },
            "rows": row_list(result.rows),
            "composite_rows": row_list(result.composite_rows),
            "warnings": result.warnings,
            "caveats": result.caveats,
            "provenance": result.provenance,
        }
    )


def result_to_json(result: EvaluationResult) -> str:
    """The ``evaluate --format json`` text: :func:`result_to_dict`, indented by 2, UTF-8
    characters kept, a final newline."""
    return "".join(json_pieces(_result_dict(result, _row_records), end="\n"))  # one string


def _row_records(rows: list[ResultRow]):
    """The rows as :class:`~rtplan_assist.jsontext.Records` (their field values, NaN and ±inf
    written null): the JSON text of :func:`result_to_dict`'s cleaned row dicts without making
    them (0.05 s of the demo's output). Rows of another type, or values other than JSON
    scalars (numpy integers, ...): those cleaned dicts."""

    def dicts():
        return _clean([_row_dict(r) for r in rows])

    if not rows or any(type(r) is not ResultRow for r in rows):
        return dicts()
    return Records(TIDY_COLUMNS, list(map(_ROW_VALUES, rows)), nonfinite_null=True,
                   fallback=dicts)


_ROW_VALUES = operator.attrgetter(*TIDY_COLUMNS)


def _parse_label(label: str) -> Regimen:
    from ..regimens import parse_regimen

    return parse_regimen(label)


def result_rows_tidy(result: EvaluationResult) -> list[dict]:
    """Tidy rows (:data:`TIDY_COLUMNS`): every lesion row, then every composite row."""
    return [
        {k: _clean(v) for k, v in _row_dict(r).items()} for r in result.rows + result.composite_rows
    ]


CSV_FLAG_COLUMNS: tuple[str, ...] = ("planned", "recommended", "chosen")
"""Columns ``evaluate --format csv`` adds after :data:`TIDY_COLUMNS`: whether the row's regimen
is the lesion's planned, recommended and chosen one (``true``/``false``). A composite row
(regimen ``composite``) belongs to the chosen combination: ``chosen`` is true, ``planned`` and
``recommended`` say whether that combination is every lesion's planned / recommended regimen."""

CSV_SIGNIFICANT_DIGITS = 6
"""Numbers in the CSV are rounded to 6 significant digits (149.60000000000002 → 149.6;
0.0123456789 → 0.0123457): well below any tolerance the engine claims."""


def csv_number(value):
    """A float rounded to :data:`CSV_SIGNIFICANT_DIGITS` significant digits (other values
    unchanged): ``149.60000000000002`` → ``149.6``."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.{CSV_SIGNIFICANT_DIGITS}g}")
    return value


_csv_number = csv_number


def regimen_flags(planned: dict[str, str], recommended: dict[str, str], chosen: dict[str, str],
                  lesion_id: str, regimen: str) -> tuple[bool, bool, bool]:
    """(planned, recommended, chosen) of a tidy row (:data:`CSV_FLAG_COLUMNS`), from lesion
    id → regimen label maps. A composite row belongs to the chosen combination: chosen, and
    planned/recommended when that combination is every lesion's planned/recommended one."""
    if regimen == "composite":
        return (all(chosen.get(lid) == lab for lid, lab in planned.items()),
                all(chosen.get(lid) == lab for lid, lab in recommended.items()), True)
    return (planned.get(lesion_id) == regimen, recommended.get(lesion_id) == regimen,
            chosen.get(lesion_id) == regimen)


def result_to_csv(result: EvaluationResult, *, drop_not_evaluable: bool = False) -> str:
    """The tidy rows (:func:`result_rows_tidy`) as CSV text: header :data:`TIDY_COLUMNS` then
    :data:`CSV_FLAG_COLUMNS`, ``\n`` line ends, numbers to :data:`CSV_SIGNIFICANT_DIGITS`
    significant digits, an empty cell for a value that is not evaluable or absent; a
    formula-like text cell gets a leading ``'`` (:func:`rtplan_assist.escape.csv_cell`).
    ``drop_not_evaluable`` leaves out the rows of status ``not evaluable`` (the verdict is
    not changed by what the file shows)."""
    from ..escape import csv_cell

    planned = {les.lesion_id: les.planned.label for les in result.lesions}
    recommended = {lid: r.label for lid, r in result.recommendation.choice.items()}
    chosen = {lid: r.label for lid, r in result.choice.items()}

    buffer = io.StringIO()
    rows = result.rows + result.composite_rows
    if any(type(r) is not ResultRow for r in rows):  # other records: their own fields
        writer = csv.DictWriter(buffer, fieldnames=list(TIDY_COLUMNS) + list(CSV_FLAG_COLUMNS),
                                lineterminator="\n")
        writer.writeheader()
        for row in result_rows_tidy(result):
            if drop_not_evaluable and row["status"] == "not evaluable":
                continue
            cells = {k: "" if v is None else csv_cell(_csv_number(v)) for k, v in row.items()}
            flags = regimen_flags(planned, recommended, chosen, row["lesion_id"], row["regimen"])
            cells.update({k: "true" if f else "false" for k, f in zip(CSV_FLAG_COLUMNS, flags)})
            writer.writerow(cells)
        return buffer.getvalue()
    # the same cells from the rows' field values, each value cleaned (:func:`_clean`) and
    # made a cell as above, each distinct text once (6,000+ rows x 23 fields)
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(TIDY_COLUMNS) + list(CSV_FLAG_COLUMNS))
    texts: dict[str, str] = {}
    flag_text = {True: "true", False: "false"}
    isfinite = math.isfinite
    for row, values in zip(rows, map(_ROW_VALUES, rows)):
        if drop_not_evaluable and row.status == "not evaluable":
            continue
        cells = []
        for value in values:
            kind = type(value)
            if kind is str:
                cell = texts.get(value)
                if cell is None:
                    cell = texts[value] = csv_cell(value)
            elif value is None:
                cell = ""
            elif kind is float:
                cell = csv_number(value) if isfinite(value) else ""
            else:
                value = _clean(value)
                cell = "" if value is None else csv_cell(_csv_number(value))
            cells.append(cell)
        flags = regimen_flags(planned, recommended, chosen, row.lesion_id, row.regimen)
        cells += [flag_text[bool(f)] for f in flags]
        writer.writerow(cells)
    return buffer.getvalue()


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _regimen_summary(result: EvaluationResult) -> list[dict]:
    out = []
    # the rows grouped once by lesion and regimen label, in their order (not a pass over
    # every row per lesion x regimen)
    groups: dict[tuple[str, str], list[ResultRow]] = {}
    for r in result.rows:
        groups.setdefault((r.lesion_id, r.regimen), []).append(r)
    for lesion in result.lesions:
        lid = lesion.lesion_id
        labels = sorted(
            {_parse_label(label) for (row_lid, label) in groups if row_lid == lid},
            key=lambda g: -g.bed10_gy(),
        )
        for reg in labels:
            rows = groups.get((lid, reg.label), [])
            fails = [r for r in rows if r.priority == "mandatory" and r.status == "fail"]
            ne = [r for r in rows if r.status == "not evaluable" and r.structure]
            ptv = {r.metric: r for r in rows if r.role == "target" and r.kind == "physical"}
            gtv = next((r for r in rows if r.role == "target" and r.metric == "Mean[Gy]"), None)
            out.append(
                {
                    "lesion": lid,
                    "regimen": reg.label,
                    "bed10": reg.bed10_gy(),
                    "eqd2": reg.eqd2_10_gy(),
                    "ablative": reg.bed10_gy() >= ABLATIVE_BED10_GY - 1e-9,
                    "d95": ptv.get("D95%[Gy]").value if "D95%[Gy]" in ptv else math.nan,
                    "gtv_bed": gtv.value if gtv else math.nan,
                    "fails": fails,
                    "not_evaluable": ne,
                    # issue 12: no evaluable mandatory OAR row (or a mandatory row of a present
                    # structure without a value) is "not evaluable", never "pass"
                    "status": rows_verdict(rows),
                    "chosen": result.choice.get(lid) == reg,
                    "planned": lesion.planned == reg,
                }
            )
    return out


def result_to_text(result: EvaluationResult) -> str:
    """A readable terminal summary: lesions × regimens, composite, recommendation."""
    lines = [
        f"Patient {result.patient_id}  "
        + (result.folder if result.folder.startswith("(") else f"({result.folder})"),
        f"Verdict for the shown choice: {result.verdict().upper()}",
        basis_line(result),
        "",
    ]
    for lesion in result.lesions:
        lines.append(
            f"{lesion.lesion_id}  {lesion.label}  site {lesion.site}  target {lesion.target.name}"
            f"  planned {lesion.planned.label}"
        )
    lines.append("")
    header = f"{'':2}{'lesion':6} {'regimen':10} {'BED10':>7} {'EQD2':>7} {'D95%':>7} {'GTV BED10':>9}  OARs (mandatory)"
    lines += [header, "-" * len(header)]
    for s in _regimen_summary(result):
        mark = "*" if s["chosen"] else (" " if not s["planned"] else "p")
        if s["fails"]:
            worst = max(s["fails"], key=excess)
            oars = (
                f"FAIL {len(s['fails'])}: {worst.structure} {worst.metric} {_fmt(worst.value)} "
                f"{NEGATION[worst.comparator]} {_fmt(worst.limit)}"
            )
        elif s["status"] != "pass":
            why = next((r for r in s["not_evaluable"] if r.priority == "mandatory"), None)
            oars = "NOT EVALUABLE" + (
                f": {why.organ} (no cited limit)" if why is not None and "no cited limit" in why.reason
                else f": {why.structure} {why.metric}" if why is not None
                else ": no mandatory OAR row could be evaluated"
            )
        else:
            oars = "pass"
        lines.append(
            f"{mark:2}{s['lesion']:6} {s['regimen']:10} {s['bed10']:7.1f} {s['eqd2']:7.1f} "
            f"{_fmt(s['d95']):>7} {_fmt(s['gtv_bed'], 1):>9}  {oars}"
            + ("" if s["ablative"] else "  (BED10 < 100)")
        )
    lines += [
        "",
        "* recommended/chosen, p planned",
        "",
        ("Composite (sum of voxel EQD2, each lesion its own n; mandatory rows decide the "
         "verdict, advisory rows are listed when over their limit):"),
    ]
    for r in result.composite_rows:
        if not r.structure or r.priority not in ("mandatory",) and r.status not in ("fail",):
            continue
        ab = f"α/β {r.alpha_beta_gy:g}" if r.alpha_beta_gy is not None else "physical sum"
        pri = "" if r.priority == "mandatory" else f" ({r.priority})"
        # an advisory row over its limit never reads as a bare "fail" beside a PASS verdict
        status = r.status if r.priority == "mandatory" else "advisory over"
        lines.append(
            f"  {status:13} {r.structure:14} {r.metric:16} {_fmt(r.value):>8} {r.comparator:2} "
            f"{_fmt(r.limit):>8} {r.unit}  {ab}  [{r.source}, n={r.converted_from_fractions}]{pri}"
        )
    rec = result.recommendation
    lines += ["", "Recommendation (why, in words):"]
    for lesion in result.lesions:
        lid = lesion.lesion_id
        lines.append(f"  {lid}: {rec.choice[lid].label} (planned {lesion.planned.label})")
        lines += [f"    - {r.text}" for r in lesion_reasons(result, lid)]
    lines.append(f"  - {composite_reason(result).text}")
    lines += ["", "Details of the search (sources, CSV lines, objective):"]
    lines += [f"  - {text}" for text in rec.explanation]
    if result.warnings:
        lines += ["", "Warnings:"] + [f"  - {w}" for w in result.warnings]
    lines += ["", "Caveats:"] + [f"  - {c}" for c in result.caveats]
    return "\n".join(lines) + "\n"




def _disclosure(summary: str, body: str) -> str:
    return f"<details><summary>{html.escape(summary)}</summary>{body}</details>"


def organ_summary(rows: list[ResultRow]) -> list[tuple[str, str, ResultRow | None, int]]:
    """One entry per organ of ``rows`` (one lesion at one regimen, or the composite):
    ``(organ name, worst status of its deciding rows, the deciding row closest to or furthest
    past its limit (None without a value), number of rows)``. Deciding rows: the mandatory
    ones when the organ has any, else every row (then the status is advisory). Sorted: fail,
    not evaluable, goal missed, pass; then by % of limit, highest first."""
    order = {"fail": 0, "not evaluable": 1, "goal missed": 2, "pass": 3, "info": 4}
    groups: dict[str, list[ResultRow]] = {}
    for r in rows:
        if r.role == "target":
            continue
        groups.setdefault(r.structure or r.organ, []).append(r)
    out = []
    for name, items in groups.items():
        mandatory = [r for r in items if r.priority == "mandatory"]
        deciding = mandatory or items
        status = min((r.status for r in deciding), key=lambda st: order.get(st, 5))
        if not mandatory:  # advisory rows only: they never decide the verdict
            judged = [r.status for r in items if r.status in ("fail", "goal missed", "pass")]
            status = "advisory " + (min(judged, key=lambda st: order.get(st, 5)) if judged
                                    else "not evaluable")
            if any("no cited limit" in r.reason for r in items):
                status += " (no cited limit)"
        valued = [r for r in deciding if not math.isnan(percent_of_limit(r))]
        closest = max(valued, key=percent_of_limit) if valued else None
        out.append((name, status, closest, len(items)))
    out.sort(key=lambda t: (order.get(t[1], 5 if not t[1].startswith("advisory") else 6),
                            -(percent_of_limit(t[2]) if t[2] is not None else -1.0)))
    return out


def _organ_table(rows: list[ResultRow]) -> str:
    e = html.escape
    body = []
    absent = sorted({r.organ for r in rows if not r.structure and r.role != "target"}
                    - {r.organ for r in rows if r.structure})
    for name, status, row, n in organ_summary([r for r in rows if r.structure
                                               or r.role == "target"
                                               or r.organ not in absent]):
        colour = status_style(status.replace("advisory ", "")).background \
            if not status.startswith("advisory") else "#f1f3f5"
        if row is None:
            body.append(f"<tr style='background:{colour}'><td>{e(name)}</td><td>{e(status)}"
                        f"</td><td colspan=6>no value ({n} row(s))</td></tr>")
            continue
        kind = quantity_words(row)
        body.append(
            f"<tr style='background:{colour}'><td>{e(name)}</td><td>{e(status)}</td>"
            f"<td>{e(row.metric)} ({e(kind)})</td><td>{_fmt(row.value)} {e(row.unit)}</td>"
            f"<td>{e(row.comparator)} {_fmt(row.limit)} {e(row.unit)}</td>"
            f"<td>{percent_of_limit(row):.0f} %</td><td>{e(limit_words(row))}"
            f"{_disclosure('details', f'<small>{e(row_details(row))}</small>')}</td>"
            f"<td>{n}</td></tr>")
    return ("<table><thead><tr><th>organ</th><th>status</th><th>closest metric</th>"
            "<th>value</th><th>limit</th><th>% of limit</th><th>source</th><th>rows</th>"
            "</tr></thead><tbody>" + "".join(body) + "</tbody></table>"
            + (f"<p><small>Not evaluable, no structure in the case: {e(', '.join(absent))}"
               "</small></p>" if absent else ""))


def _reason_li(reason) -> str:
    """A plain-language reason as a list item, its sources behind a "details" disclosure."""
    e = html.escape
    if not reason.details:
        return f"<li>{e(reason.text)}</li>"
    return (f"<li>{e(reason.text)} <details><summary>details</summary>"
            f"<small>{e(reason.details)}</small></details></li>")


def result_to_html(result: EvaluationResult) -> str:
    """A self-contained HTML page (no scripts, no external files) of the result."""
    e = html.escape

    def table(rows: list[ResultRow]) -> str:
        cols = (
            "lesion_id",
            "regimen",
            "structure",
            "organ",
            "metric",
            "value",
            "unit",
            "kind",
            "model",
            "alpha_beta_gy",
            "comparator",
            "limit",
            "goal",
            "status",
            "priority",
            "source",
            "reason",
        )
        out = [
            "<table><thead><tr>"
            + "".join(f"<th>{e(c)}</th>" for c in cols)
            + "</tr></thead><tbody>"
        ]
        for r in rows:
            d = _row_dict(r)  # flat record: asdict's deep copy gives the same values
            colour = status_style(r.status).background
            out.append(
                f'<tr style="background:{colour}">'
                + "".join(
                    f"<td>{e(_fmt(d[c]) if isinstance(d[c], float) or d[c] is None else str(d[c]))}</td>"
                    for c in cols
                )
                + "</tr>"
            )
        out.append("</tbody></table>")
        return "\n".join(out)

    rec = result.recommendation
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>rtplan-assist evaluation {e(result.patient_id)}</title>",
        (
            "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;"
            "font-size:12px}td,th{border:1px solid #ccc;padding:2px 5px;vertical-align:top}"
            "th{background:#f1f3f5}h2{margin-top:1.5em}</style></head><body>"
        ),
        f"<h1>Evaluation of patient {e(result.patient_id)}</h1>",
        (
            f"<p>Folder: {e(result.folder)}<br>Verdict for the shown choice: "
            f"<b>{e(result.verdict())}</b><br>{e(basis_line(result))}</p>"
        ),
        "<h2>Recommendation</h2><ul>",
    ]
    for lesion in result.lesions:
        lid = lesion.lesion_id
        parts.append(f"<li><b>{e(lid)}</b>: {e(rec.choice[lid].label)} (planned "
                     f"{e(lesion.planned.label)})<ul>")
        parts += [_reason_li(r) for r in lesion_reasons(result, lid)]
        parts.append("</ul></li>")
    parts.append(_reason_li(composite_reason(result)))
    parts.append("</ul><details><summary>Details of the search (sources, CSV lines, "
                 "objective)</summary><ul>")
    parts += [f"<li>{e(t)}</li>" for t in rec.explanation]
    parts.append(
        "</ul></details><h2>Lesions × regimens</h2><table><thead><tr><th>lesion</th>"
        "<th>regimen</th><th>BED10 (Gy)</th><th>EQD2 (Gy)</th><th>PTV D95% (Gy)</th>"
        "<th>GTV mean BED10 (Gy)</th><th>mandatory OAR</th></tr></thead><tbody>"
    )
    for s in _regimen_summary(result):
        fails = "; ".join(
            f"{r.structure} {r.metric} {_fmt(r.value)} > {_fmt(r.limit)}" for r in s["fails"]
        )
        state = "fail" if s["fails"] else s["status"]
        colour = (STATUS_STYLE.get(state) or STATUS_STYLE["pass"]).background
        chosen = " (chosen)" if s["chosen"] else ""
        if not fails and state != "pass":
            fails = "not evaluable"""
        parts.append(
            f"<tr style='background:{colour}'><td>{e(s['lesion'])}</td><td>{e(s['regimen'])}{chosen}</td>"
            f"<td>{s['bed10']:.1f}</td><td>{s['eqd2']:.1f}</td><td>{_fmt(s['d95'])}</td>"
            f"<td>{_fmt(s['gtv_bed'], 1)}</td><td>{e(fails or 'pass')}</td></tr>"
        )
    parts.append("</tbody></table>")
    # issue 14: one row per organ by default (its worst mandatory status and the row closest
    # to its limit); every row behind a collapsed disclosure (the page was 180,000 px tall)
    parts.append(
        f"<h2>Composite (EQD2), one row per organ</h2><p>{e(composite_reason(result).text)}</p>"
        + _organ_table(result.composite_rows)
        + _disclosure(f"every composite row ({len(result.composite_rows)})",
                      table(result.composite_rows)))
    shown = result.chosen_rows()
    for lesion in result.lesions:
        lid = lesion.lesion_id
        mine = [r for r in shown if r.lesion_id == lid]
        parts.append(
            f"<h2>{e(lid)} {e(lesion.label)} at {e(result.choice[lid].label)} (shown), one "
            "row per organ</h2>" + _organ_table(mine)
            + _disclosure(f"every row of {lid} at {result.choice[lid].label} ({len(mine)})",
                          table(mine)))
    parts.append("<h2>Every lesion row, every regimen</h2>"
                 + _disclosure(f"{len(result.rows)} rows", table(result.rows)))
    parts.append(
        "<h2>Warnings</h2><ul>" + "".join(f"<li>{e(w)}</li>" for w in result.warnings) + "</ul>"
    )
    parts.append(
        "<h2>Caveats</h2><ul>" + "".join(f"<li>{e(c)}</li>" for c in result.caveats) + "</ul>"
    )
    parts.append(
        f"<p><small>rtplan-assist {e(__version__)}; tables: "
        f"{e(', '.join(result.provenance.get('tables', [])))}</small></p></body></html>"
    )
    return "\n".join(parts)
