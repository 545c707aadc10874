"""Callbacks of the MDT decision panel (on the composite / MDT page): record a decision, show
the patient's decision history (``app/decisions.py`` has the layout and the service)."""

from __future__ import annotations

import logging

import dash_bootstrap_components as dbc
from dash import Input, Output, State, no_update

from rtplan_assist.deidentify import patient_key
from rtplan_assist.errors import RtplanAssistError

from ..decisions import acting_user, default_source, history_view, parse_attendees
from ._shared import loaded_patient, prefs

__all__ = ["register"]

log = logging.getLogger("rtplan_assist.app.decisions")


def register(app, services) -> None:
    decisions = services.decisions

    @app.callback(Output("record-message", "children"), Output("decision-recorded", "data"),
                  Input("record-decision", "n_clicks"),
                  State("loaded", "data"), State("choices", "data"), State("session-id", "data"),
                  State("decision-attendees", "value"), State("decision-rationale", "value"),
                  State("decision-dissent", "value"), State("decision-supersedes", "value"),
                  State("decision-by", "value"), prevent_initial_call=True)
    def record_decision(_n, loaded_data, choices, session, attendees, rationale, dissent,
                        supersedes, typed_name):
        from rtplan_assist.records import decision_content
        from rtplan_assist.records.snapshot import check_author

        user = acting_user(services.auth_on, typed_name)
        if user is None:
            return dbc.Alert("Type your name first (who records the decision).",
                             color="warning"), no_update
        if not user.can("record"):
            log.warning("refused: %s (%s) tried to record a decision", user.username, user.role)
            return dbc.Alert(f"Your role ({user.role}) cannot record decisions.",
                             color="danger"), no_update
        if not loaded_data:
            return dbc.Alert("No patient loaded.", color="warning"), no_update
        try:
            check_author(user.display_name, user.role, rationale or "",
                         parse_attendees(attendees))
            loaded = loaded_patient(services, loaded_data, session)
            patient_prefs = prefs(choices, loaded.entry.key)
            with loaded.lock:
                result, choice = loaded.result(patient_prefs)
                explicit = {lid: choice[lid] for lid in (patient_prefs.get("choice") or {})
                            if lid in choice}
                record, lesions = decision_content(
                    loaded.evaluator, result, recorded_by=user.display_name, role=user.role,
                    rationale=rationale or "", dissent=dissent or "",
                    attendees=parse_attendees(attendees), mdt_choice=explicit,
                    supersedes=supersedes or None, source=default_source(loaded.entry),
                    deidentify=services.deidentify)
            stored = decisions.append(record, lesions)
        except RtplanAssistError as exc:
            return dbc.Alert(f"Not recorded: {exc}", color="danger"), no_update
        except Exception as exc:
            log.exception("recording a decision failed")
            return dbc.Alert(f"Not recorded: the decision database failed "
                             f"({type(exc).__name__}).", color="danger"), no_update
        log.info("decision %s recorded for %s by %s (%s)", stored.record_id,
                 record["patient_key"], user.username, user.role)
        return dbc.Alert([f"Recorded: record {stored.record_id} (#{stored.seq}), hash ",
                          stored.record_hash, f"; verdict {record['verdict']}."],
                         color="success", id="record-done"), stored.record_id

    @app.callback(Output("decision-history", "children"),
                  Output("decision-supersedes", "options"),
                  Input("loaded", "data"), Input("decision-recorded", "data"),
                  Input("decision-refresh", "n_intervals"), State("session-id", "data"))
    def render_history(loaded_data, _recorded, _tick, session):
        if not loaded_data:
            return no_update, no_update
        try:
            loaded = loaded_patient(services, loaded_data, session)
            records = decisions.history(patient_key(loaded.evaluator.case.patient_id))
        except RtplanAssistError as exc:
            return dbc.Alert(str(exc), color="danger"), []
        options = [{"label": f"#{r['seq']} {r['created_at'][:16]} {r['recorded_by']}",
                    "value": r["record_id"]} for r in reversed(records)
                   if not r["superseded_by"]]
        return history_view(records), options
