"""Callbacks of the dose view: a lesion's scaled dose or the composite EQD2 on CT slices,
shown as acquired with orientation letters, and "go to" a lesion or an OAR's maximum."""

from __future__ import annotations

import functools

import numpy as np
from dash import Input, Output, State, no_update

from ..figures import dose_slice_figure, view_colours
from ._shared import lesion_regimens, loaded_patient, prefs

__all__ = ["COMPOSITE_ALPHA_BETAS", "MAX_VOXEL_OCCUPANCY", "image_orientation",
           "oar_maximum", "register"]

#: α/β (Gy) offered for the composite EQD2 view, the first one shown first
COMPOSITE_ALPHA_BETAS = (3.0, 2.0, 10.0)
#: "Go to OAR maximum" looks at the voxels at least this much inside the structure
#: (fractional occupancy), so that a voxel barely touching it cannot be its maximum.
MAX_VOXEL_OCCUPANCY = 0.5


@functools.lru_cache(maxsize=64)
def _orientation_of(path: str) -> tuple[float, ...] | None:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True,
                             specific_tags=["ImageOrientationPatient"])
        values = tuple(float(v) for v in ds.ImageOrientationPatient)
    except Exception:  # noqa: BLE001 - unreadable: the figure says HFS is assumed
        return None
    return values if len(values) == 6 else None


def image_orientation(case) -> tuple[float, ...] | None:
    """ImageOrientationPatient of the case's CT (else of its first RTDOSE), as 6 floats;
    None when no file gives it (the view then says HFS is assumed). The loader has already
    accepted only axial HFS/FFS/HFP/FFP orientations."""
    paths = list(case.ct.paths[:1]) if case.ct is not None else []
    paths += [d.path for d in case.doses[:1]]
    for path in paths:
        values = _orientation_of(str(path))
        if values is not None:
            return values
    return None


def oar_maximum(structure, grid, dose: np.ndarray) -> tuple[float, float, float, float] | None:
    """``(x, y, z mm, dose)`` of the highest-dose voxel of ``dose`` among the voxels at least
    :data:`MAX_VOXEL_OCCUPANCY` inside ``structure`` (any touched voxel when none is); None
    when the structure misses the grid."""
    from rtplan_assist.structures import occupancy

    occ = occupancy(structure, grid)
    if occ.occupancy.size == 0 or not np.any(occ.occupancy > 0):
        return None
    k0, j0, i0 = occ.offset
    bz, by, bx = occ.occupancy.shape
    box = np.asarray(dose[k0:k0 + bz, j0:j0 + by, i0:i0 + bx], dtype=float)
    inside = occ.occupancy >= MAX_VOXEL_OCCUPANCY
    if not np.any(inside):
        inside = occ.occupancy > 0
    k, j, i = np.unravel_index(int(np.argmax(np.where(inside, box, -np.inf))), box.shape)
    return (float(grid.x_mm[i0 + i]), float(grid.y_mm[j0 + j]),
            float(np.asarray(grid.z_mm)[k0 + k]), float(box[k, j, i]))


