"""The lesion screen as plain functions of evaluation rows (no callbacks, no state): the sticky
summary of the decision and the regimen comparison table.

The table is built for an MDT that decides in seconds (issue 14): one row per organ by default
(its binding or closest constraint in each regimen, with the percentage of its limit), every
constraint on request; each regimen column carries two verdicts, its own OARs and the composite
with the other lesions as chosen; units, quantity, model and α/β are said once per row and in
the legend; sources, CSV lines and conversions sit behind a "details" disclosure and in each
cell's tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dash import dcc, html

from rtplan_assist.escape import markdown_html
from rtplan_assist.evaluation.reasons import percent_of_limit, row_sentence
from rtplan_assist.status import status_style

from .views import fmt_number, kind_text, metric_family, robustness_marker, status_badge

__all__ = [
    "ColumnVerdict",
    "comparison_table",
    "comparison_table_html",
    "lesion_summary",
    "quality_placeholder",
    "quality_section",
    "reason_lines",
]

#: How a cell's row is picked for the one-row-per-organ view: decisive rows first.
_DECISIVE = ("mandatory",)
#: A row's priority in the page's words (``report`` rows are advisory: they never decide).
_PRIORITY_WORDS = {"mandatory": "mandatory", "optimal": "optimal", "report": "advisory"}


@dataclass(frozen=True)
class ColumnVerdict:
    """The two verdicts of one regimen column.

    Attributes
    ----------
    own : str
        Verdict of the lesion's own mandatory OAR rows at this regimen (engine rule,
        :func:`rtplan_assist.evaluation.rows_verdict`).
    composite : str
        Verdict of the mandatory composite rows (EQD2, LQ, each organ's α/β) with this regimen
        for the lesion and the other lesions as chosen; ``""`` when not computed.
    composite_row : ResultRow or None
        The composite row that decides it (failing furthest, else closest to its limit).
    """

    own: str
    composite: str = ""
    composite_row: object = None


def _e(value) -> str:
    """HTML-escaped text safe inside the table's ``dcc.Markdown`` (no Markdown, no breaks)."""
    return markdown_html(value)


def _nan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _pct_text(row) -> str:
    pct = percent_of_limit(row)
    return "" if math.isnan(pct) else f"{pct:.0f} %"


def _comp(comparator: str) -> str:
    return {"<=": "≤", ">=": "≥", "<": "<", ">": ">"}.get(comparator, comparator or "")


def _decisive(row) -> bool:
    return getattr(row, "priority", "") in _DECISIVE


def _severity(row) -> tuple:
    """Sort key, worst first: decisive rows before others; fail, not evaluable (with a
    structure), then the highest percentage of the limit."""
    rank = {"fail": 0, "not evaluable": 1, "goal missed": 2, "pass": 3}.get(row.status, 4)
    pct = percent_of_limit(row)
    has_value = not math.isnan(pct)
    if not _decisive(row) and not has_value:
        rank = 5  # a non-decisive row without a value never stands for its organ
    return (0 if _decisive(row) else 1, rank, -(pct if has_value else -1.0))


def organ_cell_row(rows: Sequence):
    """The row that stands for an organ in one regimen column (compact view): its worst
    mandatory row (failing, not evaluable, else closest to the limit), else its closest
    optimal/advisory row with a value, else its first row."""
    return min(rows, key=_severity) if rows else None


def binding_row(rows: Sequence):
    """The decisive row closest to (or furthest past) its limit among ``rows`` (own and
    composite rows of one choice), or None when no mandatory row has a value."""
    candidates = [r for r in rows if _decisive(r) and r.structure and r.role == "oar"]
    failing = [r for r in candidates if r.status == "fail"]
    pool = failing or [r for r in candidates if not math.isnan(percent_of_limit(r))]
    if not pool:
        unjudged = [r for r in candidates if r.status == "not evaluable"]
        return unjudged[0] if unjudged else None
    return max(pool, key=lambda r: percent_of_limit(r) if not math.isnan(
        percent_of_limit(r)) else -1.0)


# ------------------------------------------------------------------------------ badges
def _badge(text: str, colour: str, *, dark: bool = False, title: str = "",
           status: str = "", extra: str = "") -> str:
    fg = "#212529" if dark else "white"
    data = f' data-status="{_e(status)}"' if status else ""
    return (f'<span class="badge status-badge badge-sm{extra}" style="background-color:'
            f'{_e(colour)};color:{fg}" title="{_e(title or status)}"{data}>{_e(text)}</span>')


def _status_badge_html(status: str, prefix: str = "") -> str:
    style = status_style(status)
    text = f"{prefix} {style.badge}".strip()
    return _badge(text, style.colour, dark=status == "goal missed", status=status)


def _nondecisive_badge(row) -> str:
    """Optimal and advisory rows do not decide the verdict: their badge says met / not met
    and the priority, never PASS/FAIL."""
    word = _PRIORITY_WORDS.get(row.priority, row.priority or "info")
    if row.status == "fail":
        return _badge(f"{word[:3]}. not met", "#fd7e14", dark=True, status=row.status,
                      title=f"{word} limit not met (does not decide the verdict)")
    if row.status in ("pass", "goal missed"):
        return _badge(f"{word[:3]}. met", "#adb5bd", dark=True, status=row.status,
                      title=f"{word} limit met (does not decide the verdict)")
    return _badge("N/E", "#6c757d", status=row.status, title=row.reason or "not evaluable")


# ------------------------------------------------------------------------------ cells
def _cell_title(row) -> str:
    """The tooltip of a cell: metric, quantity, limit with its source and conversion."""
    parts = [f"{row.structure or row.organ} {row.metric} ({kind_text(row)})"]
    if not _nan(row.limit):
        parts.append(f"limit {_comp(row.comparator)} {fmt_number(row.limit, row.unit)} "
                     f"at {row.constraint_fractions} fx, "
                     f"{_PRIORITY_WORDS.get(row.priority, row.priority)}")
    if row.converted_from_fractions:
        parts.append(f"converted from {row.converted_from_fractions} fx (LQ, α/β = "
                     f"{row.alpha_beta_gy:g} Gy)")
    if row.source:
        parts.append(row.source)
    if row.reason:
        parts.append(row.reason)
    return "; ".join(parts)


def _oar_cell(row, headline_metric: str) -> str:
    if row is None:
        return '<td class="text-muted">—</td>'
    status_class = row.status.replace(" ", "-")
    value = _nan(row.value)
    if _decisive(row):
        badge = _status_badge_html(row.status)
        status_class = f"status-{status_class}"
    else:
        badge = _nondecisive_badge(row)
        status_class = "status-advisory" + (" advisory-over" if row.status == "fail" else "")
    number = "n/e" if value else f"{row.value:.2f}"
    parts = [f'<span class="fw-semibold">{_e(number)}</span> {badge}']
    other = (f'<span class="cell-kind">{_e(row.metric)}</span> '
             if row.metric != headline_metric and row.metric and not _nan(row.limit) else "")
    if not _nan(row.limit):
        conv = (f'<span class="cell-converted"> †{row.converted_from_fractions}</span>'
                if row.converted_from_fractions else "")
        pct = _pct_text(row)
        pct_html = f'<span class="cell-pct">{_e(pct)}</span> of ' if pct else ""
        parts.append(f'<div class="cell-limit">{other}{pct_html}{_e(_comp(row.comparator))}'
                     f"&nbsp;{_e(f'{row.limit:.4g}')}{conv}</div>")
    elif row.status == "not evaluable" and row.reason:
        parts.append(f'<div class="cell-reason">{_e(_short_reason(row))}</div>')
    marker = robustness_marker(row)
    if marker:
        parts.append(f'<div class="cell-fragile">{_e(marker)}</div>')
    return (f'<td class="{_e(status_class)}" title="{_e(_cell_title(row))}">'
            f"{''.join(parts)}</td>")


def _short_reason(row) -> str:
    """The first words of why a row is not evaluable (the whole text is in the tooltip)."""
    reason = row.reason or ""
    if reason.startswith("no cited limit"):
        return reason.split(" for ")[0].split(":")[0]
    first = reason.split(";")[0]
    return first if len(first) <= 60 else first[:57] + "…"


def target_below(row) -> bool:
    """A target row under its cited control target (``>=`` limit not reached)."""
    return (row.role == "target" and row.comparator in (">=", ">") and not _nan(row.limit)
            and not _nan(row.value) and row.value < row.limit - 1e-9)


def _target_cell(row) -> str:
    if row is None:
        return '<td class="text-muted">—</td>'
    if _nan(row.value):
        return (f'<td class="status-not-evaluable" title="{_e(row.reason)}">n/e '
                f'{_status_badge_html("not evaluable")}</td>')
    badge, klass = "", ""
    if not _nan(row.limit) and row.comparator:
        if target_below(row):
            badge = _badge("below target", "#e0a800", dark=True, status="below target",
                           title=f"below the control target {_comp(row.comparator)} "
                                 f"{row.limit:g} {row.unit}")
            klass = "target-below"
        else:
            badge = _badge("target met", "#0d6efd", status="target met",
                           title=f"control target {_comp(row.comparator)} {row.limit:g} "
                                 f"{row.unit} reached")
            klass = "target-met"
    return (f'<td class="{klass}" title="{_e(_cell_title(row))}"><span class="fw-semibold">'
            f"{_e(f'{row.value:.1f}')}</span> {badge}</td>")


# ------------------------------------------------------------------------------ rows
def _unit_words(row) -> str:
    """``Gy, physical`` / ``Gy, BED (LQ, α/β = 10 Gy)`` / ``%, physical``: said once per row."""
    return f"{row.unit or '—'}, {kind_text(row)}"


def _details_html(label: str, rows: Sequence) -> str:
    """A ``<details>`` disclosure with each row's limit, source (file:line), conversion and
    the engine's text, for the regimen ``label``."""
    items = []
    for r in rows:
        limit = (f"{_comp(r.comparator)} {fmt_number(r.limit, r.unit)}"
                 if not _nan(r.limit) else "no limit")
        conv = (f"; converted from {r.converted_from_fractions} fx by LQ, α/β = "
                f"{r.alpha_beta_gy:g} Gy" if r.converted_from_fractions else "")
        value = fmt_number(r.value, r.unit)
        items.append(f"<li>{_e(r.metric or r.organ)} = {_e(value)} ({_e(kind_text(r))}), "
                     f"{_e(limit)} at {_e(r.constraint_fractions or '?')} fx, "
                     f"{_e(_PRIORITY_WORDS.get(r.priority, r.priority or 'info'))}; "
                     f"{_e(r.source)}{_e(conv)}"
                     + (f"; {_e(r.reason)}" if r.reason else "") + "</li>")
    return (f'<details class="row-details"><summary>details</summary><div class="cell-source">'
            f"Every limit of this organ at {_e(label)}:</div><ul>{''.join(items)}</ul>"
            "</details>")


def _target_rows(rows_by_regimen, show_all: bool):
    """``[(key, {label: row})]`` of the target rows: by default the prescription BED10 and the
    GTV mean BED10 (against the control target) and the PTV D95% (physical)."""
    keep_default = {("Rx[Gy]", "BED"), ("Mean[Gy]", "BED"), ("D95%[Gy]", "physical")}
    order: dict[tuple, dict] = {}
    for label, rows in rows_by_regimen.items():
        for row in rows:
            if row.role != "target":
                continue
            key = (row.structure, metric_family(row.metric), row.kind)
            if not show_all and (row.metric, row.kind) not in keep_default:
                continue
            order.setdefault(key, {})[label] = row
    return list(order.items())


def _organ_groups(rows_by_regimen):
    """``{structure: {label: [rows]}}`` of the OAR rows of structures present in the case."""
    groups: dict[str, dict[str, list]] = {}
    for label, rows in rows_by_regimen.items():
        for row in rows:
            if row.role == "oar" and row.structure:
                groups.setdefault(row.structure, {}).setdefault(label, []).append(row)
    return groups


def comparison_table_html(rows_by_regimen: Mapping[str, Sequence], *, chosen: str | None,
                          recommended: str | None, planned: str | None = None,
                          verdicts: Mapping[str, ColumnVerdict] | None = None,
                          show_all: bool = False) -> str:
    """The comparison table as HTML (``<table id="comparison-table">``), on one line.

    Header cells carry ``data-regimen``, ``data-own-status``, ``data-composite-status`` and the
    classes ``col-chosen``/``col-recommended``/``col-planned``/``col-rejected``; body cells
    ``status-<status>`` (decisive rows), ``status-advisory`` (optional/advisory rows) or
    ``target-below``/``target-met``. By default one row per organ (its worst mandatory row in
    each column, with the percentage of the limit); ``show_all`` gives one row per constraint.
    Organs the case lacks are left out (listed under the table) and, as in the engine's
    verdict, do not decide a regimen's status.
    """
    from rtplan_assist.evaluation import rows_verdict

    labels = list(rows_by_regimen)
    verdicts = dict(verdicts or {})
    head = ['<th class="col-metric">Structure · metric · unit</th>']
    for label in labels:
        own_rows = [r for r in rows_by_regimen[label] if r.role == "oar"]
        verdict = verdicts.get(label) or ColumnVerdict(rows_verdict(own_rows) if own_rows
                                                       else "not evaluable")
        tags = ""
        if label == recommended:
            tags += '<span class="badge bg-primary me-1">recommended</span>'
        if label == chosen:
            tags += '<span class="badge bg-dark me-1">chosen</span>'
        if label == planned:
            tags += '<span class="badge bg-secondary me-1">planned</span>'
        rejected = verdict.own == "fail" or verdict.composite == "fail"
        classes = "col-regimen" + "".join(
            f" col-{name}" for name, on in (("recommended", label == recommended),
                                            ("chosen", label == chosen),
                                            ("planned", label == planned),
                                            ("rejected", rejected)) if on)
        bed = next((r.value for r in rows_by_regimen[label] if r.role == "target"
                    and r.metric == "Rx[Gy]" and r.kind == "BED"), math.nan)
        comp = (_status_badge_html(verdict.composite, "with others")
                if verdict.composite else _badge("with others: —", "#adb5bd", dark=True,
                                                 status="not computed"))
        head.append(
            f'<th class="{classes}" data-regimen="{_e(label)}" '
            f'data-own-status="{_e(verdict.own)}" '
            f'data-composite-status="{_e(verdict.composite or "not computed")}">'
            f'<div class="reg-label">{_e(label)}</div><div class="reg-tags">{tags}</div>'
            + (f'<div class="cell-kind">BED10 {bed:.0f} Gy</div>' if not _nan(bed) else "")
            + f'<div class="reg-verdict">{_status_badge_html(verdict.own, "own")}</div>'
            f'<div class="reg-verdict">{comp}</div></th>')

    body = []
    for (structure, family, _kind), cells in _target_rows(rows_by_regimen, show_all):
        any_row = next(iter(cells.values()))
        target = ""
        if not _nan(any_row.limit) and any_row.comparator:
            target = f" · control target {_comp(any_row.comparator)} {any_row.limit:g} Gy"
        first = (f'<div class="fw-semibold">{_e(structure)} · {_e(family)}</div>'
                 f'<div class="cell-kind">{_e(_unit_words(any_row))}{_e(target)}</div>')
        body.append(f'<tr class="row-target"><td>{first}</td>'
                    + "".join(_target_cell(cells.get(label)) for label in labels) + "</tr>")

    groups = _organ_groups(rows_by_regimen)
    empty = []
    oar_rows = []
    for structure, by_label in groups.items():
        if show_all:
            keyed: dict[tuple, dict] = {}
            for label, rows in by_label.items():
                for row in rows:
                    keyed.setdefault((metric_family(row.metric), row.priority), {})[label] = row
            for (family, _prio), cells in keyed.items():
                any_row = cells.get(chosen) or next(iter(cells.values()))
                oar_rows.append((_order_key(cells.get(chosen), cells), structure, family,
                                 any_row, cells))
            continue
        cells = {label: organ_cell_row(rows) for label, rows in by_label.items()}
        if all(_nan(r.value) and r.priority not in _DECISIVE for r in cells.values()):
            empty.append(structure)
            continue
        headline = cells.get(chosen) or next(iter(cells.values()))
        oar_rows.append((_order_key(headline, cells), structure, headline.metric, headline,
                         cells))
    oar_rows.sort(key=lambda item: item[0])
    for _key, structure, metric, any_row, cells in oar_rows:
        conv = any(getattr(r, "converted_from_fractions", None) for r in cells.values())
        ab = any_row.alpha_beta_gy
        unit = _unit_words(any_row) + (
            f" · †LQ α/β {ab:g} Gy" if conv and ab is not None else "")
        chosen_rows = (groups[structure].get(chosen) or next(iter(groups[structure].values())))
        first = (f'<div class="fw-semibold">{_e(structure)} · {_e(metric)}</div>'
                 f'<div class="cell-kind">{_e(unit)} '
                 + _details_html(chosen or "", chosen_rows) + "</div>")
        body.append("<tr><td>" + first + "</td>"
                    + "".join(_oar_cell(cells.get(label), metric) for label in labels)
                    + "</tr>")
    note = ""
    if empty:
        note = (f'<tr class="row-empty"><td colspan="{len(labels) + 1}" class="cell-source">'
                f"No limit with a value at any regimen (cited or advisory): "
                f"{_e(', '.join(sorted(empty)))}; “show all constraints” lists why.</td></tr>")
    return ('<div class="table-responsive"><table id="comparison-table" class="table '
            'table-sm table-bordered comparison-table'
            + (" show-all" if show_all else " compact") + '">'
            f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}{note}</tbody>"
            "</table></div>")


