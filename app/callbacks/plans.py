"""The plan form: when a patient gives no lesion (plans without a prescription, several PTVs and
no referenced ROI), each plan with why it is not a lesion, and per plan its target ROI(s) and
prescription to give; submitting prepares the patient with them (``evaluate --target
PLAN=ROI[,ROI...] --prescription PLAN=DOSE/FRACTIONS``, PLAN: the RTPLAN's file name)."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, dcc, html, no_update

from rtplan_assist.errors import RtplanAssistError
from rtplan_assist.regimens import parse_regimen

__all__ = ["plan_form", "plan_options", "register"]


def plan_form(exc, given=()) -> html.Div:
    """The refusal (``exc``: :class:`~..services.prepared.PlanOptionsNeeded`) and a row per
    plan: its reasons, a target picker (the case's contoured structures) and a prescription,
    filled with what the user ``given`` before (``[["--target", "PLAN=ROI,ROI"], ...]``)."""
    structures = [{"label": s, "value": s} for s in exc.form["structures"]]
    earlier: dict[tuple[str, str], str] = {}
    for option, value in given or ():
        plan, _, text = value.rpartition("=")
        earlier[(option, plan)] = text
    rows = []
    for plan in exc.form["plans"]:
        key = plan["key"]
        rows.append(html.Tr([
            html.Td([html.B(plan["label"]), html.Br(), html.Small(key)]),
            html.Td(html.Ul([html.Li(r) for r in plan["reasons"]], className="mb-0"),
                    id={"type": "plan-reason", "plan": key}),
            html.Td(dcc.Dropdown(structures, multi=True, placeholder="the plan's own target",
                                 value=[r for r in earlier.get(("--target", key), "").split(",")
                                        if r] or None,
                                 id={"type": "plan-target", "plan": key})),
            html.Td(dbc.Input(placeholder="e.g. 54/3 (Gy/fractions)", type="text",
                              value=earlier.get(("--prescription", key)),
                              id={"type": "plan-rx", "plan": key})),
        ]))
    return html.Div([
        dbc.Alert(str(exc), color="warning", className="mb-2"),
        html.H5("Give the targets and prescriptions of the plans"),
        html.P("Target: one or more structures (several targets of one plan give one lesion "
               "each, sharing the plan's dose and regimen); empty keeps the plan's own target. "
               "Prescription: total dose in Gy / number of fractions; empty keeps the plan's."),
        dbc.Table([html.Thead(html.Tr([html.Th(t) for t in (
            "Plan", "Why it is not a lesion", "Target ROI(s)", "Prescription")])),
            html.Tbody(rows)], bordered=True, size="sm", id="plan-form"),
        dbc.Button("Evaluate with these targets and prescriptions", id="plan-form-submit",
                   color="primary", className="mb-2"),
        html.Div(id="plan-form-message"),
    ], id="plan-form-panel")


def plan_options(target_values, target_ids, rx_values, rx_ids) -> list[list[str]]:
    """The form's values as ``[["--target", "PLAN=ROI,ROI"], ["--prescription",
    "PLAN=D/n"]]``.

    Raises
    ------
    EvaluationError
        A prescription that is not DOSE/FRACTIONS (the message names the plan), or nothing
        given at all.
    """
    from rtplan_assist.errors import EvaluationError

    options = []
    for value, ident in zip(target_values or [], target_ids or []):
        if value:
            options.append(["--target", f"{ident['plan']}={','.join(value)}"])
    for value, ident in zip(rx_values or [], rx_ids or []):
        text = (value or "").strip()
        if text:
            try:
                regimen = parse_regimen(text)
            except EvaluationError as exc:
                raise EvaluationError(f"prescription of plan {ident['plan']}: {exc}") from None
            options.append(["--prescription",
                            f"{ident['plan']}={regimen.total_dose_gy:g}/{regimen.fractions}"])
    if not options:
        raise EvaluationError("give a target or a prescription for at least one plan")
    return options


def register(app, services) -> None:
    @app.callback(
        Output("patient", "data", allow_duplicate=True),
        Output("plan-form-message", "children"),
        Input("plan-form-submit", "n_clicks"),
        State({"type": "plan-target", "plan": ALL}, "value"),
        State({"type": "plan-target", "plan": ALL}, "id"),
        State({"type": "plan-rx", "plan": ALL}, "value"),
        State({"type": "plan-rx", "plan": ALL}, "id"),
        State("patient", "data"),
        prevent_initial_call=True,
    )
    def submit_plan_form(n_clicks, target_values, target_ids, rx_values, rx_ids, patient):
        if not n_clicks or not patient:
            return no_update, no_update
        try:
            options = plan_options(target_values, target_ids, rx_values, rx_ids)
        except RtplanAssistError as exc:
            return no_update, dbc.Alert(str(exc), color="danger", className="mb-2",
                                        id="plan-form-error")
        return {"key": patient["key"], "plan_options": options}, None
