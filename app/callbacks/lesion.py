"""Callbacks of the lesion comparison page: one lesion's regimens, the choice, added regimens."""

from __future__ import annotations

import math

from dash import Input, Output, State, ctx, dcc, html, no_update

from rtplan_assist.errors import RtplanAssistError

from ..services import LoadedPatient
from ..views import comparison_table, composite_table, status_badge, worst_first
from ._shared import (
    composite_status,
    contributing_lesions,
    error_alert,
    loaded_patient,
    prefs,
)

__all__ = ["composite_summary", "custom_regimen", "lesion_rows_by_regimen", "regimen_change", "register"]


def lesion_rows_by_regimen(loaded: LoadedPatient, lesion_id: str) -> dict[str, list]:
    """Regimen label -> lesion rows, for every regimen of the lesion (cached in the evaluator)."""
    ev = loaded.evaluator
    return {r.label: ev.lesion_rows(lesion_id, r) for r in ev.regimens_for(lesion_id)}


def regimen_change(loaded: LoadedPatient, prefs: dict, lesion_id: str):
    """The server work of a regimen change: the comparison rows and the composite rows.

    Returns ``(choice, rows_by_regimen, composite_rows, contributors)``; this is what
    ``benches/bench_app.py`` times.
    """
    with loaded.lock:
        choice = loaded.choice(prefs)
        rows = lesion_rows_by_regimen(loaded, lesion_id)
        composite = loaded.evaluator.composite_rows(choice)
        contributors = contributing_lesions(loaded, choice)
    return choice, rows, composite, contributors


def composite_summary(rows, contributors: dict, *, lesion_oars: set[str] | None = None,
                      limit: int = 6) -> html.Div:
    """Verdict badge and the worst composite rows of the OARs that matter to one lesion."""
    status = composite_status(rows)
    shown = worst_first(r for r in rows if r.structure and (lesion_oars is None or
                                                             r.structure in lesion_oars))
    return html.Div([
        html.H5(["Composite of all lesions with these choices: ",
                 html.Span(status_badge(status), id="composite-status")], className="mt-3"),
        composite_table(shown[:limit], contributors, compact=True),
        html.Div([(f"The {min(limit, len(shown))} worst of {len(shown)} composite rows for this "
                  "lesion's OARs (EQD2, LQ, each organ's α/β). All rows: "),
                  dcc.Link("Composite / MDT", href="/composite"), "."],
                 className="small text-muted"),
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


def register(app, services) -> None:
    @app.callback(
        Output("lesion-title", "children"), Output("lesion-choice", "options"),
        Output("lesion-choice", "value"), Output("lesion-table", "children"),
        Output("lesion-composite", "children"),
        Input("loaded", "data"), Input("choices", "data"),
        State("page-lesion", "data"), State("session-id", "data"),
    )
    def render_lesion(loaded_data, choices, lesion_id, session):
        if not loaded_data:
            return no_update, no_update, no_update, no_update, no_update
        try:
            loaded = loaded_patient(services, loaded_data, session)
            choice, rows, composite, contributors = regimen_change(
                loaded, prefs(choices, loaded.entry.key), lesion_id)
        except RtplanAssistError as exc:
            return no_update, [], None, error_alert(exc), None
        ev = loaded.evaluator
        lesion = next(les for les in ev.lesions if les.lesion_id == lesion_id)
        rec = loaded.recommendation_for(prefs(choices, loaded.entry.key))
        recommended = rec.choice[lesion_id].label
        options = [{"label": f"{r.label} (BED10 {r.bed10_gy():.1f} Gy)"
                    + (" — recommended" if r.label == recommended else ""), "value": r.label}
                   for r in ev.regimens_for(lesion_id)]
        title = (f"Lesion {lesion_id}: {lesion.label} · {lesion.site} · target "
                 f"{lesion.target.name} · planned {lesion.planned.label}")
        table = comparison_table(rows, chosen=choice[lesion_id].label, recommended=recommended,
                                 binding=rec.binding.get(lesion_id))
        oars = {r.structure for rs in rows.values() for r in rs if r.role == "oar"
                and r.structure and not math.isnan(r.value) and r.value > 0}
        return (title, options, choice[lesion_id].label, table,
                composite_summary(composite, contributors, lesion_oars=oars))

    @app.callback(
        Output("choices", "data"), Output("add-error", "children"),
        Input("lesion-choice", "value"), Input("add-regimen", "n_clicks"),
        State("add-n", "value"), State("add-d", "value"), State("choices", "data"),
        State("page-lesion", "data"), State("loaded", "data"),
        prevent_initial_call=True,
    )
    def change_choice(value, _clicks, n, dose, choices, lesion_id, loaded_data):
        from rtplan_assist.regimens import check_custom_regimen

        if not loaded_data:
            return no_update, no_update
        key = loaded_data["key"]
        choices = dict(choices or {})
        patient_prefs = prefs(choices, key)
        warned = ""
        if ctx.triggered_id == "add-regimen":
            try:
                regimen = custom_regimen(n, dose)
                warned = "; ".join(check_custom_regimen(regimen))
            except RtplanAssistError as exc:
                return no_update, f"Not added: {exc}"
            added = dict(patient_prefs.get("added") or {})
            labels = list(added.get(lesion_id) or [])
            if regimen.label not in labels:
                labels.append(regimen.label)
            added[lesion_id] = labels
            patient_prefs["added"] = added
            chosen = dict(patient_prefs.get("choice") or {})
            chosen[lesion_id] = regimen.label
            patient_prefs["choice"] = chosen
        else:
            if not value or (patient_prefs.get("choice") or {}).get(lesion_id) == value:
                return no_update, no_update
            chosen = dict(patient_prefs.get("choice") or {})
            chosen[lesion_id] = value
            patient_prefs["choice"] = chosen
        choices[key] = patient_prefs
        return choices, (f"Added with a warning: {warned}" if warned else "")
