"""Callbacks of the prior-course page (:mod:`rtplan_assist.prior`): the candidate folders and
the per-organ, per-course EQD2 table with the cord re-irradiation rules."""

from __future__ import annotations

import math
from pathlib import Path

import dash_bootstrap_components as dbc
from dash import Input, Output, State, html, no_update

from rtplan_assist.errors import RtplanAssistError

from ..views import status_badge
from ._shared import error_alert, loaded_patient, prefs

__all__ = ["prior_folders", "prior_page", "register"]


def prior_folders(case_folder: str) -> list[Path]:
    """Folders next to the patient's whose name is the patient folder's + ``-prior…``."""
    folder = Path(case_folder)
    parent = folder.parent
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir()
                  if p.is_dir() and p.name.startswith(folder.name + "-prior"))


def _num(value, digits=1) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def prior_page(result) -> list:
    """The page body of a :class:`~rtplan_assist.prior.PriorResult`."""
    from rtplan_assist.prior import COURSES, prior_summary_lines

    verdict = result.verdict()
    head = html.Thead(html.Tr([html.Th("Structure"), html.Th("α/β (Gy)"), html.Th("Recovery")]
                              + [html.Th(f"{c}: Max / Mean EQD2 (Gy)") for c in COURSES]))
    body = html.Tbody([
        html.Tr([html.Td(o.structure), html.Td(f"{o.alpha_beta_gy:g}"),
                 html.Td(f"{o.recovery:.0%}", title=o.recovery_note)]
                + [html.Td(f"{_num(o.metrics[c]['Max[Gy]'])} / {_num(o.metrics[c]['Mean[Gy]'])}",
                           className="text-end") for c in COURSES])
        for o in result.organs])
    rules = [r for r in result.rows if r.priority == "mandatory"]
    rule_rows = html.Tbody([
        html.Tr([html.Td(r.structure or r.organ), html.Td(r.metric),
                 html.Td(f"{_num(r.value, 2)} {r.unit}", className="text-end"),
                 html.Td(f"{r.kind}, α/β {r.alpha_beta_gy:g} Gy" if r.alpha_beta_gy
                         else r.kind or "–"),
                 html.Td("" if r.limit is None else f"{r.comparator} {r.limit:.4g} {r.unit}"),
                 html.Td(status_badge(r.status, small=True)),
                 html.Td(r.source, className="small")])
        for r in rules])
    return [
        dbc.Alert([status_badge(verdict), " ", html.B(f"Prior-course verdict: {verdict}"),
                   html.Ul([html.Li(x) for x in prior_summary_lines(result)],
                           className="mb-0 mt-2 small")],
                  color={"pass": "success", "fail": "danger"}.get(verdict, "secondary"),
                  id="prior-verdict"),
        html.H5("EQD2 per course (LQ, each organ's α/β, no time factor)"),
        dbc.Table([head, body], bordered=True, size="sm", striped=True, id="prior-table"),
        html.P("cumulative = prior + current; cumulative adjusted = prior × (1 − recovery) + "
               "current.", className="small text-muted"),
        html.H5("Decisive rows: cord re-irradiation rules (plain sums, α/β 2) and mandatory "
                "cumulative limits (adjusted sums; single-course tolerances, not validated "
                "cumulative limits)"),
        dbc.Table([html.Thead(html.Tr([html.Th(x) for x in (
            "Structure", "Metric", "Value", "Kind", "Limit", "Status", "Source")])), rule_rows],
            bordered=True, size="sm", id="prior-rules"),
        html.Ul([html.Li(n) for n in result.notes], className="small text-muted"),
    ]


#: what both prior-course callbacks read: the page's inputs, the patient, choices and session
_PAGE_STATE = (
    State("prior-folder", "value"), State("prior-recovery", "value"),
    State("prior-interval", "value"), State("prior-fractions", "value"),
    State("loaded", "data"), State("choices", "data"), State("session-id", "data"),
)


