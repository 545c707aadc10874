"""Components of the screens as plain functions of evaluation results (no callbacks, no state).

Every number leaves here with its unit, its kind (physical, EQD2, BED) and, when it is not a
physical dose, its model and α/β; every status is a coloured badge *with* its text.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import dash_bootstrap_components as dbc
from dash import dcc, html

from rtplan_assist.escape import markdown_html
from rtplan_assist.metrics import parse_metric
from rtplan_assist.status import PRIORITY_RANK, status_style


__all__ = [
    "STATUS_ORDER",
    "comparison_table",
    "comparison_table_html",
    "composite_table",
    "fmt_number",
    "kind_text",
    "limit_text",
    "status_badge",
    "verdict_alert",
    "worst_first",
    "worst_status",
]

#: Severity order of the statuses of :mod:`rtplan_assist.status`, worst last.
STATUS_ORDER = ("info", "pass", "not evaluable", "goal missed", "fail")


def fmt_number(value, unit: str = "", digits: int = 2) -> str:
    """``"12.35 Gy"``; ``"n/e"`` for NaN or None (not evaluable)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/e"
    text = f"{float(value):.{digits}f}"
    return f"{text} {unit}".strip()


def kind_text(row) -> str:
    """``"physical"``, or ``"EQD2, LQ α/β = 3 Gy"`` for a radiobiological quantity."""
    kind = getattr(row, "kind", "") or ""
    if kind.lower() == "physical" or not kind:
        return "physical"
    model = getattr(row, "model", "") or ""
    ab = getattr(row, "alpha_beta_gy", None)
    parts = [kind]
    if model and "α/β" in model:
        parts.append(model)
    else:
        if model:
            parts.append(model)
        if ab is not None and not (isinstance(ab, float) and math.isnan(ab)):
            parts.append(f"α/β = {ab:g} Gy")
    return ", ".join(parts[:1]) + (" (" + ", ".join(parts[1:]) + ")" if parts[1:] else "")


def limit_text(row) -> str:
    """``"≤ 30.00 Gy"`` (limit) and ``"goal ≤ 25.00 Gy"`` when there is a goal."""
    if row.limit is None or (isinstance(row.limit, float) and math.isnan(row.limit)):
        return ""
    comp = {"<=": "≤", ">=": "≥", "<": "<", ">": ">"}.get(row.comparator, row.comparator or "")
    text = f"{comp} {fmt_number(row.limit, row.unit)}"
    goal = getattr(row, "goal", None)
    if goal is not None and not (isinstance(goal, float) and math.isnan(goal)):
        text += f"; goal {comp} {fmt_number(goal, row.unit)}"
    return text


def status_badge(status: str, *, small: bool = False) -> html.Span:
    """A coloured badge that also says the status in words."""
    style = status_style(status)
    colour, text = style.colour, style.badge
    dark_text = status == "goal missed"
    return html.Span(
        text,
        className="badge status-badge" + (" badge-sm" if small else ""),
        style={"backgroundColor": colour, "color": "#212529" if dark_text else "white"},
        title=status,
        **{"data-status": status},
    )


def worst_first(rows: Iterable) -> list:
    """``rows`` sorted fail, goal missed, not evaluable, then the others (pass, info), each
    group by structure name."""
    rank = {"fail": 0, "goal missed": 1, "not evaluable": 2}
    return sorted(rows, key=lambda r: (rank.get(r.status, 3), r.structure))


def worst_status(statuses: Iterable[str]) -> str:
    """The most severe status (``fail`` > ``goal missed`` > ``not evaluable`` > ``pass``)."""
    worst = "info"
    for s in statuses:
        if s in STATUS_ORDER and STATUS_ORDER.index(s) > STATUS_ORDER.index(worst):
            worst = s
    return worst


def _converted_note(row) -> str:
    src = getattr(row, "converted_from_fractions", None)
    if src:
        return f"† limit converted from {src} fx (LQ, α/β = {row.alpha_beta_gy:g} Gy)"
    return ""


def _badge_html(status: str, *, small: bool = False) -> str:
    """:func:`status_badge` as HTML text (for tables rendered as one component)."""
    style = status_style(status)
    colour, text = style.colour, style.badge
    fg = "#212529" if status == "goal missed" else "white"
    return (f'<span class="badge status-badge{" badge-sm" if small else ""}" '
            f'style="background-color:{_e(colour)};color:{fg}" title="{_e(status)}" '
            f'data-status="{_e(status)}">{_e(text)}</span>')


def _e(value) -> str:
    """Text for the comparison table's raw HTML inside ``dcc.Markdown``: HTML-escaped, and
    Markdown characters and line breaks as character references, so that an ROI name with a
    blank line cannot end the HTML block and become Markdown (links, images)."""
    return markdown_html(value)