def _order_key(headline, cells) -> tuple:
    """Organs in the order an MDT reads them: failing or unjudged at the chosen regimen first,
    then the closest to its limit; an organ failing in any column before one that never does."""
    if headline is None:
        return (9, 0.0)
    sev = _severity(headline)
    any_fail = any(r.status == "fail" and _decisive(r) for r in cells.values() if r)
    return (sev[0], sev[1], 0 if any_fail else 1, sev[2])


def _legend() -> html.Div:
    return html.Div([
        html.B("How to read: "),
        "each cell is this lesion's dose alone at that regimen (the unit and quantity are on "
        "the row); the badge is the row's status; “% of ≤ limit” is the value as a percentage "
        "of the limit at the regimen's fraction number (a lower limit: limit / value; above "
        "100 % fails); “†n” marks a limit converted from the table's n-fraction row by LQ "
        "with the organ's α/β (“†LQ α/β” on the row). Only mandatory limits decide "
        "PASS/FAIL; optimal (“opt.”) and advisory (“adv.”) limits say met / not met. Column verdicts: “own” = this lesion's "
        "mandatory OAR limits; “with others” = the mandatory composite limits (EQD2, LQ, each "
        "organ's α/β) with this regimen and the other lesions as chosen. Target cells: BED in "
        "Gy (LQ, α/β = 10 Gy) against the site's cited control target (amber = below). "
        "Sources, CSV lines and conversions: “details” on each row and each cell's tooltip.",
    ], className="table-legend")


