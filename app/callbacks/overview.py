"""Callback of the overview page: lesions, organs and names, plans and doses, warnings."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, dcc, html, no_update

from rtplan_assist.errors import RtplanAssistError

from ..services import LoadedPatient
from ..views import fmt_number
from ._shared import error_alert, loaded_patient, prefs

__all__ = ["MappingRow", "mapping_csv", "mapping_options", "mapping_rows",
           "mapping_section", "needs_attention", "overview_children", "register"]

#: how the built-in names matched (:attr:`rtplan_assist.names.NameMatch.rule`), in words
RULE_WORDS = {
    "tg263": "TG-263 name",
    "tg263-prv": "TG-263 PRV name",
    "tg263-reverse": "TG-263 reverse-order name",
    "alias": "alias table (constraints/aliases.csv)",
    "tg263-normalised": "TG-263 name, ignoring case and separators",
}


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
        *mapping_section(loaded),
        html.P([html.B("Names not matched to TG-263: "), unmatched], id="unmatched-names"),
        html.P([html.B("Constrained organs absent from the case: "), missing],
               id="absent-organs"),
        html.H5("Plans and dose grids"), plans,
        html.H5("Warnings from loading"),
        html.Ul([html.Li(w) for w in warnings]) if warnings else html.P("None."),
    ]


def _user_plan_options(loaded: LoadedPatient) -> list:
    """The targets and prescriptions given by the user in the plan form, said as such (the
    user's structure mappings: :func:`mapping_section`)."""
    options = [o for o in getattr(loaded.entry, "plan_options", ()) if o[0] != "--map"]
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


# -- the structure mapping in force: map file, built-in names, the user's, unmatched ------------
@dataclass(frozen=True)
class MappingRow:
    """One structure of the case: the organ it stands for and where that came from.

    ``origin``: ``user`` (given in the app), ``file`` (the patient's mapping file), ``builtin``
    (TG-263 names and the alias table), ``target`` (a lesion's target or GTV), ``ambiguous``,
    ``overridden`` (its organ is mapped to another structure) or ``unmatched``."""

    structure: str
    organ: str  # TG-263 name, "" when none
    origin: str
    source: str  # the origin in words ("rtplan-assist-map.csv, line 2")
    evaluated: bool  # its organ's constraint rows are evaluated on this structure
    note: str  # why not evaluated, or ""
    offer: bool  # the mapping form offers to map it


def _file_mapping(case) -> tuple[dict[str, str], dict[str, int], Path | None]:
    """The patient's mapping file as ``evaluate`` finds it (mapping, lines, path)."""
    from rtplan_assist.names import folder_mapping

    lines: dict[str, int] = {}
    try:
        mapping, path = folder_mapping(case, lines=lines)
    except RtplanAssistError:  # changed since the preparation read it; the cache key changes
        return {}, {}, None
    return mapping, lines, Path(path) if path else None


def mapping_rows(loaded: LoadedPatient) -> list[MappingRow]:
    """Every structure of the case with its organ and where the mapping came from: the user
    (the app's mapping form, ``--map``), the patient's mapping file (line), the built-in names
    (rule), or unmatched; with whether its organ is evaluated and whether the form offers it."""
    from rtplan_assist.names import is_helper_name

    ev = loaded.evaluator
    nm = ev.name_match
    user = loaded.entry.user_mapping
    from_file, lines, path = _file_mapping(ev.case)
    constrained = set(ev.tables.organs())
    roles = {}
    for les in ev.lesions:
        roles[les.target.name] = f"target of {les.lesion_id}"
        if les.gtv:
            roles.setdefault(les.gtv.name, f"GTV of {les.lesion_id}")
    ambiguous = {}
    for amb in nm.ambiguous:
        for name in (amb.candidates if amb.kind == "organ" else (amb.key,)):
            ambiguous[name] = amb.describe().replace("; choose one with --map", "")
    rows = []
    for s in ev.case.structures:
        name = s.name
        organ = nm.matched.get(name, "")
        evaluated = bool(organ) and getattr(ev.oar_structures.get(organ), "name", None) == name
        if name in user:
            origin, source = "user", "given by you in this app (not in the patient's files)"
        elif name in from_file and path is not None:
            origin, source = "file", f"{path.name}, line {lines.get(name, '?')}"
        elif organ:
            rule = nm.rule.get(name, "")
            origin, source = "builtin", f"built-in names: {RULE_WORDS.get(rule, rule)}"
        elif name in roles:
            origin, source = "target", roles[name]
        elif name in ambiguous:
            origin, source = "ambiguous", ambiguous[name]
        elif name in nm.overridden:
            origin, source = "overridden", "its organ is mapped to another structure"
        else:
            origin = "unmatched"
            source = ("unmatched (a helper or target structure by its prefix)"
                      if is_helper_name(name) else "unmatched")
        if evaluated or origin == "target":
            note = ""
        elif s.is_empty:
            note = "empty structure (no contour)"
        elif organ and organ not in constrained:
            note = f"no constraint table constrains {organ}"
        else:
            note = "no organ"
        # helpers and targets by their prefix (PTV_2, z_ring) are listed, not offered
        offer = origin == "user" or (not evaluated and origin != "target" and not s.is_empty
                                     and not (origin == "unmatched" and is_helper_name(name)))
        rows.append(MappingRow(name, organ, origin, source, evaluated, note, offer))
    return rows


def mapping_csv(loaded: LoadedPatient) -> str:
    """The mapping in force as a mapping file (``structure,tg263``): the patient's file's
    entries (and its ``--target``/``--prescription`` rows) with the user's mappings on top, to
    put beside the patient's files; nothing is written there by the app."""
    from rtplan_assist.names import load_mapping_file

    from_file, _, path = _file_mapping(loaded.evaluator.case)
    plan_rows: list[tuple[str, str, str]] = []
    if path is not None:
        try:
            load_mapping_file(path, plan_options=plan_rows)
        except RtplanAssistError:
            plan_rows = []
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["structure", "tg263"])
    for name, organ in {**from_file, **loaded.entry.user_mapping}.items():
        writer.writerow([name, organ])
    for option, value, _where in plan_rows:
        writer.writerow([option, value])
    return out.getvalue()


