"""Screen 5: composite / MDT summary with the export of the report and the tidy CSV."""

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html
from rtplan_assist.app.decisions import decision_panel

dash.register_page(__name__, path="/composite", name="Composite / MDT",
                   title="rtplan-assist: composite", order=4)


def layout(**_query):
    return html.Div([
        html.H3("Composite / MDT summary", className="page-title"),
        html.Div([
            dbc.Button("Download tidy CSV", id="export-csv", color="primary", className="me-2",
                       n_clicks=0),
            dbc.Button("Download PDF report", id="export-pdf", color="secondary", n_clicks=0),
            dbc.Checkbox(id="export-csv-drop", value=False, className="d-inline-block ms-3",
                         label="CSV without the not-evaluable rows (missing structures, no "
                               "cited limit; the verdict still counts them)"),
            dcc.Download(id="download-csv"),
            dcc.Download(id="download-pdf"),
            html.Div(id="export-message", className="small mt-1"),
        ], className="mb-3"),
        dcc.Loading(html.Div(id="composite-content"), type="dot", delay_show=300),
        decision_panel(),
    ])
