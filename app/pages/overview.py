"""Screen 1: patient overview (lesions, OARs and names, plans and doses, loading warnings)."""

import dash
from dash import html

dash.register_page(__name__, path="/", name="Overview", title="rtplan-assist: overview", order=0)


def layout(**_query):
    return html.Div([
        html.H3("Patient overview", className="page-title"),
        html.Div(id="overview-content", children=html.Div(
            "Waiting for the patient to be prepared…", className="text-muted")),
    ])