def _unused_map_files(loaded: LoadedPatient, used: Path | None) -> list[str]:
    """Mapping files elsewhere in an upload, which ``evaluate`` would not use either."""
    from rtplan_assist.names import FOLDER_MAP_FILE

    upload = loaded.entry.upload_dir
    if upload is None:
        return []
    found = sorted(p for p in Path(upload).rglob(FOLDER_MAP_FILE) if p.is_file())
    return [p.relative_to(upload).as_posix() for p in found
            if used is None or p.resolve() != used.resolve()]


def mapping_section(loaded: LoadedPatient) -> list:
    """The mapping in force (structure → organ, from the mapping file, the built-in names or
    the user; unmatched), the form that maps the structures not evaluated, and its download."""
    ev = loaded.evaluator
    rows = mapping_rows(loaded)
    from_file, _, path = _file_mapping(ev.case)
    if path is not None:
        where = (f"{path.name} with the patient's files: {len(from_file)} "
                 f"mapping{'s' if len(from_file) != 1 else ''}, applied as rtplan-assist evaluate applies it")
    else:
        where = ("none (looked for as rtplan-assist evaluate does: rtplan-assist-map.csv in the "
                 "folder of the structure set or a folder above it)")
    intro = [html.P([html.B("Mapping file: "), where], id="map-file-status")]
    for rel in _unused_map_files(loaded, path):
        intro.append(dbc.Alert(
            f"{rel} in the upload is not used: the mapping file must be in the folder of the "
            "structure set (RTSTRUCT) or a folder above it.", color="warning", className="mb-2"))
    user = loaded.entry.user_mapping
    if user:
        intro.append(html.P([
            html.B("Mapping given by you in this app (not written into the patient's files): "),
            "; ".join(f"{k} → {v}" for k, v in user.items())], id="user-mapping"))
    # the rows that need a look first; the others (evaluated by a built-in name, targets)
    # behind a disclosure, so that a case's 20-30 structures do not make the page long
    attention = [r for r in rows if needs_attention(r)]
    rest = [r for r in rows if not needs_attention(r)]
    if attention:
        shown = [html.P(f"{len(attention)} of {len(rows)} structure{'s' if len(rows) != 1 else ''}"
                        " to look at (unmatched, ambiguous, not evaluated, given by you or by "
                        "the mapping file):", className="small mb-1", id="mapping-attention"),
                 _mapping_table(attention, "mapping-table")]
    else:
        shown = [html.P(f"Nothing to look at: each of the {len(rows)} structures is evaluated by "
                        "its built-in name or is a lesion's target or GTV.",
                        className="small mb-1", id="mapping-attention")]
    if rest:
        kinds = [words for origin, words in (
            ("builtin", "evaluated by its built-in name"), ("target", "a lesion's target or GTV"))
            if any(r.origin == origin for r in rest)]
        shown.append(html.Details([
            html.Summary(f"Show all {len(rows)} structures ({len(rest)} more, each "
                         f"{' or '.join(kinds)})"),
            _mapping_table(rest, "mapping-table-rest"),
        ], id="mapping-all", className="mb-2"))
    return [html.H5("Structure names and organs"), *intro, *shown, *_mapping_form(loaded, rows)]


def needs_attention(row: MappingRow) -> bool:
    """Whether the overview lists ``row`` before the disclosure: unmatched, ambiguous, not
    evaluated, given by the user or by the mapping file; not a structure evaluated by its
    built-in name, nor a lesion's target or GTV."""
    return (row.origin in ("user", "file", "unmatched", "ambiguous", "overridden")
            or (not row.evaluated and row.origin != "target"))