def _absent_note(rows_by_regimen: Mapping[str, Sequence]):
    absent = sorted({r.organ for rows in rows_by_regimen.values() for r in rows
                     if r.role == "oar" and not r.structure})
    if not absent:
        return None
    return html.Div([html.B("Constrained organs absent from the case (not evaluable): "),
                     ", ".join(absent)], className="table-legend")


def comparison_table(rows_by_regimen: Mapping[str, Sequence], *, chosen: str | None,
                     recommended: str | None, planned: str | None = None,
                     verdicts: Mapping[str, ColumnVerdict] | None = None,
                     show_all: bool = False, binding: str | None = None) -> html.Div:
    """Regimens as columns; target rows, then one row per organ (``show_all``: per constraint).

    The table is one HTML text in one ``dcc.Markdown`` (every value escaped; as Dash components
    the browser took about 10 s to draw a regimen change). ``children[1]`` is that Markdown.

    Parameters
    ----------
    rows_by_regimen : mapping regimen label -> ResultRow list (``lesion_rows``)
    chosen, recommended, planned : regimen labels
    verdicts : mapping regimen label -> ColumnVerdict
        Own and composite verdicts of each column (own computed from the rows when absent).
    show_all : bool
        One row per constraint instead of one per organ.
    binding : str, optional
        Kept for callers of earlier releases; the summary says the binding constraint.
    """
    del binding
    return html.Div([
        html.Div(id="recommendation-caption"),
        dcc.Markdown(comparison_table_html(rows_by_regimen, chosen=chosen,
                                           recommended=recommended, planned=planned,
                                           verdicts=verdicts, show_all=show_all),
                     dangerously_allow_html=True, className="comparison-table-box"),
        _legend(),
        _absent_note(rows_by_regimen),
    ])


