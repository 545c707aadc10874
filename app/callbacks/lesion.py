"""Callbacks of the lesion page: the decision summary, the regimen columns (own and composite
verdicts), the choice, added regimens (add, remove) and the reset to the recommendation."""

from __future__ import annotations

import math

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update

from rtplan_assist.errors import RtplanAssistError

from rtplan_assist.evaluation import EvaluationResult
from rtplan_assist.evaluation.reasons import lesion_reasons, percent_of_limit

from ..lesion_view import (
    ColumnVerdict,
    binding_row,
    comparison_table,
    lesion_summary,
    quality_section,
    reason_lines,
)
from ..services import LoadedPatient
from ..views import composite_table
from ._shared import (
    composite_status,
    contributing_lesions,
    error_alert,
    loaded_patient,
    prefs,
)

__all__ = ["column_verdicts", "composite_change", "composite_summary", "custom_regimen",
           "lesion_rows_by_regimen", "page_reasons", "regimen_change", "register"]


def lesion_rows_by_regimen(loaded: LoadedPatient, lesion_id: str) -> dict[str, list]:
    """Regimen label -> lesion rows, for every regimen of the lesion (cached in the evaluator)."""
    ev = loaded.evaluator
    return {r.label: ev.lesion_rows(lesion_id, r) for r in ev.regimens_for(lesion_id)}


def column_verdicts(evaluator, choice: dict, lesion_id: str) -> dict[str, ColumnVerdict]:
    """Regimen label -> the column's two verdicts: the lesion's own mandatory OAR rows at that
    regimen, and the mandatory composite rows with that regimen for the lesion (and the other
    lesions of its plan) and the other lesions as chosen (engine rule:
    :func:`rtplan_assist.evaluation.rows_verdict`)."""
    unit = next((u for u in evaluator.plan_units() if lesion_id in u), [lesion_id])
    out = {}
    for regimen in evaluator.regimens_for(lesion_id):
        own = composite_status(evaluator.lesion_rows(lesion_id, regimen))
        trial = dict(choice, **{lid: regimen for lid in unit})
        rows = evaluator.composite_rows(trial, mandatory_only=True)
        out[regimen.label] = ColumnVerdict(own, composite_status(rows), binding_row(rows))
    return out


def regimen_change(loaded: LoadedPatient, prefs: dict, lesion_id: str):
    """The server work of a regimen change for the summary and the table: the comparison
    rows, the column verdicts and the mandatory composite rows of the choice (the composite
    section's rows and contributors come after, :func:`composite_change`).

    Returns ``(choice, rows_by_regimen, mandatory_composite_rows, verdicts)``; this is what
    ``benches/bench_app.py`` times.
    """
    with loaded.lock:
        choice = loaded.choice(prefs)
        rows = lesion_rows_by_regimen(loaded, lesion_id)
        verdicts = column_verdicts(loaded.evaluator, choice, lesion_id)
        composite = loaded.evaluator.composite_rows(choice, mandatory_only=True)
    return choice, rows, composite, verdicts


def composite_change(loaded: LoadedPatient, prefs: dict):
    """Every composite row of the session's choice and each organ's contributing lesions."""
    with loaded.lock:
        choice = loaded.choice(prefs)
        return loaded.evaluator.composite_rows(choice), contributing_lesions(loaded, choice)


def composite_summary(rows, contributors: dict, *, lesion_oars: set[str] | None = None,
                      limit: int = 4) -> html.Div:
    """The mandatory composite rows of the OARs that matter to one lesion, closest to (or past)
    their limit first; how many optimal/advisory composite rows are not met (they do not decide
    the verdict) and a link to all rows."""
    def mine(r):
        return r.structure and (lesion_oars is None or r.structure in lesion_oars)

    mandatory = [r for r in rows if mine(r) and r.priority == "mandatory"]
    mandatory.sort(key=lambda r: (r.status != "fail", -(percent_of_limit(r) if not math.isnan(
        percent_of_limit(r)) else -1.0)))
    others_over = [r for r in rows if mine(r) and r.priority != "mandatory"
                   and r.status == "fail"]
    note = [f"The {min(limit, len(mandatory))} of {len(mandatory)} mandatory composite limits "
            "of this lesion's OARs closest to their limit (EQD2, LQ, each organ's α/β; sum of "
            "all lesions as chosen)."]
    if others_over:
        note.append(f" {len(others_over)} optimal/advisory composite limit(s) not met (they "
                    "do not decide the verdict).")
    note += [" All rows: ", dcc.Link("Composite / MDT", href="/composite"), "."]
    return html.Div([
        html.H6("Composite of all lesions as chosen", className="mt-2 mb-1"),
        composite_table(mandatory[:limit], contributors, compact=True),
        html.Div(note, className="small text-muted"),
    ], className="mb-3")


