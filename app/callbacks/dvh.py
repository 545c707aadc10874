"""Callbacks of the DVH page: the regimens to draw, the figure and its numbered limits."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import Input, Output, State, html, no_update

from ..figures import constraint_markers, dvh_figure, view_colours
from ..views import status_badge
from ._shared import lesion_regimens, loaded_patient

__all__ = ["marker_table", "register"]


def marker_table(markers) -> dbc.Table:
    """The numbered constraint markers of the figure as a table: number, regimen, structure,
    and each limit with its kind (model, α/β), source and fraction number, and its status."""
    body = []
    for p in markers:
        for k, row in enumerate(p["rows"]):
            body.append(html.Tr([
                html.Td(str(p["number"]) if k == 0 else ""),
                html.Td(row.regimen), html.Td(row.structure),
                html.Td(f"{row.metric} {row.comparator} {row.limit:.4g} {row.unit}"),
                html.Td(p["texts"][k].split("; ", 1)[1], className="cell-source"),
                html.Td(status_badge(row.status, small=True)),
            ], **{"data-number": str(p["number"])}))
    titles = ["#", "Regimen", "Structure", "Limit", "Kind, source, fraction number", "Status"]
    return dbc.Table([html.Thead(html.Tr([html.Th(t) for t in titles])), html.Tbody(body)],
                     bordered=True, size="sm", id="dvh-marker-table",
                     className="composite-table dvh-marker-table")


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
        Output("dvh-graph", "figure"), Output("dvh-markers", "children"),
        Input("dvh-regimens", "value"), Input("dvh-kind", "value"),
        State("loaded", "data"), State("page-dvh", "data"), State("session-id", "data"),
    )
    def render_dvh(labels, kind, loaded_data, lesion_id, session):
        from rtplan_assist.radiobiology import Model, eqd2_transform
        from rtplan_assist.regimens import parse_regimen

        if not loaded_data or not labels:
            return no_update, no_update
        loaded = loaded_patient(services, loaded_data, session)
        ev = loaded.evaluator
        curves = []
        rows = []
        transforms = {} if kind == "EQD2" else None
        with loaded.lock:
            lesion = next(les for les in ev.lesions if les.lesion_id == lesion_id)
            # the lesion's target and its OARs: organs it contributes to (the engine's
            # rule: >= 10 % of its prescription somewhere in the organ)
            keep = [lesion.target.name, getattr(lesion.gtv, "name", None)]
            keep += [s.name for organ, s in ev.oar_structures.items()
                     if lesion_id in ev.contributors(organ)]
            for label in labels:
                regimen = parse_regimen(label)
                dvhs = ev.lesion_dvhs(lesion_id, regimen, kind)
                curves += [(name, label, dvhs[name]) for name in keep if name in dvhs]
                rows += ev.lesion_rows(lesion_id, regimen)
                if transforms is not None:
                    for name in keep:
                        # the α/β the engine mapped this curve with (lesion_dvhs)
                        ab = ev._alpha_beta_of(name, lesion) if name else None  # noqa: SLF001
                        if ab is not None:
                            transforms[(name, label)] = eqd2_transform(regimen.fractions,
                                                                       Model("LQ", ab))
        own = {s.name: s.color for s in loaded.case.structures}
        # the OARs' colours are those of the dose views (figures.view_colours)
        colours = view_colours([(s.name, own.get(s.name)) for s in ev.oar_structures.values()],
                               [(name, own.get(name)) for name in keep[:2] if name])
        model = "LQ, α/β per structure (targets 10 Gy)" if kind == "EQD2" else ""
        figure = dvh_figure(
            curves, kind=kind, model=model, rows=rows, transforms=transforms, colours=colours,
            title=f"Lesion {lesion_id}: target and the OARs it doses (≥ 10 % of Rx)")
        markers = constraint_markers(curves, rows, transforms)
        return figure, [html.H6(f"Constraint limits on the curves ({len(markers)} markers, "
                                f"{len(labels)} regimen(s))"), marker_table(markers)]
