"""Screen 2: one lesion's regimens side by side against every OAR constraint."""

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html
from rtplan_assist.app.pages._nav import lesion_tabs

dash.register_page(__name__, path_template="/lesion/<lesion_id>", name="Lesion comparison",
                   title="rtplan-assist: lesion", order=1)


def layout(lesion_id: str = "L1", **_query):
    return html.Div([
        dcc.Store(id="page-lesion", data=lesion_id),
        lesion_tabs(lesion_id, "comparison"),
        html.H3(id="lesion-title", children=f"Lesion {lesion_id}", className="page-title"),
        dbc.Row([
            dbc.Col([
                dbc.Label("Regimen chosen for this lesion", html_for="lesion-choice"),
                dcc.Dropdown(id="lesion-choice", clearable=False),
            ], md=4),
            dbc.Col([
                dbc.Label("Add a regimen: fractions n and total dose D (Gy)"),
                dbc.InputGroup([
                    dbc.Input(id="add-n", type="number", min=1, step=1, placeholder="n"),
                    dbc.InputGroupText("fx"),
                    dbc.Input(id="add-d", type="number", min=0.1, step=0.1, placeholder="D"),
                    dbc.InputGroupText("Gy"),
                    dbc.Button("Add", id="add-regimen", color="secondary", n_clicks=0),
                ]),
                html.Div(id="add-error", className="small text-danger mt-1"),
            ], md=6),
        ], className="mb-3 g-3"),
        dcc.Loading(html.Div(id="lesion-table"), type="dot", delay_show=300),
        dcc.Loading(html.Div(id="lesion-composite"), type="dot", delay_show=300),
    ])
