"""Components of the composite / MDT page as plain functions of an evaluation result.

The page answers, in order: what is chosen (and where it differs from the recommendation and
the plan), whether the composite of that choice passes, and how close each composite limit is
(headroom: the value as a percentage of its limit, and the margin in the limit's unit),
tightest first. Algorithm statistics (combinations visited, evaluations) are not shown here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import dash_bootstrap_components as dbc
from dash import dcc, html

from rtplan_assist.evaluation.objective import relative_margin
from rtplan_assist.evaluation.reasons import (
    limit_words,
    metric_words,
    percent_of_limit,
    row_details,
)

from .views import fmt_number, kind_text, limit_text, status_badge

__all__ = ["choice_table", "headroom_key", "headroom_table", "headroom_text", "reason_block"]


def headroom_key(row) -> tuple:
    """Sort key, tightest first: rows by the engine's relative margin
    (:func:`~rtplan_assist.evaluation.objective.relative_margin`, negative when the limit is
    exceeded); rows without a value or a limit last, by structure."""
    margin = relative_margin(row)
    if math.isnan(margin):
        return (1, 0.0, row.structure or row.organ, row.metric)
    return (0, margin, row.structure, row.metric)


def headroom_text(row) -> tuple[str, str]:
    """``("97 % of limit", "margin 0.62 Gy")`` or ``("127 % of limit", "over by 14.8 Gy")``;
    ``("n/e", "")`` when the row has no value or no limit."""
    pct = percent_of_limit(row)
    margin = relative_margin(row)
    if math.isnan(pct) or math.isnan(margin):
        return "n/e", ""
    absolute = abs(margin * (abs(row.limit) if row.limit else 1.0))
    words = "margin" if margin >= 0 else "over by"
    return f"{pct:.0f} % of limit", f"{words} {fmt_number(absolute, row.unit)}"


def _source_cell(row) -> list:
    """Where the limit comes from in words (:func:`~rtplan_assist.evaluation.reasons.limit_words`:
    source name, fraction number, conversion), the source key and CSV line behind
    "details"."""
    words = limit_words(row)
    if not (row.converted_from_fractions or row.constraint_fractions):
        ab = f", LQ, α/β = {row.alpha_beta_gy:g} Gy" if row.alpha_beta_gy else ""
        words += (f" (published as an EQD2 limit{ab}; no fraction number)"
                  if row.kind == "EQD2" else " (the source gives no fraction number)")
    return [html.Div(words),
            html.Details([html.Summary("details"), row_details(row)], className="cell-reason")]


def headroom_table(rows: Sequence, contributors: Mapping[str, list[str]] | None = None, *,
                   table_id: str, advisory: bool = False) -> dbc.Table:
    """Composite OAR rows sorted by headroom, tightest first.

    Columns: structure, metric, composite value (with kind, model, α/β), limit (with its
    source and fraction number), headroom (% of limit and margin), status, contributing
    lesions. ``advisory`` marks the status as not deciding the verdict.
    """
    contributors = contributors or {}
    titles = ["Structure", "Metric", "Composite value", "Limit", "Headroom", "Status",
              "Contributing lesions (each one's Dmax, EQD2 at the organ's α/β)",
              "Source of the limit"]
    body = []
    for row in sorted(rows, key=headroom_key):
        pct, margin = headroom_text(row)
        status = [status_badge(row.status)]
        if advisory:
            status.append(html.Div("advisory: does not decide the verdict",
                                   className="cell-kind"))
        if row.reason:
            status.append(html.Details([html.Summary("details"), row.reason],
                                       className="cell-reason"))
        contrib = contributors.get(row.structure) or []
        body.append(html.Tr([
            html.Td(row.structure),
            html.Td([html.Div(metric_words(row.metric)),
                     html.Div(row.metric, className="cell-kind")]),
            html.Td([html.Div(fmt_number(row.value, row.unit), className="fw-semibold"),
                     html.Div(kind_text(row), className="cell-kind")]),
            html.Td(limit_text(row)),
            html.Td([html.Div(pct, className="fw-semibold"),
                     html.Div(margin, className="cell-kind")],
                    className="cell-headroom"),
            html.Td(status),
            html.Td(", ".join(contrib) if contrib else "—", className="small"),
            html.Td(_source_cell(row), className="cell-source"),
        ], className=f"status-{row.status.replace(' ', '-')}"))
    return dbc.Table([html.Thead(html.Tr([html.Th(t) for t in titles])), html.Tbody(body)],
                     bordered=True, hover=True, size="sm", responsive=True, id=table_id,
                     className="composite-table mdt-headroom")


def reason_block(reasons: Sequence) -> list:
    """Plain-language reasons (:mod:`rtplan_assist.evaluation.reasons`), each with its source
    key, CSV line and the engine's text behind a "details" disclosure."""
    out = []
    for reason in reasons:
        item = [html.Div(reason.text, className=f"mdt-reason-{reason.kind}")]
        if reason.details:
            item.append(html.Details([html.Summary("details"), reason.details],
                                     className="cell-reason"))
        out.append(html.Div(item, className="mb-1"))
    return out


def choice_table(lesions: Sequence, chosen: Mapping, recommended: Mapping, planned: Mapping,
                 own_status: Mapping[str, str], reasons: Mapping[str, object]) -> dbc.Table:
    """One row per lesion: planned, recommended and chosen regimen (the chosen one
    highlighted when it differs from the recommendation), the chosen BED10 and the status
    of the lesion's own OAR constraints at the chosen regimen, and why (plain words with a
    "details" disclosure).

    ``reasons`` maps a lesion id to a component (or text) explaining the recommendation.
    """
    rows = []
    for les in lesions:
        lid = les.lesion_id
        c, r, p = chosen[lid], recommended[lid], planned[lid]
        differs = c.label != r.label
        chosen_cell = [html.B(c.label, id=f"composite-chosen-{lid}")]
        if differs:
            chosen_cell.append(html.Span("≠ recommended", className="badge mdt-differs ms-1"))
        rows.append(html.Tr([
            html.Td(dcc.Link(lid, href=f"/lesion/{lid}")),
            html.Td([html.Div(les.label), html.Div(les.site, className="cell-kind")]),
            html.Td(p.label, id=f"composite-planned-{lid}"),
            html.Td(r.label, id=f"composite-recommended-{lid}"),
            html.Td(chosen_cell, className="mdt-chosen-differs" if differs else None),
            html.Td(f"{c.bed10_gy():.1f} Gy (LQ, α/β = 10 Gy)"),
            html.Td(status_badge(own_status[lid])),
            html.Td(reasons.get(lid) or "—", className="small mdt-reason"),
        ], className="mdt-row-differs" if differs else None, **{"data-lesion": lid}))
    titles = ["Lesion", "Plan / site", "Planned", "Recommended", "Chosen", "BED10 (chosen)",
              "Own OAR limits (chosen)", "Why (plain words; details: source and CSV line)"]
    return dbc.Table([html.Thead(html.Tr([html.Th(t) for t in titles])), html.Tbody(rows)],
                     bordered=True, size="sm", id="chosen-table", className="mdt-choice")