def custom_regimen(n, dose):
    """The regimen of the add-regimen inputs, or an error saying which input is wrong and how
    (the fields are numeric inputs: ``None`` when empty or not a number)."""
    from rtplan_assist.errors import EvaluationError
    from rtplan_assist.regimens import Regimen

    if n is None and dose is None:
        raise EvaluationError("give the number of fractions and the total dose (Gy)")
    if n is None:
        raise EvaluationError("give the number of fractions (a whole number >= 1)")
    if dose is None:
        raise EvaluationError("give the total dose in Gy")
    try:
        n_value, dose_value = float(n), float(dose)
    except (TypeError, ValueError):
        raise EvaluationError("the fractions and the dose must be numbers") from None
    if not math.isfinite(n_value) or n_value != int(n_value) or n_value < 1:
        raise EvaluationError(f"the number of fractions must be a whole number >= 1, got {n_value:g}")
    if not math.isfinite(dose_value) or dose_value <= 0:
        raise EvaluationError(f"the total dose must be > 0 Gy, got {dose_value:g}")
    return Regimen(int(n_value), dose_value)


def _added_list(labels: list[str]):
    """The regimens this session added to the lesion, each with a remove button."""
    if not labels:
        return None
    return html.Div([html.Span("Added: ", className="small text-muted")] + [
        html.Span([label, dbc.Button("×", id={"type": "remove-regimen", "label": label},
                                     n_clicks=0, color="link", size="sm",
                                     className="p-0 ms-1 remove-regimen",
                                     title=f"remove {label}")],
                  className="badge bg-light text-dark border me-1 added-regimen",
                  **{"data-regimen": label})
        for label in labels])


def page_reasons(evaluator, rec, choice: dict, lesion_id: str, rows_by_regimen: dict,
                 composite_rows: list) -> list[tuple[str, str]]:
    """``[(sentence, details)]`` of the lesion: :func:`~rtplan_assist.evaluation.reasons.
    lesion_reasons` (recommended, the rejected better option, the choice if it differs) over
    an :class:`EvaluationResult` holding what they read (this lesion's rows at every regimen,
    the mandatory composite rows of the choice), without the robustness work of a full
    :meth:`~rtplan_assist.evaluation.session.Evaluation.result`."""
    result = EvaluationResult(
        patient_id=evaluator.case.patient_id, folder=str(evaluator.case.folder),
        lesions=list(evaluator.lesions),
        rows=[r for rows in rows_by_regimen.values() for r in rows],
        composite_rows=list(composite_rows), recommendation=rec, choice=dict(choice),
        warnings=[], caveats=[], provenance={})
    return [(reason.text, reason.details) for reason in lesion_reasons(result, lesion_id)]


#: After each drawing of the table: scroll it sideways so that the chosen column is in view
#: (a lesion with many regimens is wider than the screen; the first column stays, sticky).
SCROLL_TO_CHOSEN_JS = """
function(children) {
    var tries = 0;
    function scroll() {
        var th = document.querySelector('#comparison-table th.col-chosen');
        var box = th && th.closest('.table-responsive');
        if (!box) { if (++tries < 30) { setTimeout(scroll, 100); } return; }
        if (box.scrollWidth <= box.clientWidth) { return; }
        var first = document.querySelector('#comparison-table th.col-metric');
        var fixed = first ? first.offsetWidth : 0;
        var room = box.clientWidth - fixed - th.offsetWidth;
        box.scrollLeft = Math.max(0, th.offsetLeft - fixed - room / 2);
    }
    setTimeout(scroll, 50);
    return window.dash_clientside.no_update;
}
"""


