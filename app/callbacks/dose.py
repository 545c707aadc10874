"""Callbacks of the dose view: a lesion's scaled dose or the composite EQD2 on CT slices."""

from __future__ import annotations

import numpy as np
from dash import Input, Output, State, no_update

from ..figures import dose_slice_figure, structure_colour
from ._shared import lesion_regimens, loaded_patient, prefs

__all__ = ["COMPOSITE_ALPHA_BETAS", "register"]

#: α/β (Gy) offered for the composite EQD2 view, the first one shown first
COMPOSITE_ALPHA_BETAS = (3.0, 2.0, 10.0)


def _view_grid_and_centre(loaded, lesion_id):
    ev = loaded.evaluator
    grid = loaded.case.ct.grid if loaded.case.ct is not None else ev.lesions[0].dose.grid
    if lesion_id == "composite":
        target = ev.lesions[0].target
    else:
        target = next(les.target for les in ev.lesions if les.lesion_id == lesion_id)
    centre = target.bounds_mm().mean(axis=1)
    return grid, centre


def register(app, services) -> None:
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
        loaded = loaded_patient(services, loaded_data, session)
        choice, options = lesion_regimens(loaded, choices, lesion_id)
        return options, choice[lesion_id].label

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
        loaded = loaded_patient(services, loaded_data, session)
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
        loaded = loaded_patient(services, loaded_data, session)
        ev = loaded.evaluator
        ct = loaded.ct_hu()
        ct_grid = loaded.case.ct.grid if loaded.case.ct is not None else None
        with loaded.lock:
            choice = loaded.choice(prefs(choices, loaded.entry.key))
            if lesion_id == "composite":
                ab = float(regimen_value)
                grid, dose = loaded.composite_eqd2(choice, ab)
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
                dose = loaded.scaled_dose(lesion, regimen)
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
