"""MDT decision records in the app: the service over the decision database, the "Record MDT
decision" form and the patient's decision history (callbacks: ``app/callbacks/decisions.py``).

Recorded decisions are shared by every session and worker that uses the same database;
unrecorded choices stay in each browser tab's ``choices`` store.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import dash_bootstrap_components as dbc
from dash import dcc, html

from rtplan_assist.records import RecordError
from rtplan_assist.records.users import User

from .auth import LOCAL_USER_ROLE, current_user

__all__ = ["Decisions", "acting_user", "attribution_lines", "auth_enabled", "decision_panel",
           "default_source", "history_view", "parse_attendees"]

log = logging.getLogger("rtplan_assist.app.decisions")


class Decisions:
    """The decision database of one app (``serve --db URL``; default the user's SQLite file).

    The store is opened on first use; reading a database that does not exist yet shows an
    empty history instead of creating it (only recording creates it).
    """

    def __init__(self, url: str | None = None):
        from rtplan_assist.records.store import resolve_url

        self.url = resolve_url(url)
        self._store = None
        self._lock = threading.Lock()

    def store(self, create: bool):
        from rtplan_assist.records.store import RecordStore

        with self._lock:
            if self._store is None:
                try:
                    self._store = RecordStore(self.url, create=create)
                except RecordError:
                    if create:
                        raise
                    return None
            return self._store

    def history(self, patient_key: str) -> list[dict]:
        """This patient's records, oldest first (empty when there is no database yet)."""
        store = self.store(create=False)
        return store.records(patient_key) if store is not None else []

    def append(self, record: dict, lesions: list[dict]):
        return self.store(create=True).append(record, lesions)

    def matching(self, patient_key: str, choice: dict) -> dict | None:
        """The newest record of this patient, not superseded, whose chosen regimens are
        ``choice`` (lesion id -> Regimen), or None."""
        from rtplan_assist.records.store import matching_record

        labels = {lid: regimen.label for lid, regimen in choice.items()}
        return matching_record(self.history(patient_key), labels)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def acting_user(auth_on: bool, typed_name: str | None = None) -> User | None:
    """Who acts in this request: the signed-in user, or (logins off, loopback) the typed name
    with the local role; None when nobody can be named."""
    user = current_user()
    if user is not None or auth_on:
        return user
    name = (typed_name or "").strip()
    return User("local", name, LOCAL_USER_ROLE) if name else None


def attribution_lines(record: dict | None, what: str) -> list[str]:
    """Lines for an export: the matching decision record (id, hash, who, when) and who
    exported it, when."""
    from rtplan_assist.records.store import attribution_lines as lines

    user = current_user()
    who = (f"{user.display_name} ({user.role}, login {user.username})" if user is not None
           else "the local user (loopback, no login)")
    return lines(record, what, who)


def log_export(what: str, patient_id: str) -> None:
    """Log who exported what of which patient (by its key)."""
    from rtplan_assist.deidentify import patient_key

    user = current_user()
    who = f"{user.username} ({user.role})" if user is not None else "local user (no login)"
    log.info("export %s of %s by %s", what, patient_key(patient_id), who)


def pdf_attribution(services, patient_id: str, choice: dict) -> list[str]:
    """The PDF's attribution lines (:func:`attribution_lines`), with the newest valid record
    of exactly this choice; the export is logged."""
    from rtplan_assist.deidentify import patient_key

    log_export("PDF", patient_id)
    try:
        record = services.decisions.matching(patient_key(patient_id), choice)
    except RecordError:
        record = None
    return attribution_lines(record, "PDF")


def parse_attendees(text: str | None) -> list[dict]:
    """One attendee per line, ``Name, role`` (the role optional)."""
    out = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        name, sep, role = line.rpartition(",")
        if not sep:
            name, role = line, ""
        out.append({"name": name.strip(), "role": role.strip()})
    return out


def auth_enabled() -> bool:
    """Whether this request's app requires logins (``install_auth`` sets the flag)."""
    from flask import current_app, has_app_context

    return bool(has_app_context() and current_app.config.get("RTPLAN_AUTH"))


def decision_panel() -> html.Div:
    """The record form (by the current user's rights) and the history container."""
    user = current_user()
    auth_on = auth_enabled()
    can_record = user.can("record") if user is not None else not auth_on
    field = "mb-2"
    if user is not None:
        who = [html.P([f"Recorded by {user.display_name} ({user.role}) · ",
                       html.A("sign out", href="/logout")], className="small",
                      id="decision-user")]
    else:
        who = [dbc.Label("Recorded by (name)", html_for="decision-by")]
    form = html.Div([
        *who,
        # typed name only without logins; always in the layout (a callback State)
        dbc.Input(id="decision-by", className=field, placeholder="your name (no login)",
                  style={} if user is None else {"display": "none"}),
        dbc.Label("Attendees (one per line: name, role)", html_for="decision-attendees"),
        dbc.Textarea(id="decision-attendees", className=field, rows=3),
        dbc.Label("Rationale", html_for="decision-rationale"),
        dbc.Textarea(id="decision-rationale", className=field, rows=2),
        dbc.Label("Dissent (optional)", html_for="decision-dissent"),
        dbc.Textarea(id="decision-dissent", className=field, rows=2),
        dbc.Label("Corrects an earlier record (optional)", html_for="decision-supersedes"),
        dcc.Dropdown(id="decision-supersedes", options=[], className=field,
                     placeholder="none: a new decision"),
        dbc.Button("Record MDT decision", id="record-decision", color="success", n_clicks=0,
                   disabled=not can_record),
        html.Div(dbc.Alert("Your role (viewer) can read decisions but not record them.",
                           color="secondary", id="decision-readonly", className="mt-2")
                 if not can_record else None),
        html.Div(id="record-message", className="small mt-2"),
    ], id="decision-form")
    return html.Div([
        html.H5("Record MDT decision"),
        html.P("Records the chosen regimen of every lesion as shown above, its verdicts, the "
               "composite verdict and the evidence (SHA-256 of every input file and table, "
               "software version, models, α/β). Records are append-only and hash-chained; a "
               "correction is a new record.", className="small"),
        form,
        dcc.Store(id="decision-recorded"),
        dcc.Interval(id="decision-refresh", interval=15_000),
        html.H5("Decision history", className="mt-3"),
        html.Div(id="decision-history"),
    ], className="mt-4", id="decision-panel")


def _when(text: str) -> str:
    return text.replace("T", " ")[:19] + " UTC"


def history_view(records: list[dict]) -> html.Div:
    """This patient's decisions, newest first."""
    if not records:
        return html.P("No decision recorded for this patient.", id="history-empty")
    items = []
    for rec in reversed(records):
        lesions = "; ".join(
            f"{x['lesion_id']} {x['chosen']}"
            + (" (MDT)" if x["chosen_from"] == "mdt" else " (as recommended)")
            + f": {x['verdict']}" for x in rec["lesions"])
        attendees = ", ".join(a["name"] + (f" ({a['role']})" if a["role"] else "")
                              for a in rec["attendees"])
        badge = (dbc.Badge("superseded", color="warning", className="ms-2")
                 if rec["superseded_by"] else None)
        items.append(html.Li([
            html.B(f"#{rec['seq']} · {_when(rec['created_at'])} · {rec['recorded_by']} "
                   f"({rec['role']})"), badge,
            html.Div(f"Chosen regimens (total dose/fractions; per-lesion verdict): {lesions}"),
            html.Div(f"Verdict {rec['verdict']}, composite {rec['composite_verdict']}"),
            html.Div(f"Rationale: {rec['rationale']}"),
            html.Div(f"Dissent: {rec['dissent']}") if rec["dissent"] else None,
            html.Div(f"Attendees: {attendees}") if attendees else None,
            html.Div(f"Corrects {rec['supersedes']}") if rec["supersedes"] else None,
            html.Div(f"Record {rec['record_id']} · hash {rec['record_hash']}",
                     className="text-muted", style={"fontFamily": "monospace"}),
        ], id=f"record-{rec['record_id']}", className="mb-2 small"))
    return html.Ul(items, className="list-unstyled", id="history-list")


def default_source(entry) -> str | None:
    """The folder stored for re-evaluation: a catalogue patient's folder, ``demo``, or None
    for an upload (its temporary folder will be gone)."""
    folder = getattr(entry, "folder", None)
    if getattr(entry, "upload_dir", None) is not None or folder is None:
        return None
    from rtplan_assist.demo import demo_case_folder

    try:
        if Path(folder).resolve() == Path(demo_case_folder()).resolve():
            return "demo"
    except OSError:
        pass
    return str(Path(folder).resolve())