def _cell_html(row) -> str:
    value = f'<span class="fw-semibold">{_e(fmt_number(row.value, row.unit))}</span>'
    if row.role == "oar" or row.limit is not None:
        value += " " + _badge_html(row.status, small=True)
    parts = [f"<div>{value}</div>", f'<div class="cell-kind">{_e(kind_text(row))}</div>']
    if metric_family(row.metric) != row.metric:
        parts.append(f'<div class="cell-kind">{_e(row.metric)}</div>')
    limit = limit_text(row)
    if limit:
        parts.append(f'<div class="cell-limit">{_e(limit)}</div>')
    conv = _converted_note(row)
    if conv:
        parts.append(f'<div class="cell-converted">{_e(conv)}</div>')
    if row.status == "not evaluable" and row.reason:
        parts.append(f'<div class="cell-reason">{_e(row.reason)}</div>')
    marker = robustness_marker(row)
    if marker:
        parts.append(f'<div class="cell-fragile">{_e(marker)}</div>')
    return f'<td class="status-{_e(row.status.replace(" ", "-"))}">{"".join(parts)}</td>'


def robustness_marker(row) -> str:
    """Visible text for a verdict that flips within the α/β range or the borderline band
    (issue 13, ``ResultRow.robustness``); empty for robust rows."""
    if getattr(row, "robustness", "") != "fragile":
        return ""
    note = getattr(row, "robustness_note", "").split("; ")[0]
    return f"⚠ fragile: {note.removeprefix('flips: ')}"


def metric_family(metric: str) -> str:
    """The row a metric belongs to: ``V``/``CV`` metrics lose their dose threshold, which a
    converted limit changes per regimen (``CV15.88Gy[cc]`` and ``CV22.07Gy[cc]`` -> ``CV[cc]``,
    with the threshold shown in each cell)."""
    try:
        m = parse_metric(metric)
    except Exception:  # noqa: BLE001 - an unparsable metric is its own row
        return metric
    if m.kind in ("V", "CV"):
        return f"{m.kind}(dose)[{m.out_unit}]"
    return metric


def _row_key(row) -> tuple:
    return (row.role, row.structure or row.organ, metric_family(row.metric),
            row.kind if row.role == "target" else "")


def comparison_table(rows_by_regimen: Mapping[str, Sequence], *, chosen: str | None,
                     recommended: str | None, binding: str | None = None) -> html.Div:
    """Regimens as columns; target rows, then one row per OAR constraint.

    The table is one HTML text in one ``dcc.Markdown`` (every value escaped): as Dash
    components (some 2,000 for 11 regimens × 60 rows) the browser took about 10 s to draw each
    regimen change.

    Parameters
    ----------
    rows_by_regimen : mapping regimen label -> ResultRow list (``lesion_rows``)
    chosen, recommended : regimen labels
    binding : str
        The binding constraint of the recommended regimen (text from the recommendation).
    """
    return html.Div([
        html.Div(_recommendation_caption(recommended, binding), className="mb-2",
                 id="recommendation-caption"),
        dcc.Markdown(comparison_table_html(rows_by_regimen, chosen=chosen,
                                           recommended=recommended),
                     dangerously_allow_html=True, className="comparison-table-box"),
        _absent_note(rows_by_regimen),
    ])


def _recommendation_caption(recommended: str | None, binding: str | None) -> list:
    if not (recommended and binding):
        return []
    return [html.Span(["Recommended ", html.B(recommended), "; binding constraint: ",
                       html.B(binding)])]


def _absent_note(rows_by_regimen: Mapping[str, Sequence]):
    absent = sorted({r.organ for rows in rows_by_regimen.values() for r in rows
                     if r.role == "oar" and not r.structure})
    if not absent:
        return None
    return html.P([html.B("Constrained organs absent from the case (rows not evaluable): "),
                   ", ".join(absent)], className="small")


