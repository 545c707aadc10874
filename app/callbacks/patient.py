"""Callbacks of the navbar, on every page: the browser session, the patient and its loading."""

from __future__ import annotations

import secrets

import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx, no_update

from rtplan_assist.errors import RtplanAssistError

from ..services.prepared import PlanOptionsNeeded
from ._shared import error_alert
from .plans import plan_form

__all__ = ["progress_text", "register", "upload_refusal"]


def progress_text(i: int, n: int, text: str) -> str:
    """The status line under the preparation progress bar: percentage and step count first
    (``"40 % · step 4 of 10 · L1 at 54/3: DVHs and constraints"``), so that a long step never
    looks like a stalled page."""
    n = max(int(n), 1)
    i = min(max(int(i), 0), n)
    return f"{round(100 * i / n)} % · step {i} of {n} · {text}"


def upload_refusal(exc: Exception) -> str:
    """``Upload refused: <reason>`` for an upload error (its own leading ``refused:`` dropped)."""
    reason = str(exc)
    if reason.lower().startswith("refused: "):
        reason = reason[len("refused: "):]
    return f"Upload refused: {reason}"


def register(app, services) -> None:
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
        services.touch(session)
        trigger = ctx.triggered_id
        message = None
        key = None
        if trigger == "upload" and contents:
            try:
                entry = services.store_upload(session, contents, filenames)
                key = entry.key
                message = dbc.Alert(f"Uploaded: {entry.label}. Preparing…", color="info",
                                    dismissable=True, className="mb-2")
            except RtplanAssistError as exc:
                message = dbc.Alert(upload_refusal(exc), color="danger",
                                    dismissable=True, className="mb-2", id="upload-error")
        elif trigger == "patient-picker" and picked:
            key = picked
        if key is None:
            key = (current or {}).get("key") or services.default_key()
            try:
                if key:
                    services.entry(key, session)
            except RtplanAssistError:
                key = services.default_key()
        options = services.picker_options(session)
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
        options = patient.get("plan_options") or []
        try:
            entry = services.entry(patient["key"], session, options)
            services.prepare(entry, lambda i, n, text: set_progress(
                (str(i), str(max(n, 1)), services.scrub(progress_text(i, n, text)))))
        except PlanOptionsNeeded as exc:
            return None, services.scrub(plan_form(exc, options))
        except RtplanAssistError as exc:
            return None, services.scrub(error_alert(_in_upload_terms(exc, patient, services,
                                                                     session)))
        return {"key": patient["key"], "plan_options": options}, None


def _in_upload_terms(exc: Exception, patient: dict, services, session) -> Exception | str:
    """The message of a refused upload with the server's upload folder said as "the upload"
    (``/tmp/.../upload-x1y2/P/RS.dcm`` → ``P/RS.dcm``): the uploader knows their own files, not
    the server's folders."""
    up = services.uploads.find(session, patient.get("key"))
    if up is None or up.upload_dir is None:
        return exc
    text, root = str(exc), str(up.upload_dir)
    return text.replace(root + "/", "").replace(root, "the upload") if root in text else exc