# ------------------------------------------------------------------------------ summary
def lesion_summary(*, chosen: str, recommended: str, planned: str, chosen_bed: float,
                   recommended_bed: float, planned_bed: float, own: str, composite: str,
                   binding) -> list:
    """The sticky summary's verdict lines: chosen / recommended / planned with their BED10,
    the two verdicts of the chosen regimen and the binding constraint in words.

    ``binding`` is the decisive row closest to (or past) its limit for the chosen regimen, own
    or composite (:func:`binding_row`), said by :func:`~rtplan_assist.evaluation.reasons.
    row_sentence`.
    """
    def reg(label, bed, css):
        return html.Span([html.B(label, className=css), f" (BED10 {bed:.1f} Gy)"
                          if not _nan(bed) else ""])

    lines = [html.Div([
        html.Span("Chosen ", className="text-muted"), reg(chosen, chosen_bed, "summary-chosen"),
        html.Span(" · recommended ", className="text-muted"),
        reg(recommended, recommended_bed, "summary-recommended"),
        html.Span(" · planned ", className="text-muted"), reg(planned, planned_bed, ""),
        html.Span(" (BED10: LQ, α/β = 10 Gy)", className="cell-kind ms-1"),
    ], id="summary-regimens")]
    words = {"pass": "every mandatory limit is met", "fail": "a mandatory limit is exceeded",
             "not evaluable": "a mandatory limit cannot be evaluated"}
    lines.append(html.Div([
        html.Span(f"{chosen}: ", className="fw-semibold"),
        "this lesion's OARs ", html.Span(status_badge(own), id="summary-own-status"),
        f" ({words.get(own, own)}); with the other lesions as chosen, composite ",
        html.Span(status_badge(composite), id="composite-status"),
        f" ({words.get(composite, composite)}).",
    ], id="summary-verdicts"))
    if binding is not None:
        head = ("Exceeded: " if binding.status == "fail" else
                "Cannot be judged: " if binding.status == "not evaluable" else
                "Closest limit: ")
        where = ("with the other lesions as chosen, composite " if binding.lesion_id ==
                 "composite" else "")
        pct = percent_of_limit(binding)
        tail = "" if math.isnan(pct) else f", {pct:.0f} % of the limit"
        lines.append(html.Div([html.Span(head, className="fw-semibold"), where,
                               row_sentence(binding), tail], id="summary-binding"))
    return lines


