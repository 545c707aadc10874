"""Callbacks of the DVH page: the regimens to draw and the figure."""

from __future__ import annotations

from dash import Input, Output, State, no_update

from ..figures import dvh_figure, structure_colour
from ._shared import lesion_regimens, loaded_patient

__all__ = ["register"]


def register(app, services) -> None:
    @app.callback(
        Output("dvh-regimens", "options"), Output("dvh-regimens", "value"),
        Input("loaded", "data"), State("choices", "data"), State("page-dvh", "data"),
        State("session-id", "data"),
    )
    def dvh_regimens(loaded_data, choices, lesion_id, session):
        if not loaded_data:
            return no_update, no_update
        loaded = loaded_patient(services, loaded_data, session)
        choice, options = lesion_regimens(loaded, choices, lesion_id)
        planned = next(les.planned for les in loaded.evaluator.lesions
                       if les.lesion_id == lesion_id)
        return options, list(dict.fromkeys([choice[lesion_id].label, planned.label]))

    @app.callback(
        Output("dvh-graph", "figure"),
        Input("dvh-regimens", "value"), Input("dvh-kind", "value"),
        State("loaded", "data"), State("page-dvh", "data"), State("session-id", "data"),
    )
    def render_dvh(labels, kind, loaded_data, lesion_id, session):
        from rtplan_assist.regimens import parse_regimen

        if not loaded_data or not labels:
            return no_update
        loaded = loaded_patient(services, loaded_data, session)
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