def _mapping_table(rows: list[MappingRow], table_id: str):
    return dbc.Table([
        html.Thead(html.Tr([html.Th(t) for t in (
            "Structure in the case", "TG-263 name", "Mapping from", "Evaluated")])),
        html.Tbody([html.Tr([
            html.Td(r.structure), html.Td(r.organ or "—"), html.Td(r.source),
            html.Td("yes" if r.evaluated else ("—" if r.origin == "target" else f"no: {r.note}")),
        ], className=f"map-{r.origin}") for r in rows]),
    ], size="sm", bordered=True, id=table_id, className="mb-1")


def _mapping_form(loaded: LoadedPatient, rows: list[MappingRow]) -> list:
    """A row per structure not evaluated (and per structure the user mapped): an organ picker
    over the organs the tables constrain; submitting prepares the patient again with these
    mappings (``evaluate --map``)."""
    ev = loaded.evaluator
    offered = [r for r in rows if r.offer]
    download = [dbc.Button("Download the mapping as rtplan-assist-map.csv",
                           id="map-download-button", color="link", size="sm"),
                dcc.Download(id="map-download")]
    if not offered:
        return download
    user = loaded.entry.user_mapping
    options = [{"label": o if o in ev.oar_structures else f"{o} (absent from the case)",
                "value": o} for o in sorted(ev.tables.organs(), key=str.casefold)]
    body = [html.Tr([
        html.Td(r.structure),
        html.Td(r.source + (f" → {r.organ}" if r.organ and r.origin != "user" else "")),
        html.Td(dcc.Dropdown(options, value=user.get(r.structure), placeholder="not mapped",
                             id={"type": "map-organ", "structure": r.structure})),
    ]) for r in offered]
    buttons = [dbc.Button("Evaluate with these mappings", id="map-submit", color="primary",
                          size="sm", className="me-2")]
    if user:
        buttons.append(dbc.Button("Remove my mappings", id="map-clear", color="secondary",
                                  size="sm", className="me-2"))
    return [
        html.Details([
            html.Summary(f"Map structures that are not evaluated ({len(offered)})"),
            html.P("Choose the organ a structure stands for; the patient is evaluated again "
                   "with it, as by rtplan-assist evaluate --map STRUCTURE=ORGAN. Your mapping wins over the "
                   "mapping file and the built-in names, and is kept in this browser session "
                   "only (never written into the patient's files).", className="small"),
            dbc.Table([html.Thead(html.Tr([html.Th(t) for t in (
                "Structure", "Now", "Organ")])), html.Tbody(body)],
                size="sm", bordered=True, id="map-form"),
            *buttons,
            html.Div(id="map-form-message"),
        ], open=bool(user) or any(r.origin in ("unmatched", "ambiguous") for r in offered),
            id="map-form-panel"),
        *download,
    ]


def mapping_options(current: list | None, values, ids) -> list[list[str]]:
    """The ``patient`` store's options with the form's mappings as ``--map`` entries (the
    targets and prescriptions kept; a structure left empty is not mapped)."""
    kept = [list(o) for o in current or () if o[0] != "--map"]
    maps = [["--map", f"{ident['structure']}={value}"]
            for value, ident in zip(values or [], ids or []) if value]
    return kept + maps


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

    @app.callback(
        Output("patient", "data", allow_duplicate=True),
        Output("map-form-message", "children"),
        Input("map-submit", "n_clicks"),
        State({"type": "map-organ", "structure": ALL}, "value"),
        State({"type": "map-organ", "structure": ALL}, "id"),
        State("patient", "data"),
        prevent_initial_call=True,
    )
    def submit_mapping(n_clicks, values, ids, patient):
        if not n_clicks or not patient:
            return no_update, no_update
        options = mapping_options(patient.get("plan_options"), values, ids)
        if options == [list(o) for o in patient.get("plan_options") or ()]:
            return no_update, dbc.Alert("Nothing changed: choose an organ for a structure.",
                                        color="warning", className="mb-2", id="map-form-error")
        return {"key": patient["key"], "plan_options": options}, None

    @app.callback(
        Output("patient", "data", allow_duplicate=True),
        Input("map-clear", "n_clicks"),
        State("patient", "data"),
        prevent_initial_call=True,
    )
    def clear_mapping(n_clicks, patient):
        if not n_clicks or not patient:
            return no_update
        return {"key": patient["key"],
                "plan_options": mapping_options(patient.get("plan_options"), [], [])}

    @app.callback(
        Output("map-download", "data"),
        Input("map-download-button", "n_clicks"),
        State("loaded", "data"), State("session-id", "data"),
        prevent_initial_call=True,
    )
    def download_mapping(n_clicks, loaded_data, session):
        if not n_clicks or not loaded_data:
            return no_update
        loaded = loaded_patient(services, loaded_data, session)
        return dcc.send_string(mapping_csv(loaded), "rtplan-assist-map.csv")