def register(app, services) -> None:
    app.clientside_callback(SCROLL_TO_CHOSEN_JS, Output("lesion-table-scrolled", "data"),
                            Input("lesion-table", "children"))

    @app.callback(
        Output("lesion-title", "children"), Output("lesion-choice", "options"),
        Output("lesion-choice", "value"), Output("lesion-table", "children"),
        Output("lesion-summary", "children"), Output("lesion-reasons", "children"),
        Output("added-regimens", "children"), Output("reset-regimen", "disabled"),
        Output("lesion-recommended", "data"), Output("lesion-rendered", "data"),
        Input("loaded", "data"), Input("choices", "data"), Input("lesion-show-all", "value"),
        State("page-lesion", "data"), State("session-id", "data"),
    )
    def render_lesion(loaded_data, choices, show_all, lesion_id, session):
        if not loaded_data:
            return (no_update,) * 10
        try:
            loaded = loaded_patient(services, loaded_data, session)
            patient_prefs = prefs(choices, loaded.entry.key)
            choice, rows, composite, verdicts = regimen_change(loaded, patient_prefs,
                                                               lesion_id)
            rec = loaded.recommendation_for(patient_prefs)
        except RtplanAssistError as exc:
            return (no_update, [], None, error_alert(exc), None, None, None, True, None,
                    None)
        ev = loaded.evaluator
        lesion = next(les for les in ev.lesions if les.lesion_id == lesion_id)
        recommended = rec.choice[lesion_id]
        chosen = choice[lesion_id]
        planned = lesion.planned
        options = []
        for r in ev.regimens_for(lesion_id):
            tags = [t for t, on in (("recommended", r == recommended), ("planned", r == planned))
                    if on]
            options.append({"label": f"{r.label} (BED10 {r.bed10_gy():.1f} Gy)"
                            + (" — " + ", ".join(tags) if tags else ""), "value": r.label})
        title = (f"Lesion {lesion_id}: {lesion.label} · {lesion.site} · target "
                 f"{lesion.target.name}")
        table = comparison_table(rows, chosen=chosen.label, recommended=recommended.label,
                                 planned=planned.label, verdicts=verdicts,
                                 show_all=bool(show_all))
        own_rows = rows[chosen.label]
        summary = lesion_summary(
            chosen=chosen.label, recommended=recommended.label, planned=planned.label,
            chosen_bed=chosen.bed10_gy(), recommended_bed=recommended.bed10_gy(),
            planned_bed=planned.bed10_gy(), own=composite_status(own_rows),
            composite=composite_status(composite),
            binding=binding_row(own_rows + composite))
        reasons = reason_lines(page_reasons(ev, rec, choice, lesion_id, rows, composite))
        added = list(((patient_prefs.get("added") or {}).get(lesion_id)) or [])
        explicit = lesion_id in (patient_prefs.get("choice") or {})
        return (title, options, chosen.label, table, summary, reasons, _added_list(added),
                not explicit, recommended.label,
                {lid: r.label for lid, r in sorted(choice.items())})

    @app.callback(
        Output("lesion-composite", "children"),
        Input("lesion-rendered", "data"),
        State("loaded", "data"), State("choices", "data"), State("page-lesion", "data"),
        State("session-id", "data"),
        prevent_initial_call=True,
    )
    def render_lesion_composite(rendered, loaded_data, choices, lesion_id, session):
        """The composite section after the summary and the table (its non-mandatory organs
        and contributors can take a second for a new choice)."""
        if not rendered or not loaded_data:
            return no_update
        try:
            loaded = loaded_patient(services, loaded_data, session)
            patient_prefs = prefs(choices, loaded.entry.key)
            composite, contributors = composite_change(loaded, patient_prefs)
            with loaded.lock:
                rows = lesion_rows_by_regimen(loaded, lesion_id)
        except RtplanAssistError as exc:
            return error_alert(exc)
        oars = {r.structure for rs in rows.values() for r in rs if r.role == "oar"
                and r.structure and not math.isnan(r.value) and r.value > 0}
        return composite_summary(composite, contributors, lesion_oars=oars)

    @app.callback(
        Output("lesion-quality", "children"),
        Input("lesion-quality-section", "active_item"), Input("loaded", "data"),
        State("page-lesion", "data"), State("session-id", "data"),
    )
    def render_lesion_quality(active, loaded_data, lesion_id, session):
        """The plan quality section, computed when it is opened (the placeholder says
        "computing…" meanwhile), in whichever server process answers: it needs only the
        session's prepared patient (:meth:`LoadedPatient.quality`, once per patient and
        process). Report-only: it reads no choice and touches no verdict."""
        if active != "quality" or not loaded_data:
            return no_update
        try:
            loaded = loaded_patient(services, loaded_data, session)
            qualities = {q.lesion_id: q for q in loaded.quality()}
            lesion = next((les for les in loaded.evaluator.lesions
                           if les.lesion_id == lesion_id), None)
        except RtplanAssistError as exc:
            return error_alert(exc)
        if lesion is None or lesion_id not in qualities:
            return dbc.Alert(f"No lesion {lesion_id} in this patient.", color="warning")
        return quality_section(qualities[lesion_id], planned=lesion.planned.label,
                               site=lesion.site)

    @app.callback(
        Output("choices", "data"), Output("add-error", "children"),
        Input("lesion-choice", "value"), Input("add-regimen", "n_clicks"),
        Input("reset-regimen", "n_clicks"),
        Input({"type": "remove-regimen", "label": ALL}, "n_clicks"),
        State("add-n", "value"), State("add-d", "value"), State("choices", "data"),
        State("page-lesion", "data"), State("loaded", "data"),
        State("lesion-recommended", "data"),
        prevent_initial_call=True,
    )
    def change_choice(value, _clicks, _reset, _removes, n, dose, choices, lesion_id,
                      loaded_data, recommended):
        from rtplan_assist.regimens import check_custom_regimen

        if not loaded_data:
            return no_update, no_update
        key = loaded_data["key"]
        choices = dict(choices or {})
        patient_prefs = prefs(choices, key)
        chosen = dict(patient_prefs.get("choice") or {})
        added = dict(patient_prefs.get("added") or {})
        warned = ""
        trigger = ctx.triggered_id
        if trigger == "add-regimen":
            try:
                regimen = custom_regimen(n, dose)
                warned = "; ".join(check_custom_regimen(regimen))
            except RtplanAssistError as exc:
                return no_update, f"Not added: {exc}"
            labels = list(added.get(lesion_id) or [])
            if regimen.label not in labels:
                labels.append(regimen.label)
            added[lesion_id] = labels
            chosen[lesion_id] = regimen.label
        elif trigger == "reset-regimen":
            if lesion_id not in chosen:
                return no_update, no_update
            chosen.pop(lesion_id)
        elif isinstance(trigger, dict) and trigger.get("type") == "remove-regimen":
            if not ctx.triggered[0].get("value"):
                return no_update, no_update  # a button just drawn, not clicked
            label = trigger["label"]
            labels = [x for x in (added.get(lesion_id) or []) if x != label]
            if labels:
                added[lesion_id] = labels
            else:
                added.pop(lesion_id, None)
            if chosen.get(lesion_id) == label:
                chosen.pop(lesion_id)  # back to the recommendation
        else:
            if not value or chosen.get(lesion_id) == value:
                return no_update, no_update
            if value == recommended and lesion_id not in chosen:
                return no_update, no_update  # the page showing the recommendation
            if value == recommended:
                chosen.pop(lesion_id)
            else:
                chosen[lesion_id] = value
        patient_prefs["choice"] = chosen
        patient_prefs["added"] = added
        choices[key] = patient_prefs
        return choices, (f"Added with a warning: {warned}" if warned else "")
