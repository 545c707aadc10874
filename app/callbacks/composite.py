"""Callbacks of the composite / MDT page: the summary, the tidy CSV and the PDF report."""

from __future__ import annotations

import tempfile
from pathlib import Path

import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update

from rtplan_assist.errors import RtplanAssistError
from rtplan_assist.escape import safe_filename
from rtplan_assist.evaluation import result_to_csv
from rtplan_assist.report import render_report_pdf

from ..decisions import log_export, pdf_attribution
from ..views import composite_table, status_badge, verdict_alert, worst_first
from ._shared import (
    composite_status,
    contributing_lesions,
    error_alert,
    loaded_patient,
    prefs,
)

__all__ = ["register"]


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
        rec = result.recommendation  # over the catalogue and this session's added regimens
        rows = []
        for les in result.lesions:
            chosen = choice[les.lesion_id]
            lesion_rows = [r for r in result.chosen_rows() if r.lesion_id == les.lesion_id
                           and r.role == "oar" and r.structure]
            worst = composite_status(lesion_rows)
            rows.append(html.Tr([
                html.Td(dcc.Link(les.lesion_id, href=f"/lesion/{les.lesion_id}")),
                html.Td(les.label), html.Td(les.site),
                html.Td(html.B(chosen.label), id=f"composite-chosen-{les.lesion_id}"),
                html.Td(f"{chosen.bed10_gy():.1f} Gy (LQ, α/β = 10 Gy)"),
                html.Td(rec.choice[les.lesion_id].label),
                html.Td(rec.binding.get(les.lesion_id, "—"), className="small"),
                html.Td(status_badge(worst)),
            ]))
        chosen_table = dbc.Table([
            html.Thead(html.Tr([html.Th(t) for t in (
                "Lesion", "Plan", "Site", "Chosen regimen", "BED10", "Recommended",
                "Binding constraint (recommendation)", "Own OAR constraints")])),
            html.Tbody(rows)], bordered=True, size="sm", id="chosen-table")
        comp_rows = worst_first(r for r in result.composite_rows if r.structure)
        absent = sorted({r.organ for r in result.composite_rows if not r.structure})
        return [
            verdict_alert(result.verdict(), rec.explanation),
            html.H5("Chosen regimen per lesion"), chosen_table,
            html.H5("Composite OAR table (EQD2, LQ, each organ's α/β; limits converted)"),
            composite_table(comp_rows, contributors),
            html.P([html.B("Constrained organs absent from the case (not evaluable): "),
                    ", ".join(absent) or "none"], className="small"),
            html.H5("Caveats"), html.Ul([html.Li(c) for c in result.caveats], className="small"),
            html.H5("Warnings"),
            html.Ul([html.Li(w) for w in result.warnings], className="small")
            if result.warnings else html.P("None."),
        ]

    @app.callback(Output("download-csv", "data"), Input("export-csv", "n_clicks"),
                  State("loaded", "data"), State("choices", "data"), State("session-id", "data"),
                  prevent_initial_call=True)
    def export_csv(_n, loaded_data, choices, session):
        if not loaded_data:
            return no_update
        loaded = loaded_patient(services, loaded_data, session)
        result, _ = loaded.result(prefs(choices, loaded.entry.key))
        log_export("CSV", result.patient_id)
        name = safe_filename(result.patient_id, "_evaluation.csv")
        return dcc.send_string(result_to_csv(result), filename=name)

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
