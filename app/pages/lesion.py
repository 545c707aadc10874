"""Screen 2: one lesion's decision (sticky summary) and its regimens side by side."""

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html
from rtplan_assist.app.lesion_view import QUALITY_TITLE, quality_placeholder
from rtplan_assist.app.pages._nav import lesion_tabs

dash.register_page(__name__, path_template="/lesion/<lesion_id>", name="Lesion comparison",
                   title="rtplan-assist: lesion", order=1)


def layout(lesion_id: str = "L1", **_query):
    return html.Div([
        dcc.Store(id="page-lesion", data=lesion_id),
        dcc.Store(id="lesion-recommended"),
        dcc.Store(id="lesion-rendered"),
        dcc.Store(id="lesion-table-scrolled"),
        lesion_tabs(lesion_id, "comparison"),
        html.Div([
            html.H3(id="lesion-title", children=f"Lesion {lesion_id}", className="page-title"),
            dbc.Row([
                dbc.Col([
                    dbc.Label("Chosen regimen", html_for="lesion-choice", className="mb-0"),
                    dcc.Dropdown(id="lesion-choice", clearable=False),
                ], md=4),
                dbc.Col([
                    dbc.Button("Reset to the recommendation", id="reset-regimen", n_clicks=0,
                               color="outline-primary", size="sm", disabled=True,
                               className="mt-4"),
                ], md="auto"),
                dbc.Col([
                    dbc.Label("Add a regimen: fractions n, total dose D (Gy)", className="mb-0"),
                    dbc.InputGroup([
                        dbc.Input(id="add-n", type="number", min=1, step=1, placeholder="n"),
                        dbc.InputGroupText("fx"),
                        dbc.Input(id="add-d", type="number", min=0.1, step=0.1, placeholder="D"),
                        dbc.InputGroupText("Gy"),
                        dbc.Button("Add", id="add-regimen", color="secondary", n_clicks=0),
                    ], size="sm"),
                ], md=4),
                dbc.Col(html.Div(id="added-regimens", className="mt-4"), md=True),
            ], className="g-2 mb-1 align-items-start"),
            html.Div(id="add-error", className="small text-danger"),
            html.Div(id="lesion-summary", className="lesion-summary-lines"),
        ], className="lesion-summary", id="lesion-summary-box"),
        html.Div(id="lesion-reasons", className="lesion-summary-lines"),
        dbc.Switch(id="lesion-show-all", label="Show all constraints (one row per constraint)",
                   value=False, className="my-1 small"),
        dcc.Loading(html.Div(id="lesion-table"), type="dot", delay_show=300),
        dcc.Loading(html.Div(id="lesion-composite"), type="dot", delay_show=300),
        # collapsed by default; its indices are computed when it is first opened
        dbc.Accordion([dbc.AccordionItem(html.Div(quality_placeholder(), id="lesion-quality"),
                                         title=QUALITY_TITLE, item_id="quality")],
                      id="lesion-quality-section", start_collapsed=True, active_item=None,
                      className="mb-3 quality-section"),
    ])
