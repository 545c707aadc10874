"""Screen 4: CT slices with a lesion's scaled dose (or the composite EQD2) and contours."""

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html
from rtplan_assist.app.pages._nav import lesion_tabs

dash.register_page(__name__, path_template="/dose/<lesion_id>", name="Dose view",
                   title="rtplan-assist: dose", order=3)


def layout(lesion_id: str = "composite", **_query):
    composite = lesion_id == "composite"
    return html.Div([
        dcc.Store(id="page-dose", data=lesion_id),
        dcc.Store(id="dose-goto-point", data=None),
        None if composite else lesion_tabs(lesion_id, "dose"),
        html.H3("Composite EQD2 of all lesions" if composite else f"Dose — lesion {lesion_id}",
                className="page-title"),
        dbc.Row([
            dbc.Col([dbc.Label("Plane"),
                     dbc.RadioItems(id="dose-plane", inline=True, value="axial",
                                    options=[{"label": p, "value": p}
                                             for p in ("axial", "coronal", "sagittal")])],
                    md=3),
            dbc.Col([dbc.Label("Regimen" if not composite else "α/β of the EQD2 grid"),
                     dcc.Dropdown(id="dose-regimen", clearable=False)], md=3),
            dbc.Col([dbc.Label("Go to", html_for="dose-goto"),
                     dcc.Dropdown(id="dose-goto", placeholder="a lesion or an OAR's maximum",
                                  clearable=True)], md=4),
        ], className="mb-2"),
        html.Div(id="dose-goto-message", className="small text-muted"),
        dbc.Label("Slice position (mm)", html_for="dose-slider"),
        dcc.Slider(id="dose-slider", min=0, max=1, step=1, value=0, updatemode="mouseup",
                   tooltip={"placement": "bottom", "always_visible": False}),
        dcc.Loading(dcc.Graph(id="dose-graph", config={"displaylogo": False}), type="dot",
                    delay_show=300),
        html.Div("Isodose lines dashed, structure outlines solid; no structure shares an "
                 "isodose colour. Letters at the edges: patient right/left (R/L), anterior/"
                 "posterior (A/P), superior/inferior (S/I), from the images' "
                 "ImageOrientationPatient.", className="small text-muted"),
    ])
