"""Callback of the overview page: lesions, organs and names, plans and doses, warnings."""

from __future__ import annotations

import math
from pathlib import Path

import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update

from rtplan_assist.errors import RtplanAssistError

from ..services import LoadedPatient
from ..views import fmt_number
from ._shared import error_alert, loaded_patient, prefs

__all__ = ["overview_children", "register"]


def overview_children(loaded: LoadedPatient, choice: dict, prefs: dict | None = None) -> list:
    ev = loaded.evaluator
    case = loaded.case
    rec = loaded.recommendation_for(prefs)
    lesion_rows = []
    with loaded.lock:
        for les in ev.lesions:
            names = [les.target.name] + ([les.gtv.name] if les.gtv else [])
            dvhs = ev.lesion_dvhs(les.lesion_id, les.planned, "physical", structures=names)
            vol = dvhs[les.target.name].volume_cc if les.target.name in dvhs else math.nan
            gtv = (f"{les.gtv.name} {fmt_number(dvhs[les.gtv.name].volume_cc, 'cc', 1)}"
                   if les.gtv and les.gtv.name in dvhs else "—")
            chosen = choice[les.lesion_id]
            lesion_rows.append(html.Tr([
                html.Td(dcc.Link(les.lesion_id, href=f"/lesion/{les.lesion_id}",
                                 id=f"link-{les.lesion_id}")),
                html.Td(les.label), html.Td(les.site),
                html.Td(f"{les.target.name} {fmt_number(vol, 'cc', 1)}"), html.Td(gtv),
                html.Td(f"{les.planned.label} (BED10 {les.planned.bed10_gy():.1f} Gy, LQ)"),
                html.Td(rec.choice[les.lesion_id].label),
                html.Td(html.B(chosen.label), id=f"overview-chosen-{les.lesion_id}"),
                html.Td(les.dose_scale_note or ""),
            ]))
    lesions = dbc.Table([
        html.Thead(html.Tr([html.Th(t) for t in (
            "Lesion", "Plan label", "Site (organ)", "Target volume", "GTV volume",
            "Planned regimen", "Recommended", "Chosen", "Dose note")])),
        html.Tbody(lesion_rows)], bordered=True, size="sm", hover=True, id="lesion-list")
    nm = ev.name_match
    oars = dbc.Table([
        html.Thead(html.Tr([html.Th("Structure in the case"), html.Th("TG-263 name"),
                            html.Th("How matched")])),
        html.Tbody([html.Tr([html.Td(name), html.Td(tg), html.Td(nm.rule.get(name, ""))])
                    for name, tg in nm.matched.items()])], size="sm", bordered=True)
    unmatched = ", ".join(nm.unmatched) or "none"
    missing = ", ".join(getattr(nm, "missing", ()) or ()) or "none"
    plans = dbc.Table([
        html.Thead(html.Tr([html.Th(t) for t in ("Plan", "Fractions", "Prescription",
                                                 "Dose file", "Grid (x×y×z)", "Spacing")])),
        html.Tbody([html.Tr([
            html.Td(les.plan.label or les.plan.name),
            html.Td(str(les.plan.fractions)),
            html.Td(fmt_number(les.plan.prescription_gy, "Gy", 1)),
            html.Td(Path(les.dose.path).name),
            html.Td("×".join(str(n) for n in les.dose.grid.shape[::-1])),
            html.Td(" × ".join(f"{s:g}" for s in les.dose.grid.spacing) + " mm"),
        ]) for les in ev.lesions])], size="sm", bordered=True)
    warnings = list(dict.fromkeys(ev.warnings))
    return [
        html.P([html.B(f"{case.patient_name or 'Patient'} — {case.patient_id}"),
                (f" · {len(ev.lesions)} lesions · {len(case.structures)} structures · "
                f"CT {'present' if case.ct is not None else 'absent'} · source: "
                f"{loaded.entry.label}")]),
        *_user_plan_options(loaded),
        html.H5("Lesions"), lesions,
        html.H5("Organs at risk found"), oars,
        html.P([html.B("Names not matched to TG-263: "), unmatched]),
        html.P([html.B("Constrained organs absent from the case: "), missing]),
        html.H5("Plans and dose grids"), plans,
        html.H5("Warnings from loading"),
        html.Ul([html.Li(w) for w in warnings]) if warnings else html.P("None."),
    ]


def _user_plan_options(loaded: LoadedPatient) -> list:
    """The targets and prescriptions given by the user in the plan form, said as such."""
    options = getattr(loaded.entry, "plan_options", ())
    if not options:
        return []
    texts = []
    for option, value in options:
        plan, _, given = value.rpartition("=")
        if option == "--prescription":
            dose, _, fractions = given.partition("/")
            texts.append(f"{plan}: prescription {dose} Gy in {fractions} fractions")
        else:
            texts.append(f"{plan}: target {given.replace(',', ', ')}")
    return [html.P([html.B("Given by the user (not in the RTPLAN): "), "; ".join(texts)],
                   id="user-plan-options")]


def register(app, services) -> None:
    @app.callback(Output("overview-content", "children"), Input("loaded", "data"),
                  Input("choices", "data"), State("session-id", "data"))
    def render_overview(loaded_data, choices, session):
        if not loaded_data:
            if services.mode == "root":
                return html.P("Choose a patient in the picker above, or upload one.")
            return no_update
        try:
            loaded = loaded_patient(services, loaded_data, session)
            patient_prefs = prefs(choices, loaded.entry.key)
            choice = loaded.choice(patient_prefs)
            return overview_children(loaded, choice, patient_prefs)
        except RtplanAssistError as exc:
            return error_alert(exc)
