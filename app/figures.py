"""Plotly figures of the app as plain functions of arrays and results (no Dash, no state).

Display conventions (DICOM patient coordinates, mm; arrays ``[z, y, x]`` with ascending axes):

* axial: x ascending left to right (image left = patient right for HFS), y reversed so that
  anterior (-y) is up;
* coronal (fixed y): x as in axial, z ascending up (superior up);
* sagittal (fixed x): y ascending left to right (anterior left), z up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from rtplan_assist.escape import plotly_text
from rtplan_assist.metrics import parse_metric
from rtplan_assist.status import STATUS_STYLE

__all__ = [
    "PLANES",
    "constraint_points",
    "dose_slice_figure",
    "dvh_figure",
    "plane_axis",
    "structure_outline",
]

PLANES = ("axial", "coronal", "sagittal")

_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39",
    "#7b4173", "#3182bd", "#e6550d", "#31a354",
)
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
_ISODOSE_COLOURS = ("#ff0000", "#ff8c00", "#ffd700", "#00c853", "#00b0ff", "#2962ff", "#aa00ff")

# CT window: W 1600 / L -200 HU shows lung, soft tissue and bone on one slice.
CT_WINDOW_HU = (-1000.0, 600.0)


def structure_colour(name: str, rgb: tuple[int, int, int] | None = None, index: int = 0) -> str:
    """The RTSTRUCT colour when there is one, else a fixed palette colour."""
    if rgb is not None:
        return f"rgb({int(rgb[0])},{int(rgb[1])},{int(rgb[2])})"
    return _PALETTE[index % len(_PALETTE)]


# -- geometry -----------------------------------------------------------------------------
def plane_axis(plane: str) -> tuple[int, str, str, str]:
    """``(array axis, fixed coordinate, horizontal coordinate, vertical coordinate)``."""
    if plane == "axial":
        return 0, "z", "x", "y"
    if plane == "coronal":
        return 1, "y", "x", "z"
    if plane == "sagittal":
        return 2, "x", "y", "z"
    raise ValueError(f"unknown plane {plane!r}; use one of {PLANES}")


def _marker_colour(status: str) -> str:
    """A constraint cross's colour: its status's (:mod:`rtplan_assist.status`); black if
    unknown."""
    style = STATUS_STYLE.get(status)
    return style.colour if style is not None else "#000"


def _axes(grid) -> dict[str, np.ndarray]:
    return {"x": grid.x_mm, "y": grid.y_mm, "z": np.asarray(grid.z_mm, dtype=float)}


def _slice(volume: np.ndarray, grid, plane: str, position_mm: float):
    """Nearest plane of ``volume`` at ``position_mm``: (2-D array [v, h], h axis, v axis, pos)."""
    axis, fixed, h, v = plane_axis(plane)
    coords = _axes(grid)
    k = int(np.argmin(np.abs(coords[fixed] - position_mm)))
    image = np.take(volume, k, axis=axis)  # axial -> [y, x]; coronal -> [z, x]; sagittal -> [z, y]
    return image, coords[h], coords[v], float(coords[fixed][k])


def _intervals(polygons: Sequence[np.ndarray], coord: int, value: float) -> list[tuple]:
    """Inside intervals of the even-odd region of ``polygons`` along the line
    ``polygon[:, coord] == value``: sorted crossings of the other coordinate, paired."""
    other = 1 - coord
    crossings = []
    for poly in polygons:
        a = poly[:, coord]
        b = poly[:, other]
        a2 = np.roll(a, -1)
        b2 = np.roll(b, -1)
        # half-open rule: an edge counts when value lies in [min, max)
        lo = np.minimum(a, a2)
        hi = np.maximum(a, a2)
        hit = (lo <= value) & (value < hi)
        if not np.any(hit):
            continue
        t = (value - a[hit]) / (a2[hit] - a[hit])
        crossings.extend(b[hit] + t * (b2[hit] - b[hit]))
    crossings.sort()
    return [(crossings[i], crossings[i + 1]) for i in range(0, len(crossings) - 1, 2)]


def structure_outline(structure, plane: str, position_mm: float,
                      slab_mm: float | None = None) -> tuple[list, list]:
    """Outline of a structure in a display plane, as x/y lists with ``None`` breaks.

    Axial: the polygons of the contour plane nearest ``position_mm`` when it lies within half
    a slab (``slab_mm``, default the structure's slice thickness or 3 mm). Coronal/sagittal:
    the structure's intersection with the plane, drawn as the slab of each contour plane
    (``z ± slab/2``) over the even-odd inside intervals of the line — the exact cut through
    the contour stack the DVH integrates, not an interpolated surface.
    """
    xs: list = []
    ys: list = []
    if structure.is_empty:
        return xs, ys
    slab = slab_mm or structure.slice_thickness_mm or 3.0
    if plane == "axial":
        k = int(np.argmin(np.abs(structure.plane_z_mm - position_mm)))
        if abs(structure.plane_z_mm[k] - position_mm) > slab / 2 + 1e-6:
            return xs, ys
        for poly in structure.polygons[k]:
            xs += list(poly[:, 0]) + [poly[0, 0], None]
            ys += list(poly[:, 1]) + [poly[0, 1], None]
        return xs, ys
    coord = 1 if plane == "coronal" else 0  # coronal cuts at fixed y, sagittal at fixed x
    half = slab / 2
    rows = [(float(z), _intervals(polys, coord, position_mm))
            for z, polys in zip(structure.plane_z_mm, structure.polygons)]
    rows = [(z, iv) for z, iv in rows if iv]
    if not rows:
        return xs, ys
    return _slab_union_outline(rows, half)


def _slab_union_outline(rows: list[tuple[float, list[tuple]]], half: float
                        ) -> tuple[list, list]:
    """Outline of the union of rectangles ``[lo, hi] x [z - half, z + half]`` (one row of
    intervals per contour plane, ascending z), as segments with ``None`` breaks.

    Columns are cut at every interval end, so the outline is exact: vertical edges where the
    inside/outside status changes along a plane, horizontal edges where it changes between
    touching planes (or at the cap of a plane whose neighbour is not adjacent).
    """
    edges = np.unique(np.array([e for _, iv in rows for pair in iv for e in pair]))
    mids = 0.5 * (edges[1:] + edges[:-1])
    inside = np.zeros((len(rows), len(mids)), dtype=bool)
    for p, (_, intervals) in enumerate(rows):
        for lo, hi in intervals:
            inside[p] |= (mids > lo) & (mids < hi)
    xs: list = []
    ys: list = []

    def segment(x0, y0, x1, y1):
        xs.extend([x0, x1, None])
        ys.extend([y0, y1, None])

    padded = np.pad(inside, ((0, 0), (1, 1)))
    for p, (z, _) in enumerate(rows):
        change = padded[p, 1:] != padded[p, :-1]  # one flag per edge position
        for k in np.flatnonzero(change):
            segment(edges[k], z - half, edges[k], z + half)

    def runs(mask):
        idx = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
        return zip(idx[::2], idx[1::2])

    for p, (z, _) in enumerate(rows):
        below_touch = p > 0 and abs((rows[p - 1][0] + half) - (z - half)) < 1e-3
        above_touch = p + 1 < len(rows) and abs((z + half) - (rows[p + 1][0] - half)) < 1e-3
        below = inside[p - 1] if below_touch else np.zeros_like(inside[p])
        for a, b in runs(inside[p] != below):
            segment(edges[a], z - half, edges[b], z - half)
        if not above_touch:
            for a, b in runs(inside[p]):
                segment(edges[a], z + half, edges[b], z + half)
    return xs, ys


# -- dose view ----------------------------------------------------------------------------
def dose_slice_figure(
    *,
    plane: str,
    position_mm: float,
    dose_grid,
    dose: np.ndarray,
    dose_label: str,
    isodose_levels: Sequence[tuple[float, str]],
    wash_threshold: float,
    wash_max: float | None = None,
    ct_grid=None,
    ct_hu: np.ndarray | None = None,
    structures: Sequence = (),
    title: str = "",
) -> go.Figure:
    """One slice: CT in grey, dose colour wash above a threshold, isodose lines, outlines.

    Parameters
    ----------
    plane : {"axial", "coronal", "sagittal"}
    position_mm : float
        Coordinate of the slice along the fixed axis (z, y or x in mm); the nearest CT and
        dose planes are shown and named in the axis title.
    dose_grid : Grid
    dose : (nz, ny, nx) array
        Dose (Gy) on ``dose_grid``, physical or EQD2 (say which in ``dose_label``).
    dose_label : str
        Colour-bar title with unit, kind, model and α/β, e.g. ``"Dose (Gy, physical)"``.
    isodose_levels : sequence of (level Gy, label)
    wash_threshold : float
        Doses below this (Gy) are transparent.
    wash_max : float, optional
        Top of the colour scale (Gy); default the maximum of ``dose``. Hotter voxels show in
        the top colour (the hover still gives their value).
    ct_grid, ct_hu : Grid and (nz, ny, nx) HU array, optional
    structures : sequence of (Structure, colour)
    """
    _axis, fixed, h, v = plane_axis(plane)
    fig = go.Figure()
    caption = []
    if ct_hu is not None and ct_grid is not None:
        img, hx, vy, pos = _slice(ct_hu, ct_grid, plane, position_mm)
        fig.add_trace(go.Heatmap(
            z=img, x=hx, y=vy, colorscale="Greys_r", zmin=CT_WINDOW_HU[0],
            zmax=CT_WINDOW_HU[1], showscale=False, name="CT (HU)", hoverinfo="skip",
        ))
        caption.append(f"CT {fixed} = {pos:.1f} mm")
    img, hx, vy, pos = _slice(dose, dose_grid, plane, position_mm)
    caption.append(f"dose {fixed} = {pos:.1f} mm")
    wash = np.where(img >= wash_threshold, img, np.nan)
    top = float(np.nanmax(dose)) if np.isfinite(np.nanmax(dose)) else 1.0
    fig.add_trace(go.Heatmap(
        z=wash, x=hx, y=vy, colorscale="Jet", zmin=wash_threshold,
        zmax=max(wash_max if wash_max is not None else top, wash_threshold + 1e-6),
        opacity=0.4, name=dose_label, colorbar={"title": {"text": dose_label, "side": "right"}, "x": 1.0,
                                                     "thickness": 14},
        hovertemplate=f"{h} %{{x:.1f}} mm, {v} %{{y:.1f}} mm<br>%{{z:.2f}} Gy<extra></extra>",
    ))
    for i, (level, label) in enumerate(isodose_levels):
        if not (np.nanmax(img) >= level):
            continue
        colour = _ISODOSE_COLOURS[i % len(_ISODOSE_COLOURS)]
        fig.add_trace(go.Contour(
            z=img, x=hx, y=vy, showscale=False, name=label, showlegend=True,
            contours={"start": level, "end": level, "size": 1.0, "coloring": "none"},
            line={"color": colour, "width": 2}, hoverinfo="skip", legendgroup="isodose",
        ))
    for structure, colour in structures:
        xs, ys = structure_outline(structure, plane, position_mm)
        if not xs:
            continue
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", name=plotly_text(structure.name),
            line={"color": colour, "width": 1.5},
            hoverinfo="name",
        ))
    fig.update_xaxes(title_text=f"{h} (mm)", constrain="domain", showgrid=False, zeroline=False)
    fig.update_yaxes(title_text=f"{v} (mm)", scaleanchor="x", scaleratio=1, showgrid=False,
                     zeroline=False, constrain="domain",
                     autorange="reversed" if plane == "axial" else True)
    fig.update_layout(
        title={"text": f"{plotly_text(title)}<br><sub>{plotly_text(plane)}: "
                       f"{plotly_text(', '.join(caption))}</sub>", "x": 0.01},
        margin={"l": 50, "r": 10, "t": 60, "b": 40}, height=680, plot_bgcolor="black",
        legend={"x": 1.12, "y": 1.0, "font": {"size": 11}}, uirevision=plane,
    )
    return fig


# -- DVH ----------------------------------------------------------------------------------
def _dose_axis_label(kind: str, model: str) -> str:
    if kind == "physical":
        return "Dose (Gy, physical)"
    return f"{kind} (Gy, {model})" if model else f"{kind} (Gy)"


def constraint_points(rows: Sequence, dvhs: Mapping[str, object]) -> list[dict]:
    """Constraint limits as points in (dose Gy, volume %) for the structures in ``dvhs``.

    A dose metric ``D<v>[Gy]`` with limit L is the point (L, v as % of the structure);
    ``V<d>Gy[%|cc]`` with limit L is (d, L as %); Mean/Max limits sit on the curve at L.
    Rows whose metric is in % of prescription, or whose structure has no DVH, are skipped.
    """
    points = []
    for row in rows:
        if row.role != "oar" or row.limit is None or not math.isfinite(row.limit or math.nan):
            continue
        dvh = dvhs.get(row.structure)
        if dvh is None or dvh.dvh_volume_cc <= 0:
            continue
        try:
            m = parse_metric(row.metric)
        except Exception:  # noqa: BLE001, S112 - a metric the plot cannot place is not drawn
            continue
        total = dvh.dvh_volume_cc
        if m.returns_dose:
            if m.out_unit != "Gy":
                continue
            dose = float(row.limit)
            if m.kind in ("Mean", "Max", "Min"):
                vol_pct = 100.0 * dvh.volume_at(dose) / total
            elif m.kind == "D":
                vol_pct = m.value if m.query_unit == "%" else 100.0 * m.value / total
            else:
                continue
        else:
            if m.query_unit not in ("Gy", "cGy"):
                continue
            dose = m.value / (100.0 if m.query_unit == "cGy" else 1.0)
            limit = float(row.limit)
            vol_pct = limit if m.out_unit == "%" else 100.0 * limit / total
            if m.kind == "CV":
                vol_pct = 100.0 - vol_pct
        points.append({
            "structure": row.structure, "dose_gy": dose, "volume_pct": min(vol_pct, 100.0),
            "text": f"{row.structure} {row.metric} {row.comparator} {row.limit:g} "
                    f"({row.kind}, {row.source})",
            "status": row.status,
        })
    return points


def dvh_figure(curves: Sequence[tuple[str, str, object]], *, kind: str, model: str = "",
               rows: Sequence = (), colours: Mapping[str, str] | None = None,
               title: str = "") -> go.Figure:
    """Cumulative DVHs in % volume.

    Parameters
    ----------
    curves : sequence of (structure name, regimen label, DVH)
        One dash style per regimen, one colour per structure.
    kind : {"physical", "EQD2"}
    model : str
        Model and α/β text for the axis when ``kind`` is EQD2 (per-structure α/β is in the
        trace names).
    rows : ResultRow sequence
        Constraint rows of the first regimen drawn as points on the curves.
    """
    fig = go.Figure()
    colours = dict(colours or {})
    regimens = list(dict.fromkeys(label for _, label, _ in curves))
    names = list(dict.fromkeys(name for name, _, _ in curves))
    for i, name in enumerate(names):
        colours.setdefault(name, _PALETTE[i % len(_PALETTE)])
    for name, regimen, dvh in curves:
        if dvh.dvh_volume_cc <= 0:
            continue
        vol_pct = 100.0 * dvh.volume_cc_at_dose / dvh.dvh_volume_cc
        suffix = f", {dvh.model}" if dvh.model and kind != "physical" else ""
        fig.add_trace(go.Scatter(
            x=dvh.dose_gy, y=vol_pct, mode="lines",
            name=plotly_text(f"{name} — {regimen}{suffix}"),
            line={"color": colours[name], "dash": _DASHES[regimens.index(regimen) % len(_DASHES)],
                      "width": 2},
            hovertemplate=(plotly_text(f"{name} {regimen}")
                           + "<br>%{x:.2f} Gy: %{y:.1f} %<extra></extra>"),
        ))
    pts = constraint_points(rows, {n: d for n, _, d in curves})
    if pts:
        fig.add_trace(go.Scatter(
            x=[p["dose_gy"] for p in pts], y=[p["volume_pct"] for p in pts], mode="markers",
            name="constraint limits", text=[plotly_text(p["text"]) for p in pts],
            hoverinfo="text",
            marker={"symbol": "x", "size": 11, "line": {"width": 1},
                        "color": [_marker_colour(p["status"]) for p in pts]},
        ))
    fig.update_xaxes(title_text=_dose_axis_label(kind, model), rangemode="tozero")
    fig.update_yaxes(title_text="Volume (% of structure)", range=[0, 102])
    fig.update_layout(title={"text": plotly_text(title), "x": 0.01}, height=560,
                      margin={"l": 60, "r": 10, "t": 50, "b": 50}, legend={"font": {"size": 10}},
                      template="plotly_white",
                      hovermode="closest")
    return fig