def reason_lines(reasons: Sequence[tuple[str, str]]) -> list:
    """The lesion's plain-language reasons, ``[(sentence, details)]`` (the reasons module's),
    each with its source key, CSV line and the engine's text behind a "details" disclosure.
    They are about the recommendation (every lesion as recommended), which the heading says,
    so that a choice whose composite fails never reads as contradicted by them."""
    if not reasons:
        return []
    head = html.Div("Why the recommendation (every lesion as recommended):",
                    className="cell-source")
    return [head] + [html.Div([sentence, " "] + ([html.Details(
        [html.Summary("details"), html.Div(details, className="cell-source")],
        className="d-inline-block summary-details")] if details else []),
        className="summary-reason") for sentence, details in reasons]


# ------------------------------------------------------------------------------ plan quality
QUALITY_TITLE = "Plan quality (planned dose, report-only)"
#: The indices shown, in order; the volumes behind them follow in the same table.
QUALITY_SHOWN = ("CI_Paddick", "CI_RTOG", "GI", "R50%", "D2cm[Gy]", "D2cm[%]", "HI", "TV[cc]",
                 "TV_PIV[cc]", "PIV[cc]", "V50%[cc]")


def quality_placeholder() -> html.Div:
    """What the quality section holds until its indices arrive (they are computed when the
    section is first opened: about 1 s a lesion)."""
    return html.Div([
        html.Span(className="spinner-border spinner-border-sm me-2", role="status"),
        "computing… the plan quality indices of every lesion (about 1 s a lesion; lesions "
        "sharing a dose are computed together)",
    ], className="small text-muted", id="lesion-quality-computing")


