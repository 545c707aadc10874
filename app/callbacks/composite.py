"""Callbacks of the composite / MDT page: the summary, the tidy CSV and the PDF report."""

from __future__ import annotations

import tempfile
from pathlib import Path

import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update

from rtplan_assist.errors import RtplanAssistError
from rtplan_assist.escape import safe_filename
from rtplan_assist.evaluation import result_to_csv
from rtplan_assist.evaluation.reasons import (
    chosen_reason,
    composite_reason,
    lesion_reasons,
    recommended_reason,
)
from rtplan_assist.report import render_report_pdf

from ..decisions import log_export, pdf_attribution
from ..mdt import choice_table, headroom_table, reason_block
from ..views import verdict_alert
from ._shared import (
    composite_status,
    contributing_lesions,
    error_alert,
    loaded_patient,
    prefs,
)

__all__ = ["composite_page", "register"]


def _banner_lines(result, choice, own: dict) -> list[str]:
    """What the banner says besides the verdict, in plain words
    (:mod:`rtplan_assist.evaluation.reasons`): the composite of the shown regimens, each lesion
    whose chosen regimen is not the recommended one, and each lesion whose own mandatory
    limits fail or cannot be judged at the shown regimen."""
    lines = [composite_reason(result).text]
    rec = result.recommendation.choice
    for lid in sorted(choice):
        if choice[lid].label != rec[lid].label:
            lines.append(chosen_reason(result, lid).text)
        elif own[lid] in ("fail", "not evaluable"):
            lines.append(recommended_reason(result, lid).text)
    if all(choice[lid].label == rec[lid].label for lid in choice):
        lines.append("The shown regimens are the recommended ones.")
    return lines


def composite_page(result, choice, contributors) -> list:
    """The page body: banner, choice per lesion, mandatory then advisory composite limits
    sorted by headroom (tightest first), absent organs, caveats and warnings."""
    rec = result.recommendation
    own = {}
    for les in result.lesions:
        own[les.lesion_id] = composite_status(
            [r for r in result.chosen_rows() if r.lesion_id == les.lesion_id
             and r.role == "oar" and r.structure])
    reasons = {les.lesion_id: reason_block(lesion_reasons(result, les.lesion_id))
               for les in result.lesions}
    comp = [r for r in result.composite_rows if r.structure and r.role == "oar"]
    mandatory = [r for r in comp if r.priority == "mandatory"]
    advisory = [r for r in comp if r.priority != "mandatory"]
    absent = sorted({r.organ for r in result.composite_rows if not r.structure})
    return [
        verdict_alert(result.verdict(), _banner_lines(result, choice, own)),
        html.H5("Regimen per lesion: planned, recommended, chosen"),
        choice_table(result.lesions, choice, rec.choice,
                     {les.lesion_id: les.planned for les in result.lesions}, own, reasons),
        html.H5("Mandatory composite limits (EQD2, LQ, each organ's α/β; limits converted), "
                "tightest first"),
        html.P("These decide the verdict above. Headroom: the composite value as a "
               "percentage of its limit, and the margin left (or the excess) in the limit's "
               "unit.", className="small text-muted"),
        headroom_table(mandatory, contributors, table_id="composite-table"),
        html.Details([
            html.Summary(f"Advisory composite limits ({len(advisory)} rows: single-course "
                         "limits re-expressed in EQD2; shown, not deciding the verdict)"),
            headroom_table(advisory, contributors, table_id="composite-advisory-table",
                           advisory=True),
        ], className="mb-3"),
        html.P([html.B("Constrained organs absent from the case (not evaluable): "),
                ", ".join(absent) or "none"], className="small"),
        html.H5("Caveats"), html.Ul([html.Li(c) for c in result.caveats], className="small"),
        html.H5("Warnings"),
        html.Ul([html.Li(w) for w in result.warnings], className="small")
        if result.warnings else html.P("None."),
    ]


def register(app, services) -> None:
    @app.callback(Output("composite-content", "children"), Input("loaded", "data"),
                  Input("choices", "data"), State("session-id", "data"))
    def render_composite(loaded_data, choices, session):
        if not loaded_data:
            return no_update
        try:
            loaded = loaded_patient(services, loaded_data, session)
            result, choice = loaded.result(prefs(choices, loaded.entry.key))
            with loaded.lock:
                contributors = contributing_lesions(loaded, choice)
        except RtplanAssistError as exc:
            return error_alert(exc)
        return composite_page(result, choice, contributors)

    @app.callback(Output("download-csv", "data"), Input("export-csv", "n_clicks"),
                  State("export-csv-drop", "value"),
                  State("loaded", "data"), State("choices", "data"), State("session-id", "data"),
                  prevent_initial_call=True)
    def export_csv(_n, drop_not_evaluable, loaded_data, choices, session):
        if not loaded_data:
            return no_update
        loaded = loaded_patient(services, loaded_data, session)
        result, _ = loaded.result(prefs(choices, loaded.entry.key))
        log_export("CSV", result.patient_id)
        name = safe_filename(result.patient_id, "_evaluation.csv")
        return dcc.send_string(
            result_to_csv(result, drop_not_evaluable=bool(drop_not_evaluable)), filename=name)

    @app.callback(Output("download-pdf", "data"), Output("export-message", "children"),
                  Input("export-pdf", "n_clicks"),
                  State("loaded", "data"), State("choices", "data"), State("session-id", "data"),
                  prevent_initial_call=True)
    def export_pdf(_n, loaded_data, choices, session):
        if not loaded_data:
            return no_update, no_update
        loaded = loaded_patient(services, loaded_data, session)
        result, choice = loaded.result(prefs(choices, loaded.entry.key))
        attribution = pdf_attribution(services, result.patient_id, choice)
        with tempfile.TemporaryDirectory(dir=services.workdir) as tmp:
            # the PatientID comes from the files: reduced to one safe name inside tmp
            path = Path(tmp) / safe_filename(result.patient_id, "_report.pdf")
            try:
                with loaded.lock:
                    render_report_pdf(result, loaded.evaluator, path,
                                      deidentify=services.deidentify, attribution=attribution)
            except RtplanAssistError as exc:
                return no_update, dbc.Alert(f"No PDF: {exc}", color="warning")
            data = path.read_bytes()
        return dcc.send_bytes(data, filename=path.name), ""
