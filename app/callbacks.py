"""Every callback of the app, registered on one app with its state in the closure.

Data flow: ``session-id`` (per browser tab) → ``patient`` (picker, upload or default) → the
background job prepares the patient (``loaded``) → each screen renders from the session's
cached evaluator. User choices (regimen per lesion, added regimens) live in the tab's
``choices`` store, keyed by patient; the server keeps no per-user choice.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import secrets
import tempfile
from pathlib import Path

import dash_bootstrap_components as dbc
import numpy as np
from dash import Input, Output, State, ctx, dcc, html, no_update

from rtplan_assist.errors import RtplanAssistError
from rtplan_assist.evaluation import rows_verdict

from .figures import dose_slice_figure, dvh_figure, structure_colour
from .state import AppState, LoadedPatient
from .views import (
    comparison_table,
    composite_table,
    fmt_number,
    kind_text,
    status_badge,
    verdict_alert,
)

__all__ = ["register_callbacks"]

COMPOSITE_ALPHA_BETAS = (3.0, 2.0, 10.0)


def _error(exc: Exception) -> dbc.Alert:
    return dbc.Alert(str(exc), color="danger", className="mb-2")


def upload_refusal(exc: Exception) -> str:
    """``Upload refused: <reason>`` for an upload error (its own leading ``refused:`` dropped)."""
    reason = str(exc)
    if reason.lower().startswith("refused: "):
        reason = reason[len("refused: "):]
    return f"Upload refused: {reason}"


def _prefs(choices: dict | None, key: str) -> dict:
    return dict((choices or {}).get(key) or {})


def lesion_rows_by_regimen(loaded: LoadedPatient, lesion_id: str) -> dict[str, list]:
    """Regimen label -> lesion rows, for every regimen of the lesion (cached in the evaluator)."""
    ev = loaded.evaluator
    return {r.label: ev.lesion_rows(lesion_id, r) for r in ev.regimens_for(lesion_id)}


def regimen_change(loaded: LoadedPatient, prefs: dict, lesion_id: str):
    """The server work of a regimen change: the comparison rows and the composite rows.

    Returns ``(choice, rows_by_regimen, composite_rows, contributors)``; this is what
    ``benches/bench_app.py`` times.
    """
    with loaded.lock:
        choice = loaded.choice(prefs)
        rows = lesion_rows_by_regimen(loaded, lesion_id)
        composite = loaded.evaluator.composite_rows(choice)
        contributors = contributing_lesions(loaded, choice)
    return choice, rows, composite, contributors


def composite_status(rows) -> str:
    """``fail`` / ``not evaluable`` / ``pass`` of the mandatory rows, by the engine's rule."""
    return rows_verdict(rows)


def contributing_lesions(loaded: LoadedPatient, choice: dict) -> dict[str, list[str]]:
    """Structure name -> ``["L2 (Dmax 35.1 Gy EQD2)", ...]``: the engine's contributing
    lesions of each constrained organ (:meth:`CaseEvaluator.contributors`), each with its own
    EQD2 Dmax (the organ's α/β, LQ) at the chosen regimen."""
    ev = loaded.evaluator
    out: dict[str, list[str]] = {}
    dmax: dict[tuple[str, str], float] = {}
    names = [s.name for s in ev.oar_structures.values()]
    for lesion in ev.lesions:
        dvhs = ev.lesion_dvhs(lesion.lesion_id, choice[lesion.lesion_id], "EQD2",
                              structures=names)
        for name, dvh in dvhs.items():
            dmax[(lesion.lesion_id, name)] = dvh.dmax_gy
    for organ, structure in ev.oar_structures.items():
        texts = []
        for lid in ev.contributors(organ):
            value = dmax.get((lid, structure.name))
            texts.append(f"{lid} (Dmax {value:.1f} Gy)" if value is not None else lid)
        out[structure.name] = texts
    return out