def _quality_value(value: float, unit: str) -> str:
    if _nan(value):
        return "not evaluable"
    return f"{value:.3f}" + ("" if unit == "ratio" else f" {unit}")


def quality_section(quality, *, planned: str, site: str) -> html.Div:
    """One lesion's plan quality indices (:class:`rtplan_assist.quality.LesionQuality`) on the
    planned dose at the planned regimen ``planned``: every index with its value, unit and
    definition (also the label's tooltip); the RTOG 0813/0915 Table 1 grade of R100%, R50% and
    D2cm with the interpolated bounds and the source, or why the lesion is not graded; whether
    the lesion shares its dose and whether its 50 % isodose bridges to another lesion; the
    notes. Report-only: no status badge, nothing here touches a verdict."""
    from rtplan_assist.quality import (
        INDEX_DEFINITIONS,
        QUALITY_NOTE,
        RTOG_SITES,
        RTOG_SOURCE,
        _grades_to_show,
    )

    labels = {key: (label, unit, text) for key, label, unit, text in INDEX_DEFINITIONS}
    rows = []
    for key in QUALITY_SHOWN:
        label, unit, definition = labels[key]
        value = quality.values.get(key, math.nan)
        rows.append(html.Tr([
            html.Td(html.Span(label, title=definition, className="quality-label")),
            html.Td(_quality_value(value, unit), className="num",
                    **{"data-index": key, "data-value": "" if _nan(value) else repr(value)}),
            html.Td("ratio (dimensionless)" if unit == "ratio" else unit,
                    className="cell-kind"),
            html.Td(definition, className="cell-source"),
        ], **{"data-index": key}))
    table = html.Table([
        html.Thead(html.Tr([html.Th(x) for x in ("Index", "Value", "Unit", "Definition")])),
        html.Tbody(rows),
    ], className="table table-sm quality-table mb-1 w-auto", id="quality-table")

    graded = [g for g in quality.grades if g.level != "not graded"]
    grade_lines = []
    for g in _grades_to_show(quality.grades):
        if g.level == "not graded":
            grade_lines.append(html.Li([
                html.B(f"{g.label}: not graded"), f" against {RTOG_SOURCE}: {g.reason}."],
                **{"data-level": "not graded"}))
            continue
        unit = " % of Rx" if g.index == "D2cm[%]" else ""
        grade_lines.append(html.Li([
            html.B(f"{g.label} {_quality_value(g.value, unit.strip() or 'ratio')}: {g.level}"),
            html.Span(f" (per protocol < {g.none_below:.3g}{unit}, minor deviation < "
                      f"{g.minor_below:.3g}{unit}, else major; bounds interpolated at TV "
                      f"{quality.values.get('TV[cc]', math.nan):.3g} cc)", className="cell-kind"),
        ], **{"data-level": g.level, "data-index": g.index}))
    trial = RTOG_SITES.get(site)
    grade_head = (f"RTOG deviation grade ({RTOG_SOURCE}, {trial}; planned {planned}):"
                  if graded and trial else f"RTOG deviation grade ({RTOG_SOURCE}):")

    shares = quality.shares_dose_with
    bridged = quality.bridged_with
    dose_line = (
        f"Shares its dose with {', '.join(shares)}: the prescription and 50 % isodose volumes "
        "outside the targets are split by nearest target (PIV and V50% are this lesion's part)."
        if shares else "Its own dose: no other lesion shares it (PIV and V50% are not split).")
    bridge_line = (
        f"Bridging: yes, with {', '.join(bridged)} (one 50 % isodose island holds this target "
        "and theirs)." if bridged else
        "Bridging: no (the 50 % isodose island holding this target holds no other target"
        + ("" if shares else "; not applicable without a shared dose") + ").")
    notes = [html.Li(n) for n in quality.notes]
    return html.Div([
        html.Div([html.B(f"{quality.lesion_id}, target {quality.target}: "),
                  f"planned physical dose at the planned prescription {planned} "
                  f"(Rx {quality.prescription_gy:g} Gy). A regimen scales this dose by D/D0: "
                  "the ratios and D2cm in % of Rx are the same at every regimen, D2cm in Gy "
                  "scales with D."], className="small mb-1"),
        table,
        html.Div([html.B(grade_head), html.Ul(grade_lines, className="mb-1")],
                 className="small", id="quality-grades"),
        html.Div(dose_line, className="small", id="quality-shared"),
        html.Div(bridge_line, className="small", id="quality-bridging",
                 **{"data-bridged": ",".join(bridged)}),
        html.Div([html.B("Notes: "), html.Ul(notes, className="mb-0")] if notes else [],
                 className="small", id="quality-notes"),
        html.Div(QUALITY_NOTE, className="table-legend mt-1"),
    ], id="quality-section-body")
