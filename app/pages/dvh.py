"""Screen 3: DVHs of one lesion's target and OARs for selected regimens."""

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html
from rtplan_assist.app.pages._nav import lesion_tabs

dash.register_page(__name__, path_template="/dvh/<lesion_id>", name="DVH",
                   title="rtplan-assist: DVH", order=2)


def layout(lesion_id: str = "L1", **_query):
    return html.Div([
        dcc.Store(id="page-dvh", data=lesion_id),
        lesion_tabs(lesion_id, "dvh"),
        html.H3(f"DVH — lesion {lesion_id}", className="page-title"),
        dbc.Row([
            dbc.Col([dbc.Label("Regimens"),
                     dcc.Dropdown(id="dvh-regimens", multi=True)], md=7),
            dbc.Col([dbc.Label("Dose axis"),
                     dbc.RadioItems(id="dvh-kind", inline=True, value="physical", options=[
                         {"label": "physical dose (Gy)", "value": "physical"},
                         {"label": "EQD2 (Gy, LQ, each structure's α/β)", "value": "EQD2"},
                     ])], md=5),
        ], className="mb-2"),
        dcc.Loading(dcc.Graph(id="dvh-graph", config={"displaylogo": False}), type="dot",
                    delay_show=300),
        html.Div("Markers: the constraint limits of every selected regimen, on either dose "
                 "axis (one symbol per regimen; fill: the structure's colour; outline: the "
                 "status). The number of a marker is its row in the table below; hover for "
                 "the metric, limit, model and α/β, source and fraction number. On the EQD2 "
                 "axis a limit is mapped with the curve's own LQ conversion (its α/β, the "
                 "regimen's fraction number).", className="small text-muted"),
        html.Details([html.Summary("Table of the constraint markers"),
                      html.Div(id="dvh-markers")], open=False, className="mt-2"),
    ])