def tidy_csv(result) -> str:
    """The tidy table (one row per metric, every column of ``TIDY_COLUMNS``) as CSV text."""
    from rtplan_assist.evaluation import TIDY_COLUMNS, result_rows_tidy

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(TIDY_COLUMNS), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in result_rows_tidy(result):
        writer.writerow({k: ("" if v is None or (isinstance(v, float) and math.isnan(v))
                             else v) for k, v in row.items()})
    return buf.getvalue()


# -- overview -------------------------------------------------------------------------------
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
        html.H5("Lesions"), lesions,
        html.H5("Organs at risk found"), oars,
        html.P([html.B("Names not matched to TG-263: "), unmatched]),
        html.P([html.B("Constrained organs absent from the case: "), missing]),
        html.H5("Plans and dose grids"), plans,
        html.H5("Warnings from loading"),
        html.Ul([html.Li(w) for w in warnings]) if warnings else html.P("None."),
    ]


# -- lesion comparison ------------------------------------------------------------------------
def composite_summary(rows, contributors: dict, *, lesion_oars: set[str] | None = None,
                      limit: int = 6) -> html.Div:
    """Verdict badge and the worst composite rows of the OARs that matter to one lesion."""
    status = composite_status(rows)
    shown = [r for r in rows if r.structure and (lesion_oars is None or r.structure in
                                                  lesion_oars)]
    shown.sort(key=lambda r: ({"fail": 0, "goal missed": 1, "not evaluable": 2}.get(r.status, 3),
                              r.structure))
    return html.Div([
        html.H5(["Composite of all lesions with these choices: ",
                 html.Span(status_badge(status), id="composite-status")], className="mt-3"),
        composite_table(shown[:limit], contributors, compact=True),
        html.Div([(f"The {min(limit, len(shown))} worst of {len(shown)} composite rows for this "
                  "lesion's OARs (EQD2, LQ, each organ's α/β). All rows: "),
                  dcc.Link("Composite / MDT", href="/composite"), "."],
                 className="small text-muted"),
    ], className="mb-3")


class _Scrubbing:
    """``app`` whose ``callback`` decorator passes every answer through ``state.scrub``
    (de-identified mode); background callbacks (their progress runs in another process) and
    everything else go to ``app`` unchanged."""

    def __init__(self, app, state: AppState):
        self._app = app
        self._state = state

    def __getattr__(self, name):
        return getattr(self._app, name)

    def callback(self, *args, **kwargs):
        register = self._app.callback(*args, **kwargs)
        if kwargs.get("background"):
            return register
        scrub = self._state.scrub

        def decorate(func):
            @functools.wraps(func)
            def scrubbed(*a, **k):
                return scrub(func(*a, **k))

            return register(scrubbed)

        return decorate


