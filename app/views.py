"""Components of the screens as plain functions of evaluation results (no callbacks, no state).

Every number leaves here with its unit, its kind (physical, EQD2, BED) and, when it is not a
physical dose, its model and α/β; every status is a coloured badge *with* its text.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import dash_bootstrap_components as dbc
from dash import dcc, html

from rtplan_assist.metrics import parse_metric
from rtplan_assist.status import status_style


__all__ = [
    "STATUS_ORDER",
    "composite_table",
    "fmt_number",
    "kind_text",
    "limit_text",
    "metric_family",
    "robustness_marker",
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