def comparison_table_html(rows_by_regimen: Mapping[str, Sequence], *, chosen: str | None,
                          recommended: str | None) -> str:
    """The comparison table as HTML (``<table id="comparison-table">``), on one line.

    Header cells carry ``data-regimen`` and the classes ``col-chosen``/``col-recommended``;
    body cells ``status-<status>``. Organs the case lacks are left out (listed under the
    table) and, as in the engine's verdict, do not decide a regimen's status.
    """
    labels = list(rows_by_regimen)
    order: dict[tuple, object] = {}
    cells: dict[tuple, dict[str, object]] = {}
    for label, rows in rows_by_regimen.items():
        for row in rows:
            if row.role == "oar" and not row.structure:
                continue
            key = _row_key(row)
            order.setdefault(key, row)
            cells.setdefault(key, {})[label] = row

    def sort_key(item):
        row = item[1]
        prio = PRIORITY_RANK.get(getattr(row, "priority", ""), 9)
        return (0 if row.role == "target" else 1, not row.structure, prio, row.organ,
                row.structure, row.metric)

    head = ['<th class="col-metric">Structure · metric</th>']
    for label in labels:
        tags = ""
        if label == recommended:
            tags += ' <span class="badge bg-primary ms-1">recommended</span>'
        if label == chosen:
            tags += ' <span class="badge bg-dark ms-1">chosen</span>'
        worst = worst_status(
            r.status for r in rows_by_regimen[label] if r.role == "oar" and r.structure
        )
        classes = "col-regimen" + (" col-recommended" if label == recommended else "") + (
            " col-chosen" if label == chosen else "")
        head.append(f'<th class="{classes}" data-regimen="{_e(label)}"><div>{_e(label)}{tags}'
                    f"</div>{_badge_html(worst, small=True)}</th>")
    body = []
    for key, row in sorted(order.items(), key=sort_key):
        what = ("target" if row.role == "target" else (row.organ or "OAR")) + (
            f" · {row.source}" if getattr(row, "source", "") else "")
        name = f"{row.structure or row.organ} · {metric_family(row.metric)}"
        first = f'<div class="fw-semibold">{_e(name)}</div><div class="cell-source">{_e(what)}</div>'
        tds = [f"<td>{first}</td>"]
        for label in labels:
            r = cells[key].get(label)
            tds.append(_cell_html(r) if r is not None else '<td class="text-muted">—</td>')
        body.append(f"<tr>{''.join(tds)}</tr>")
    return ('<div class="table-responsive"><table id="comparison-table" class="table '
            'table-sm table-bordered table-hover comparison-table">'
            f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            "</div>")


def composite_table(rows: Sequence, contributors: Mapping[str, list[str]] | None = None,
                    *, compact: bool = False) -> dbc.Table:
    """Composite OAR rows (EQD2): structure, metric, value, limit, status, contributing lesions.

    ``contributors`` maps a structure name to its contributing lesions (text); ``compact``
    leaves out the reason and the source (the lesion screen's summary).
    """
    contributors = contributors or {}
    titles = ["Structure", "Metric", "Composite value", "Limit", "Status", "Contributing lesions"]
    if not compact:
        titles.append("Source")
    body = []
    for row in rows:
        if row.role != "oar":
            continue
        contrib = contributors.get(row.structure) or []
        status = [status_badge(row.status)]
        if robustness_marker(row):
            status.append(html.Div(robustness_marker(row), className="cell-fragile"))
        if row.reason and not compact:
            status.append(html.Details([html.Summary("why"), row.reason],
                                       className="cell-reason"))
        cells = [
            html.Td(row.structure),
            html.Td(row.metric),
            html.Td([html.Div(fmt_number(row.value, row.unit), className="fw-semibold"),
                     html.Div(kind_text(row), className="cell-kind")]),
            html.Td([limit_text(row), html.Div(_converted_note(row), className="cell-converted")]),
            html.Td(status),
            html.Td(", ".join(contrib) if contrib else "—", className="small"),
        ]
        if not compact:
            cells.append(html.Td(row.source or "", className="cell-source"))
        body.append(html.Tr(cells, className=f"status-{row.status.replace(' ', '-')}"))
    return dbc.Table([html.Thead(html.Tr([html.Th(t) for t in titles])), html.Tbody(body)],
                     bordered=True, hover=True, size="sm", responsive=True,
                     id="composite-table", className="composite-table")


def verdict_alert(status: str, explanation: Sequence[str] = ()) -> dbc.Alert:
    """The overall verdict with its colour and its words."""
    colour = {"pass": "success", "goal missed": "warning", "fail": "danger"}.get(status,
                                                                                  "secondary")
    words = {"pass": "All composite OAR limits met", "goal missed": "Limits met, goals missed",
             "fail": "A composite OAR limit is exceeded",
             "not evaluable": "Some composite constraints are not evaluable"}.get(status, status)
    return dbc.Alert([html.Div([status_badge(status), " ", html.B(words)], id="verdict"),
                      html.Ul([html.Li(t) for t in explanation], className="mb-0 mt-2")
                      if explanation else None], color=colour, className="mb-3")


def progress_panel() -> html.Div:
    """Progress bar and status line of the background load (shown while it runs)."""
    return html.Div([
        html.Div("Loading patient…", className="fw-semibold"),
        html.Progress(id="load-progress", value="0", max="1", style={"width": "100%"}),
        html.Div(id="load-status", className="small text-muted"),
    ], id="load-panel", style={"display": "none"}, className="mb-3")


def graph(id_: str, figure=None, height: int | None = None) -> dcc.Graph:
    style = {"height": f"{height}px"} if height else None
    return dcc.Graph(id=id_, figure=figure or {}, config={"displaylogo": False}, style=style)