def register_callbacks(app, state: AppState) -> None:
    """Register every callback of the app on ``app``, bound to ``state``."""
    if state.deidentify:
        app = _Scrubbing(app, state)

    # -- session, patient, upload ---------------------------------------------------------------
    @app.callback(Output("session-id", "data"), Input("session-id", "modified_timestamp"),
                  State("session-id", "data"))
    def ensure_session(_ts, session):
        if session:
            return no_update
        return secrets.token_hex(16)

    @app.callback(
        Output("patient", "data"), Output("patient-picker", "options"),
        Output("patient-picker", "value"), Output("upload-message", "children"),
        Input("session-id", "data"), Input("patient-picker", "value"),
        Input("upload", "contents"),
        State("upload", "filename"), State("patient", "data"),
    )
    def select_patient(session, picked, contents, filenames, current):
        if not session:
            return no_update, no_update, no_update, no_update
        state.touch(session)
        trigger = ctx.triggered_id
        message = None
        key = None
        if trigger == "upload" and contents:
            try:
                entry = state.store_upload(session, contents, filenames)
                key = entry.key
                message = dbc.Alert(f"Uploaded: {entry.label}. Preparing…", color="info",
                                    dismissable=True, className="mb-2")
            except RtplanAssistError as exc:
                message = dbc.Alert(upload_refusal(exc), color="danger",
                                    dismissable=True, className="mb-2", id="upload-error")
        elif trigger == "patient-picker" and picked:
            key = picked
        if key is None:
            key = (current or {}).get("key") or state.default_key()
            try:
                if key:
                    state.entry(key, session)
            except RtplanAssistError:
                key = state.default_key()
        options = state.picker_options(session)
        if key == (current or {}).get("key") and trigger != "upload":
            return no_update, options, key, message
        return ({"key": key} if key else None), options, key, message

    @app.callback(
        Output("loaded", "data"), Output("load-error", "children"),
        Input("patient", "data"), Input("session-id", "data"),
        background=True,
        progress=[Output("load-progress", "value"), Output("load-progress", "max"),
                  Output("load-status", "children")],
        running=[(Output("load-panel", "style"), {"display": "block"}, {"display": "none"})],
    )
    def load_patient(set_progress, patient, session):
        if not patient or not session:
            return None, None
        # a background callback is not wrapped by _Scrubbing: its texts are scrubbed here
        try:
            entry = state.entry(patient["key"], session)
            state.prepare(entry, lambda i, n, text: set_progress((str(i), str(max(n, 1)),
                                                                   state.scrub(text))))
        except RtplanAssistError as exc:
            return None, state.scrub(_error(exc))
        return {"key": patient["key"]}, None

    def _loaded(loaded_data, session) -> LoadedPatient | None:
        if not loaded_data or not session:
            return None
        state.touch(session)
        return state.patient(session, loaded_data["key"])

    # -- overview ---------------------------------------------------------------------------------
    @app.callback(Output("overview-content", "children"), Input("loaded", "data"),
                  Input("choices", "data"), State("session-id", "data"))
    def render_overview(loaded_data, choices, session):
        if not loaded_data:
            if state.mode == "root":
                return html.P("Choose a patient in the picker above, or upload one.")
            return no_update
        try:
            loaded = _loaded(loaded_data, session)
            prefs = _prefs(choices, loaded.entry.key)
            choice = loaded.choice(prefs)
            return overview_children(loaded, choice, prefs)
        except RtplanAssistError as exc:
            return _error(exc)

    # -- lesion comparison ----------------------------------------------------------------------
    @app.callback(
        Output("lesion-title", "children"), Output("lesion-choice", "options"),
        Output("lesion-choice", "value"), Output("lesion-table", "children"),
        Output("lesion-composite", "children"),
        Input("loaded", "data"), Input("choices", "data"),
        State("page-lesion", "data"), State("session-id", "data"),
    )
    def render_lesion(loaded_data, choices, lesion_id, session):
        if not loaded_data:
            return no_update, no_update, no_update, no_update, no_update
        try:
            loaded = _loaded(loaded_data, session)
            choice, rows, composite, contributors = regimen_change(
                loaded, _prefs(choices, loaded.entry.key), lesion_id)
        except RtplanAssistError as exc:
            return no_update, [], None, _error(exc), None
        ev = loaded.evaluator
        lesion = next(les for les in ev.lesions if les.lesion_id == lesion_id)
        rec = loaded.recommendation_for(_prefs(choices, loaded.entry.key))
        recommended = rec.choice[lesion_id].label
        options = [{"label": f"{r.label} (BED10 {r.bed10_gy():.1f} Gy)"
                    + (" — recommended" if r.label == recommended else ""), "value": r.label}
                   for r in ev.regimens_for(lesion_id)]
        title = (f"Lesion {lesion_id}: {lesion.label} · {lesion.site} · target "
                 f"{lesion.target.name} · planned {lesion.planned.label}")
        table = comparison_table(rows, chosen=choice[lesion_id].label, recommended=recommended,
                                 binding=rec.binding.get(lesion_id))
        oars = {r.structure for rs in rows.values() for r in rs if r.role == "oar"
                and r.structure and not math.isnan(r.value) and r.value > 0}
        return (title, options, choice[lesion_id].label, table,
                composite_summary(composite, contributors, lesion_oars=oars))

    @app.callback(
        Output("choices", "data"), Output("add-error", "children"),
        Input("lesion-choice", "value"), Input("add-regimen", "n_clicks"),
        State("add-n", "value"), State("add-d", "value"), State("choices", "data"),
        State("page-lesion", "data"), State("loaded", "data"),
        prevent_initial_call=True,
    )
    def change_choice(value, _clicks, n, dose, choices, lesion_id, loaded_data):
        from rtplan_assist.regimens import Regimen

        if not loaded_data:
            return no_update, no_update
        key = loaded_data["key"]
        choices = dict(choices or {})
        prefs = _prefs(choices, key)
        if ctx.triggered_id == "add-regimen":
            try:
                if n is None or dose is None:
                    raise ValueError("give the number of fractions and the total dose")
                regimen = Regimen(int(n), float(dose))
            except (RtplanAssistError, ValueError, TypeError) as exc:
                return no_update, f"Not added: {exc}"
            added = dict(prefs.get("added") or {})
            labels = list(added.get(lesion_id) or [])
            if regimen.label not in labels:
                labels.append(regimen.label)
            added[lesion_id] = labels
            prefs["added"] = added
            chosen = dict(prefs.get("choice") or {})
            chosen[lesion_id] = regimen.label
            prefs["choice"] = chosen
        else:
            if not value or (prefs.get("choice") or {}).get(lesion_id) == value:
                return no_update, no_update
            chosen = dict(prefs.get("choice") or {})
            chosen[lesion_id] = value
            prefs["choice"] = chosen
        choices[key] = prefs
        return choices, ""

    # -- DVH -------------------------------------------------------------------------------------
    @app.callback(
        Output("dvh-regimens", "options"), Output("dvh-regimens", "value"),
        Input("loaded", "data"), State("choices", "data"), State("page-dvh", "data"),
        State("session-id", "data"),
    )
    def dvh_regimens(loaded_data, choices, lesion_id, session):
        if not loaded_data:
            return no_update, no_update
        loaded = _loaded(loaded_data, session)
        with loaded.lock:
            choice = loaded.choice(_prefs(choices, loaded.entry.key))
            regimens = loaded.evaluator.regimens_for(lesion_id)
        planned = next(les.planned for les in loaded.evaluator.lesions
                       if les.lesion_id == lesion_id)
        values = list(dict.fromkeys([choice[lesion_id].label, planned.label]))
        return [{"label": r.label, "value": r.label} for r in regimens], values

    @app.callback(
        Output("dvh-graph", "figure"),
        Input("dvh-regimens", "value"), Input("dvh-kind", "value"),
        State("loaded", "data"), State("page-dvh", "data"), State("session-id", "data"),
    )
    def render_dvh(labels, kind, loaded_data, lesion_id, session):
        from rtplan_assist.regimens import parse_regimen

        if not loaded_data or not labels:
            return no_update
        loaded = _loaded(loaded_data, session)
        ev = loaded.evaluator
        curves = []
        rows = []
        with loaded.lock:
            lesion = next(les for les in ev.lesions if les.lesion_id == lesion_id)
            for i, label in enumerate(labels):
                regimen = parse_regimen(label)
                dvhs = ev.lesion_dvhs(lesion_id, regimen, kind)
                lesion_rows = ev.lesion_rows(lesion_id, regimen)
                # the lesion's target and its OARs: organs it contributes to (the engine's
                # rule: >= 10 % of its prescription somewhere in the organ)
                keep = {lesion.target.name, getattr(lesion.gtv, "name", None)}
                keep |= {s.name for organ, s in ev.oar_structures.items()
                         if lesion_id in ev.contributors(organ)}
                curves += [(name, label, dvh) for name, dvh in dvhs.items() if name in keep]
                if i == 0:
                    rows = [r for r in lesion_rows if (r.kind == "physical") == (kind ==
                                                                                  "physical")]
        colours = {s.name: structure_colour(s.name, s.color, i)
                   for i, s in enumerate(loaded.case.structures)}
        model = "LQ, α/β per structure (targets 10 Gy)" if kind == "EQD2" else ""
        return dvh_figure(curves, kind=kind, model=model, rows=rows, colours=colours,
                          title=f"Lesion {lesion_id}: target and the OARs it doses (≥ 10 % of Rx)")

    # -- dose view ---------------------------------------------------------------------------------
    @app.callback(
        Output("dose-regimen", "options"), Output("dose-regimen", "value"),
        Input("loaded", "data"), State("choices", "data"), State("page-dose", "data"),
        State("session-id", "data"),
    )
    def dose_options(loaded_data, choices, lesion_id, session):
        if not loaded_data:
            return no_update, no_update
        if lesion_id == "composite":
            return ([{"label": f"EQD2 at α/β = {ab:g} Gy (LQ)", "value": str(ab)}
                     for ab in COMPOSITE_ALPHA_BETAS], str(COMPOSITE_ALPHA_BETAS[0]))
        loaded = _loaded(loaded_data, session)
        with loaded.lock:
            choice = loaded.choice(_prefs(choices, loaded.entry.key))
            regimens = loaded.evaluator.regimens_for(lesion_id)
        return ([{"label": r.label, "value": r.label} for r in regimens],
                choice[lesion_id].label)

    @app.callback(
        Output("dose-slider", "min"), Output("dose-slider", "max"),
        Output("dose-slider", "step"), Output("dose-slider", "value"),
        Output("dose-slider", "marks"),
        Input("dose-plane", "value"), Input("loaded", "data"), State("page-dose", "data"),
        State("session-id", "data"),
    )
    def dose_slider(plane, loaded_data, lesion_id, session):
        if not loaded_data:
            return (no_update,) * 5
        loaded = _loaded(loaded_data, session)
        grid, centre = _view_grid_and_centre(loaded, lesion_id)
        axis = {"axial": 2, "coronal": 1, "sagittal": 0}[plane]
        coords = [grid.x_mm, grid.y_mm, np.asarray(grid.z_mm)][axis]
        step = float(np.median(np.diff(coords))) if len(coords) > 1 else 1.0
        lo, hi = float(coords[0]), float(coords[-1])
        value = float(coords[int(np.argmin(np.abs(coords - centre[axis])))])
        marks = {int(v): f"{v:.0f}" for v in np.linspace(lo, hi, 7)}
        return lo, hi, step, value, marks

    @app.callback(
        Output("dose-graph", "figure"),
        Input("dose-slider", "value"), Input("dose-regimen", "value"),
        State("dose-plane", "value"), State("loaded", "data"), State("choices", "data"),
        State("page-dose", "data"), State("session-id", "data"),
    )
    def render_dose(position, regimen_value, plane, loaded_data, choices, lesion_id, session):
        from rtplan_assist.regimens import parse_regimen

        if not loaded_data or regimen_value is None or position is None:
            return no_update
        loaded = _loaded(loaded_data, session)
        ev = loaded.evaluator
        ct = state.ct_hu(loaded)
        ct_grid = loaded.case.ct.grid if loaded.case.ct is not None else None
        with loaded.lock:
            choice = loaded.choice(_prefs(choices, loaded.entry.key))
            if lesion_id == "composite":
                ab = float(regimen_value)
                grid, dose = ev.composite_eqd2(choice, ab)
                top = float(dose.max())
                levels = [lv for lv in (150, 100, 80, 60, 40, 20, 10) if lv <= top]
                isodoses = [(lv, f"{lv:g} Gy EQD2") for lv in levels]
                label = f"EQD2 (Gy, LQ α/β = {ab:g} Gy, sum of lesions)"
                title = ("Composite EQD2: " + ", ".join(f"{k} {v.label}"
                                                        for k, v in sorted(choice.items())))
                structures = [les.target for les in ev.lesions]
                threshold = 10.0
                wash_max = min(top, 150.0)  # SBRT hot spots would wash out everything else
            else:
                lesion = next(les for les in ev.lesions if les.lesion_id == lesion_id)
                regimen = parse_regimen(regimen_value)
                grid = lesion.dose.grid
                dose = lesion.dose.dose_gy * np.float32(regimen.scale_from(lesion.planned))
                rx = regimen.total_dose_gy
                isodoses = [(rx * p / 100.0, f"{p}% ({rx * p / 100.0:.1f} Gy)")
                            for p in (100, 80, 50, 20)]
                label = f"Dose (Gy, physical, {regimen.label})"
                title = f"Lesion {lesion_id} at {regimen.label} (plan scaled by D/D0)"
                structures = [lesion.target] + ([lesion.gtv] if lesion.gtv else [])
                threshold = 0.1 * rx
                wash_max = None
        oars = [s for s in ev.oar_structures.values() if s.name not in ("Lungs",)]
        drawn = [(s, structure_colour(s.name, s.color, i))
                 for i, s in enumerate(structures + oars)]
        return dose_slice_figure(
            plane=plane, position_mm=float(position), dose_grid=grid, dose=dose,
            dose_label=label, isodose_levels=isodoses, wash_threshold=threshold,
            wash_max=wash_max,
            ct_grid=ct_grid, ct_hu=ct, structures=drawn, title=title)

    def _view_grid_and_centre(loaded, lesion_id):
        ev = loaded.evaluator
        grid = loaded.case.ct.grid if loaded.case.ct is not None else ev.lesions[0].dose.grid
        if lesion_id == "composite":
            target = ev.lesions[0].target
        else:
            target = next(les.target for les in ev.lesions if les.lesion_id == lesion_id)
        centre = target.bounds_mm().mean(axis=1)
        return grid, centre

    # -- composite / MDT ----------------------------------------------------------------------------
    def _result(loaded: LoadedPatient, prefs: dict):
        with loaded.lock:
            choice = loaded.choice(prefs)
            return loaded.evaluator.evaluate(choice), choice

    @app.callback(Output("composite-content", "children"), Input("loaded", "data"),
                  Input("choices", "data"), State("session-id", "data"))
    def render_composite(loaded_data, choices, session):
        if not loaded_data:
            return no_update
        try:
            loaded = _loaded(loaded_data, session)
            result, choice = _result(loaded, _prefs(choices, loaded.entry.key))
            with loaded.lock:
                contributors = contributing_lesions(loaded, choice)
        except RtplanAssistError as exc:
            return _error(exc)
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
        comp_rows = sorted((r for r in result.composite_rows if r.structure),
                           key=lambda r: ({"fail": 0, "goal missed": 1,
                                           "not evaluable": 2}.get(r.status, 3), r.structure))
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
        loaded = _loaded(loaded_data, session)
        result, _ = _result(loaded, _prefs(choices, loaded.entry.key))
        name = f"{result.patient_id or 'patient'}_evaluation.csv"
        return dcc.send_string(tidy_csv(result), filename=name)

    @app.callback(Output("download-pdf", "data"), Output("export-message", "children"),
                  Input("export-pdf", "n_clicks"),
                  State("loaded", "data"), State("choices", "data"), State("session-id", "data"),
                  prevent_initial_call=True)
    def export_pdf(_n, loaded_data, choices, session):
        if not loaded_data:
            return no_update, no_update
        try:
            from rtplan_assist.report import render_report_pdf
        except ImportError:
            return no_update, "The PDF report is not part of this build; use the tidy CSV."
        loaded = _loaded(loaded_data, session)
        result, _ = _result(loaded, _prefs(choices, loaded.entry.key))
        with tempfile.TemporaryDirectory(dir=state.workdir) as tmp:
            path = Path(tmp) / f"{result.patient_id or 'patient'}_report.pdf"
            try:
                with loaded.lock:
                    render_report_pdf(result, loaded.evaluator, path,
                                      deidentify=state.deidentify)
            except RtplanAssistError as exc:
                return no_update, dbc.Alert(f"No PDF: {exc}", color="warning")
            data = path.read_bytes()
        return dcc.send_bytes(data, filename=path.name), ""


# re-exported for unit tests
__all__ += ["composite_status", "contributing_lesions", "kind_text", "lesion_rows_by_regimen",
            "overview_children", "regimen_change", "tidy_csv", "upload_refusal"]
