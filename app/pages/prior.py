"""Screen: the prior course (re-irradiation) of the patient, cumulative EQD2 per organ."""

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

dash.register_page(__name__, path="/prior", name="Prior course",
                   title="rtplan-assist: prior course", order=6)


def layout(**_query):
    return html.Div([
        html.H3("Prior course (re-irradiation)", className="page-title"),
        html.P("An earlier course's RTDOSE (and RTPLAN, a rigid REG when it is in another frame "
               "of reference) in a folder next to the patient's, named <patient folder>-prior. "
               "Cumulative EQD2 voxel by voxel with each organ's α/β, for the regimens chosen "
               "on the composite page; the recovery discounts the prior term only.",
               className="small text-muted"),
        dbc.Row([
            dbc.Col([dbc.Label("Prior-course folder"),
                     dcc.Dropdown(id="prior-folder", clearable=False)], md=4),
            dbc.Col([dbc.Label("Recovery"),
                     dbc.RadioItems(id="prior-recovery", inline=True, value="none", options=[
                         {"label": "none", "value": "none"},
                         {"label": "nieder2006 (cord: 25 % ≥ 6 mo, 50 % ≥ 12 mo)",
                          "value": "nieder2006"}])], md=4),
            dbc.Col([dbc.Label("Interval (days)"),
                     dbc.Input(id="prior-interval", type="number", min=0,
                               placeholder="from the plan dates")], md=2),
            dbc.Col([dbc.Label("Prior fractions"),
                     dbc.Input(id="prior-fractions", type="number", min=1, step=1,
                               placeholder="from its RTPLAN")], md=2),
        ], className="mb-2"),
        dbc.Button("Evaluate the prior course", id="prior-run", color="primary", n_clicks=0,
                   className="mb-3"),
        dcc.Loading(html.Div(id="prior-content"), type="dot", delay_show=300),
        html.H5("EQD2 DVHs per course"),
        dbc.Row([dbc.Col([dbc.Label("Structure"),
                          dcc.Dropdown(id="prior-organ", clearable=False)], md=4)]),
        dcc.Loading(dcc.Graph(id="prior-dvh", config={"displaylogo": False}), type="dot",
                    delay_show=300),
    ])