def _shown_dose(loaded, lesion_id: str, regimen_value: str, choice: dict) -> dict:
    """The dose the view shows: grid, array, labels, isodose levels, wash range and the
    structures drawn. Call under ``loaded.lock``."""
    from rtplan_assist.regimens import parse_regimen

    ev = loaded.evaluator
    if lesion_id == "composite":
        ab = float(regimen_value)
        grid, dose = loaded.composite_eqd2(choice, ab)
        top = float(dose.max())
        levels = [lv for lv in (100, 80, 60, 40, 20) if lv <= top]
        return {
            "grid": grid, "dose": dose, "unit": f"Gy EQD2 (LQ, α/β = {ab:g} Gy)",
            "isodoses": [(lv, f"{lv:g} Gy EQD2") for lv in levels],
            "label": f"EQD2 (Gy, LQ α/β = {ab:g} Gy, sum of lesions)",
            "title": "Composite EQD2: " + ", ".join(f"{k} {v.label}"
                                                    for k, v in sorted(choice.items())),
            "targets": [les.target for les in ev.lesions], "threshold": 10.0,
            # SBRT hot spots would wash out everything else
            "wash_max": min(top, 150.0),
        }
    lesion = next(les for les in ev.lesions if les.lesion_id == lesion_id)
    regimen = parse_regimen(regimen_value)
    rx = regimen.total_dose_gy
    return {
        "grid": lesion.dose.grid, "dose": loaded.scaled_dose(lesion, regimen),
        "unit": f"Gy physical at {regimen.label}",
        "isodoses": [(rx * p / 100.0, f"{p}% ({rx * p / 100.0:.1f} Gy)")
                     for p in (100, 80, 50, 20)],
        "label": f"Dose (Gy, physical, {regimen.label})",
        "title": f"Lesion {lesion_id} at {regimen.label} (plan scaled by D/D0)",
        "targets": [lesion.target] + ([lesion.gtv] if lesion.gtv else []),
        "threshold": 0.1 * rx, "wash_max": None,
    }


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
        Output("dose-goto", "options"),
        Input("loaded", "data"), State("choices", "data"), State("page-dose", "data"),
        State("session-id", "data"),
    )
    def dose_options(loaded_data, choices, lesion_id, session):
        if not loaded_data:
            return no_update, no_update, no_update
        loaded = loaded_patient(services, loaded_data, session)
        ev = loaded.evaluator
        lesions = [les for les in ev.lesions
                   if lesion_id == "composite" or les.lesion_id == lesion_id]
        goto = [{"label": f"Lesion {les.lesion_id} ({les.target.name})",
                 "value": f"lesion:{les.lesion_id}"} for les in lesions]
        goto += [{"label": f"{s.name}: maximum of the shown dose", "value": f"oar:{s.name}"}
                 for s in ev.oar_structures.values()]
        if lesion_id == "composite":
            return ([{"label": f"EQD2 at α/β = {ab:g} Gy (LQ)", "value": str(ab)}
                     for ab in COMPOSITE_ALPHA_BETAS], str(COMPOSITE_ALPHA_BETAS[0]), goto)
        choice, options = lesion_regimens(loaded, choices, lesion_id)
        return options, choice[lesion_id].label, goto

    @app.callback(
        Output("dose-goto-point", "data"), Output("dose-goto-message", "children"),
        Input("dose-goto", "value"), Input("dose-regimen", "value"),
        State("loaded", "data"), State("choices", "data"), State("page-dose", "data"),
        State("session-id", "data"), prevent_initial_call=True,
    )
    def dose_goto(goto, regimen_value, loaded_data, choices, lesion_id, session):
        if not loaded_data or not goto or regimen_value is None:
            return None, ""
        loaded = loaded_patient(services, loaded_data, session)
        ev = loaded.evaluator
        kind, _, name = goto.partition(":")
        if kind == "lesion":
            lesion = next(les for les in ev.lesions if les.lesion_id == name)
            x, y, z = (float(v) for v in lesion.target.bounds_mm().mean(axis=1))
            label = f"lesion {name}: centre of {lesion.target.name}"
            return {"x": x, "y": y, "z": z, "label": label}, f"Showing {label}."
        structure = next((s for s in ev.oar_structures.values() if s.name == name), None)
        if structure is None:
            return None, f"No structure {name} in this case."
        with loaded.lock:
            shown = _shown_dose(loaded, lesion_id, regimen_value,
                                loaded.choice(prefs(choices, loaded.entry.key)))
            found = oar_maximum(structure, shown["grid"], shown["dose"])
        if found is None:
            return None, f"{name} lies outside the dose grid: no maximum to show."
        x, y, z, value = found
        label = (f"{name}: maximum {value:.2f} {shown['unit']} (voxels at least "
                 f"{MAX_VOXEL_OCCUPANCY:.0%} inside), at x {x:.1f}, y {y:.1f}, z {z:.1f} mm")
        return {"x": x, "y": y, "z": z, "label": label}, f"Showing {label}."

    @app.callback(
        Output("dose-slider", "min"), Output("dose-slider", "max"),
        Output("dose-slider", "step"), Output("dose-slider", "value"),
        Output("dose-slider", "marks"),
        Input("dose-plane", "value"), Input("loaded", "data"), Input("dose-goto-point", "data"),
        State("page-dose", "data"), State("session-id", "data"),
    )
    def dose_slider(plane, loaded_data, point, lesion_id, session):
        if not loaded_data:
            return (no_update,) * 5
        loaded = loaded_patient(services, loaded_data, session)
        grid, centre = _view_grid_and_centre(loaded, lesion_id)
        if point:
            centre = (point["x"], point["y"], point["z"])
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
        Input("dose-goto-point", "data"),
        State("dose-plane", "value"), State("loaded", "data"), State("choices", "data"),
        State("page-dose", "data"), State("session-id", "data"),
    )
    def render_dose(position, regimen_value, point, plane, loaded_data, choices, lesion_id,
                    session):
        if not loaded_data or regimen_value is None or position is None:
            return no_update
        loaded = loaded_patient(services, loaded_data, session)
        ev = loaded.evaluator
        ct = loaded.ct_hu()
        ct_grid = loaded.case.ct.grid if loaded.case.ct is not None else None
        with loaded.lock:
            shown = _shown_dose(loaded, lesion_id, regimen_value,
                                loaded.choice(prefs(choices, loaded.entry.key)))
        oars = [s for s in ev.oar_structures.values() if s.name not in ("Lungs",)]
        drawn = shown["targets"] + oars
        own = {s.name: s.color for s in loaded.case.structures}
        levels = shown["isodoses"]
        colours = view_colours([(s.name, own.get(s.name)) for s in ev.oar_structures.values()],
                               [(s.name, own.get(s.name)) for s in shown["targets"]])
        points = [(point["x"], point["y"], point["z"], point["label"])] if point else []
        return dose_slice_figure(
            plane=plane, position_mm=float(position), dose_grid=shown["grid"],
            dose=shown["dose"], dose_label=shown["label"], isodose_levels=levels,
            wash_threshold=shown["threshold"], wash_max=shown["wash_max"],
            ct_grid=ct_grid, ct_hu=ct, structures=[(s, colours[s.name]) for s in drawn],
            title=shown["title"], orientation=image_orientation(loaded.case), points=points)