def register(app, services) -> None:
    from ..services.lru import OnceLRU

    results = OnceLRU(8)  # this process's last prior-course evaluations (table, then curves)

    def evaluate(session, loaded, choices, folder_index, recovery, interval, fractions):
        """The :class:`~rtplan_assist.prior.PriorResult` for the page's inputs (cached)."""
        from rtplan_assist.prior import evaluate_prior, load_prior_course

        found = prior_folders(loaded.case.folder)
        if folder_index is None or not found:
            return None
        folder = found[int(folder_index)]
        with loaded.lock:
            choice = loaded.choice(prefs(choices, loaded.entry.key))
        key = (session, loaded.entry.key, str(folder), recovery, interval, fractions,
               tuple(sorted((k, v.label) for k, v in choice.items())))

        def make():
            with loaded.lock:
                prior = load_prior_course(folder, loaded.case,
                                          fractions=int(fractions) if fractions else None)
                return evaluate_prior(
                    loaded.evaluator, choice, prior,
                    interval_days=float(interval) if interval not in (None, "") else None,
                    recovery=recovery or "none")

        return results.get(key, make)

    @app.callback(
        Output("prior-folder", "options"), Output("prior-folder", "value"),
        Input("loaded", "data"), State("session-id", "data"),
    )
    def prior_options(loaded_data, session):
        if not loaded_data:
            return no_update, no_update
        loaded = loaded_patient(services, loaded_data, session)
        found = prior_folders(loaded.case.folder)
        # the value is an index: folder names may carry identifiers (scrubbed in labels)
        options = [{"label": p.name, "value": str(i)} for i, p in enumerate(found)]
        return options, (options[0]["value"] if options else None)

    @app.callback(
        Output("prior-content", "children"), Output("prior-organ", "options"),
        Output("prior-organ", "value"),
        Input("prior-run", "n_clicks"),
        *_PAGE_STATE,
        prevent_initial_call=True,
    )
    def render_prior(_clicks, folder_index, recovery, interval, fractions, loaded_data,
                     choices, session):
        if not loaded_data:
            return no_update, no_update, no_update
        loaded = loaded_patient(services, loaded_data, session)
        try:
            result = evaluate(session, loaded, choices, folder_index, recovery, interval,
                              fractions)
        except (RtplanAssistError, IndexError, ValueError) as exc:
            return error_alert(exc), [], None
        if result is None:
            return dbc.Alert(f"No prior-course folder next to the patient folder (a folder "
                             f"named {Path(loaded.case.folder).name}-prior holding the earlier "
                             "course's RTDOSE and RTPLAN).", color="secondary"), [], None
        options = [{"label": o.structure, "value": o.organ} for o in result.organs]
        first = next((o.organ for o in result.organs if o.organ == "SpinalCord"),
                     options[0]["value"] if options else None)
        return prior_page(result), options, first

    @app.callback(
        Output("prior-dvh", "figure"),
        Input("prior-organ", "value"),
        *_PAGE_STATE,
        prevent_initial_call=True,
    )
    def render_prior_dvh(organ, folder_index, recovery, interval, fractions, loaded_data,
                         choices, session):
        from ..figures import dvh_figure

        if not loaded_data or not organ:
            return no_update
        loaded = loaded_patient(services, loaded_data, session)
        try:
            result = evaluate(session, loaded, choices, folder_index, recovery, interval,
                              fractions)
        except (RtplanAssistError, IndexError, ValueError):
            return no_update
        item = next((o for o in (result.organs if result else []) if o.organ == organ), None)
        if item is None:
            return no_update
        # one colour per course, one structure
        curves = [(course, item.structure, dvh) for course, dvh in item.dvhs.items()]
        return dvh_figure(curves, kind="EQD2", model=f"LQ, α/β = {item.alpha_beta_gy:g} Gy",
                          legend_title="Structure (colour), courses (line style)",
                          title=f"{item.structure}: EQD2 per course (prior, current, cumulative,"
                          f" cumulative with {item.recovery:.0%} recovery of the prior term)")
