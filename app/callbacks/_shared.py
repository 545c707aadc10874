"""Helpers the page callbacks share: the session's patient, its prefs, errors, engine rules."""

from __future__ import annotations

import dash_bootstrap_components as dbc

from rtplan_assist.evaluation import rows_verdict

from ..services import LoadedPatient

__all__ = ["composite_status", "contributing_lesions", "error_alert", "lesion_regimens",
           "loaded_patient", "prefs"]


def error_alert(exc: Exception) -> dbc.Alert:
    return dbc.Alert(str(exc), color="danger", className="mb-2")


def prefs(choices: dict | None, key: str) -> dict:
    """This patient's entry of the browser's ``choices`` store (a copy)."""
    return dict((choices or {}).get(key) or {})


def loaded_patient(services, loaded_data, session) -> LoadedPatient | None:
    """The session's prepared patient named by the ``loaded`` store, or None."""
    if not loaded_data or not session:
        return None
    services.touch(session)
    return services.patient(session, loaded_data["key"], loaded_data.get("plan_options") or ())


def lesion_regimens(loaded: LoadedPatient, choices: dict | None, lesion_id: str):
    """``(choice, options)``: the session's choice (lesion id -> Regimen) and the dropdown
    options (label/value) of lesion ``lesion_id``'s regimens."""
    with loaded.lock:
        choice = loaded.choice(prefs(choices, loaded.entry.key))
        regimens = loaded.evaluator.regimens_for(lesion_id)
    return choice, [{"label": r.label, "value": r.label} for r in regimens]


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
