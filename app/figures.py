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
    "ISODOSE_COLOURS",
    "PLANES",
    "constraint_markers",
    "constraint_points",
    "delta_e",
    "distinct_colours",
    "view_colours",
    "dose_slice_figure",
    "dvh_figure",
    "orientation_labels",
    "patient_position",
    "plane_axis",
    "plane_reversed",
    "structure_outline",
]

PLANES = ("axial", "coronal", "sagittal")

#: Candidate colours for structures whose own colour clashes (Kelly's 22 colours of maximum
#: contrast without white and black, then the Tableau 10), tried in this order.
_PALETTE = (
    "#f3c300", "#875692", "#f38400", "#a1caf1", "#be0032", "#c2b280", "#848482", "#008856",
    "#e68fac", "#0067a5", "#f99379", "#604e97", "#f6a600", "#b3446c", "#dcd300", "#882d17",
    "#8db600", "#654522", "#e25822", "#2b3d26", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
    "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
_REGIMEN_SYMBOLS = ("circle", "diamond", "square", "triangle-up", "star", "hexagon")
#: Isodose lines, highest level first: colours no structure may come near (ΔE00), drawn
#: dashed (structures are solid), so that an isodose never reads as a contour.
ISODOSE_COLOURS = ("#ff00ff", "#ff9e1b", "#00c8a0", "#2f9bff", "#b388ff", "#c0ca33", "#8d6e63")
#: Smallest CIEDE2000 difference kept between two structures, or a structure and an isodose
#: line, of one figure: the pairs the MDT could not tell apart (Lungs/LUNGS-ITV's 15, Heart/
#: GreatVes 19, GTV/GreatVes 8-10, cord/50 % isodose 12) are below it.
MIN_DELTA_E = 20.0
#: Lightness (CIE L*) of structure colours: readable on the DVH's white and the CT's black.
STRUCTURE_LIGHTNESS = (30.0, 80.0)

# CT window: W 1600 / L -200 HU shows lung, soft tissue and bone on one slice.
CT_WINDOW_HU = (-1000.0, 600.0)


def _rgb(colour) -> tuple[float, float, float]:
    """``"#rrggbb"``, ``"rgb(r,g,b)"`` or an (r, g, b) tuple as 0-255 floats."""
    if isinstance(colour, str):
        text = colour.strip()
        if text.startswith("#"):
            return tuple(float(int(text[i:i + 2], 16)) for i in (1, 3, 5))
        inner = text[text.index("(") + 1:text.rindex(")")]
        return tuple(float(v) for v in inner.split(",")[:3])
    return tuple(float(v) for v in colour[:3])


def lab(colour) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB colour (see :func:`_rgb` for the forms accepted)."""
    return _lab_of_rgb(np.asarray(_rgb(colour)))


def _lab_of_rgb(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of sRGB values (..., 3) in 0-255."""
    c = np.asarray(rgb, dtype=float) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124564, 0.3575761, 0.1804375],
                             [0.2126729, 0.7151522, 0.0721750],
                             [0.0193339, 0.1191920, 0.9503041]]).T
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def _ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 ΔE00 of L*a*b* arrays (..., 3), broadcast (Sharma, Wu and Dalal, Color Res
    Appl 2005;30:21-30, equations 1-16)."""
    l1, a1, b1 = np.moveaxis(np.asarray(lab1, dtype=float), -1, 0)
    l2, a2, b2 = np.moveaxis(np.asarray(lab2, dtype=float), -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.where(c1p > 0, np.degrees(np.arctan2(b1, a1p)) % 360, 0.0)
    h2p = np.where(c2p > 0, np.degrees(np.arctan2(b2, a2p)) % 360, 0.0)
    chroma = c1p * c2p > 0
    dhp = h2p - h1p
    dhp = np.where(dhp > 180, dhp - 360, np.where(dhp < -180, dhp + 360, dhp))
    dhp = np.where(chroma, dhp, 0.0)
    dh_big = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dhp / 2))
    l_bar, cp_bar = (l1 + l2) / 2, (c1p + c2p) / 2
    far = np.abs(h1p - h2p) > 180
    h_bar = np.where(far, (h1p + h2p + np.where(h1p + h2p < 360, 360, -360)) / 2,
                     (h1p + h2p) / 2)
    h_bar = np.where(chroma, h_bar, h1p + h2p)
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    d_theta = 30 * np.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    dl, dc, dh = (l2 - l1) / s_l, (c2p - c1p) / s_c, dh_big / s_h
    return np.sqrt(dl**2 + dc**2 + dh**2 + r_t * dc * dh)


def delta_e(a, b) -> float:
    """CIEDE2000 colour difference ΔE00 of two colours (:func:`_ciede2000`); about 2 is just
    noticeable, 20 clearly different."""
    return float(_ciede2000(lab(a), lab(b)))


#: Fallback candidates when no palette colour is far enough: an sRGB lattice (6 levels).
_LATTICE = np.array([(r, g, b) for r in range(0, 256, 51) for g in range(0, 256, 51)
                     for b in range(0, 256, 51)], dtype=float)


def _hex(rgb) -> str:
    return "#" + "".join(f"{int(round(v)):02x}" for v in _rgb(rgb))


def distinct_colours(structures: Sequence[tuple[str, object]], *, reserved: Sequence = (),
                     min_delta_e: float = MIN_DELTA_E,
                     lightness: tuple[float, float] = STRUCTURE_LIGHTNESS) -> dict[str, str]:
    """A colour per structure, distinguishable from the others and from ``reserved`` colours.

    Parameters
    ----------
    structures : sequence of (name, colour or None)
        In priority order; the colour is the RTSTRUCT's ROIDisplayColor (r, g, b) when known.
    reserved : sequence of colours
        Colours nothing may come near (the isodose lines of a dose view).
    min_delta_e : float
        CIEDE2000 ΔE (:func:`delta_e`) kept between any two returned colours and to each
        reserved colour.
    lightness : (low, high)
        CIE L* range of a returned colour (a pale yellow disappears on white, a dark blue on
        black).

    Returns
    -------
    dict of str to str
        ``"#rrggbb"`` per name. A structure keeps its own colour when it is within the
        lightness range and ``min_delta_e`` away from every colour given before it; otherwise
        it gets the first colour of :data:`_PALETTE` (then of an sRGB lattice) that is; when
        none is (very many structures), the farthest candidate.
    """
    palette = np.array([_rgb(c) for c in _PALETTE])
    candidates = np.concatenate([palette, _LATTICE])
    cand_lab = _lab_of_rgb(candidates)
    readable = (cand_lab[:, 0] >= lightness[0]) & (cand_lab[:, 0] <= lightness[1])
    taken = [lab(c) for c in reserved]
    out: dict[str, str] = {}

    def distances(values: np.ndarray) -> np.ndarray:
        if not taken:
            return np.full(len(values), np.inf)
        return _ciede2000(values[:, None, :], np.array(taken)[None, :, :]).min(axis=1)

    for name, own in structures:
        if name in out:
            continue
        if own is not None:
            value = lab(own)
            if (lightness[0] <= value[0] <= lightness[1]
                    and distances(value[None])[0] >= min_delta_e):
                out[name] = _hex(own)
                taken.append(value)
                continue
        d = np.where(readable, distances(cand_lab), -1.0)
        good = np.flatnonzero(d >= min_delta_e)
        # the first palette colour far enough, else the farthest candidate of all
        k = int(good[0]) if len(good) else int(np.argmax(d))
        out[name] = _hex(candidates[k])
        taken.append(cand_lab[k])
    return out


#: Isodose colours every view keeps clear of (the lesion views draw 4 levels, the composite 5),
#: so that a structure has the same colour in the DVH and in every dose view.
RESERVED_ISODOSES = 5


def view_colours(oars: Sequence[tuple[str, object]], targets: Sequence[tuple[str, object]]
                 ) -> dict[str, str]:
    """Structure colours of a DVH or dose view (:func:`distinct_colours`): the case's OARs
    first, against the first :data:`RESERVED_ISODOSES` isodose colours, so that an OAR's
    colour depends only on the case (the same in every view); then the view's targets,
    against those and the OARs' colours.

    Parameters
    ----------
    oars, targets : sequence of (name, RTSTRUCT colour or None)
    """
    reserved = list(ISODOSE_COLOURS[:RESERVED_ISODOSES])
    out = distinct_colours(oars, reserved=reserved)
    out.update(distinct_colours([t for t in targets if t[0] not in out],
                                reserved=reserved + list(out.values())))
    return out


def structure_colour(name: str, rgb: tuple[int, int, int] | None = None, index: int = 0) -> str:
    """The RTSTRUCT colour when there is one, else a fixed palette colour (no clash check:
    figures with several structures use :func:`distinct_colours`)."""
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


# -- orientation --------------------------------------------------------------------------
#: Patient direction letters of the DICOM patient axes (LPS): the + end, then the - end.
_AXIS_LETTERS = {"x": ("L", "R"), "y": ("P", "A"), "z": ("S", "I")}
HFS_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _orientation_signs(orientation) -> tuple[int, int]:
    """(sx, sy): the signs of the row (x) and column (y) direction cosines of an axial
    ImageOrientationPatient (``rtplan_assist.dicom`` accepts only those)."""
    values = [float(v) for v in (orientation if orientation is not None else HFS_ORIENTATION)]
    return (1 if values[0] >= 0 else -1), (1 if values[4] >= 0 else -1)


def plane_reversed(plane: str, orientation=None) -> tuple[bool, bool]:
    """Whether the horizontal and the vertical display axes of ``plane`` run against their
    patient coordinate, so that the image appears as acquired.

    Axial: columns left to right along the row direction cosine (x), rows top to bottom along
    the column direction cosine (y) of ImageOrientationPatient. Coronal: x as axial, superior
    up. Sagittal: y left to right along the column cosine, superior up.
    """
    sx, sy = _orientation_signs(orientation)
    if plane == "axial":
        return sx < 0, sy > 0
    if plane == "coronal":
        return sx < 0, False
    if plane == "sagittal":
        return sy < 0, False
    raise ValueError(f"unknown plane {plane!r}; use one of {PLANES}")


def orientation_labels(plane: str, orientation=None) -> dict[str, str]:
    """Patient direction letters at the edges of a displayed plane.

    Parameters
    ----------
    plane : {"axial", "coronal", "sagittal"}
    orientation : sequence of 6 floats, optional
        ImageOrientationPatient of the image series (default HFS, ``1\\0\\0\\0\\1\\0``).

    Returns
    -------
    dict
        ``left``, ``right``, ``top``, ``bottom``: ``R``/``L`` (patient right/left), ``A``/``P``
        (anterior/posterior), ``S``/``I`` (superior/inferior). E.g. axial HFS: R, L, A, P;
        axial feet-first supine: L, R, A, P; axial head-first prone: L, R, P, A.
    """
    _, _, h, v = plane_axis(plane)
    h_rev, v_rev = plane_reversed(plane, orientation)
    plus_h, minus_h = _AXIS_LETTERS[h]
    plus_v, minus_v = _AXIS_LETTERS[v]
    right, left = (minus_h, plus_h) if h_rev else (plus_h, minus_h)
    top, bottom = (minus_v, plus_v) if v_rev else (plus_v, minus_v)
    return {"left": left, "right": right, "top": top, "bottom": bottom}


def patient_position(orientation) -> str:
    """``HFS``, ``FFS``, ``HFP`` or ``FFP`` of an axial ImageOrientationPatient."""
    from rtplan_assist.dicom._common import AXIAL_ORIENTATIONS

    return AXIAL_ORIENTATIONS[_orientation_signs(orientation)]


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
    orientation: Sequence[float] | None = None,
    points: Sequence[tuple[float, float, float, str]] = (),
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
        Drawn as solid outlines (isodoses are dashed).
    orientation : sequence of 6 floats, optional
        ImageOrientationPatient of the images: the slice is shown as acquired
        (:func:`plane_reversed`) with the patient direction letters at its edges
        (:func:`orientation_labels`); default HFS.
    points : sequence of (x, y, z mm, label)
        Points marked on the slice when within half a dose-grid step of it (e.g. an OAR's
        maximum).
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
        opacity=0.4, name=dose_label,
        colorbar={"title": {"text": dose_label, "side": "right"}, "x": 1.0, "thickness": 14},
        hovertemplate=(f"{h} %{{x:.1f}} mm, {v} %{{y:.1f}} mm<br>%{{z:.2f}} Gy: "
                       f"{plotly_text(dose_label)}<extra></extra>"),
    ))
    for i, (level, label) in enumerate(isodose_levels):
        if not (np.nanmax(img) >= level):
            continue
        colour = ISODOSE_COLOURS[i % len(ISODOSE_COLOURS)]
        fig.add_trace(go.Contour(
            z=img, x=hx, y=vy, showscale=False, name=label, showlegend=True,
            contours={"start": level, "end": level, "size": 1.0, "coloring": "none"},
            line={"color": colour, "width": 2, "dash": "dash"}, hoverinfo="skip",
            legendgroup="isodose",
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
    step = float(np.max(dose_grid.spacing))
    index = {"x": 0, "y": 1, "z": 2}
    for x_mm, y_mm, z_mm, label in points:
        p = (x_mm, y_mm, z_mm)
        if abs(p[index[fixed]] - pos) > step / 2 + 1e-6:
            continue
        fig.add_trace(go.Scatter(
            x=[p[index[h]]], y=[p[index[v]]], mode="markers", name=plotly_text(label),
            marker={"symbol": "cross-thin-open", "size": 18, "line": {"width": 3,
                                                                    "color": "#ffffff"}},
            hovertext=[plotly_text(label)], hoverinfo="text",
        ))
    h_rev, v_rev = plane_reversed(plane, orientation)
    fig.update_xaxes(title_text=f"{h} (mm)", constrain="domain", showgrid=False, zeroline=False,
                     autorange="reversed" if h_rev else True)
    fig.update_yaxes(title_text=f"{v} (mm)", scaleanchor="x", scaleratio=1, showgrid=False,
                     zeroline=False, constrain="domain",
                     autorange="reversed" if v_rev else True)
    letters = orientation_labels(plane, orientation)
    for edge, (x, y, xanchor, yanchor) in {
        "left": (0.005, 0.5, "left", "middle"), "right": (0.995, 0.5, "right", "middle"),
        "top": (0.5, 0.995, "center", "top"), "bottom": (0.5, 0.005, "center", "bottom"),
    }.items():
        fig.add_annotation(
            text=f"<b>{letters[edge]}</b>", x=x, y=y, xref="x domain", yref="y domain",
            xanchor=xanchor, yanchor=yanchor, showarrow=False,
            font={"size": 18, "color": "#ffeb3b"}, bgcolor="rgba(0,0,0,0.6)",
            name=f"orientation-{edge}",
        )
    position = patient_position(orientation)
    caption.append(f"orientation {position} (ImageOrientationPatient)" if orientation
                   is not None else "orientation HFS assumed (no ImageOrientationPatient)")
    fig.update_layout(
        title={"text": f"{plotly_text(title)}<br><sub>{plotly_text(plane)}: "
                       f"{plotly_text(', '.join(caption))}</sub>", "x": 0.01},
        margin={"l": 50, "r": 10, "t": 60, "b": 40}, height=860, plot_bgcolor="black",
        legend={"x": 1.1, "y": 1.0, "font": {"size": 12}},
        uirevision=f"{plane}-{position}",
    )
    return fig


# -- DVH ----------------------------------------------------------------------------------
def _dose_axis_label(kind: str, model: str) -> str:
    if kind == "physical":
        return "Dose (Gy, physical)"
    return f"{kind} (Gy, {model})" if model else f"{kind} (Gy)"


def _fraction_words(row) -> str:
    """The limit's fraction number, and its conversion when it was converted."""
    if row.converted_from_fractions:
        ab = f", LQ, α/β = {row.alpha_beta_gy:g} Gy" if row.alpha_beta_gy else ""
        return (f"limit of {row.converted_from_fractions} fx converted to "
                f"{row.constraint_fractions or '?'} fx{ab}")
    if row.constraint_fractions:
        return f"limit for {row.constraint_fractions} fx"
    return "the source gives no fraction number"


def _kind_words(row) -> str:
    if row.kind == "physical":
        return "physical"
    ab = f", α/β = {row.alpha_beta_gy:g} Gy" if row.alpha_beta_gy else ""
    return f"{row.kind}, {row.model or 'LQ'}{ab}"


def constraint_points(rows: Sequence, dvhs: Mapping[str, object], *,
                      display: Mapping[str, object] | None = None) -> list[dict]:
    """Constraint limits of one regimen as points in (dose Gy, volume %) on its DVHs.

    A dose metric ``D<v>[Gy]`` with limit L is the point (L, v as % of the structure);
    ``V<d>Gy[%|cc]`` with limit L is (d, L as %); Mean/Max limits sit on the curve at L.
    Physical rows are placed as they are; EQD2 rows through their own LQ map (their α/β at
    the regimen's fraction number) back to physical dose. With ``display`` (structure ->
    :class:`~rtplan_assist.radiobiology.DoseTransform`, physical → the shown EQD2 axis of
    that structure's curve, same fraction number) the dose is then mapped onto that axis:
    exact for one plan, since the EQD2 DVH is the physical one with its dose axis mapped.
    Rows whose metric is in % of prescription, target rows, rows of a structure without a
    DVH (or, with ``display``, without a transform) are skipped.

    Returns
    -------
    list of dict
        ``structure``, ``regimen``, ``dose_gy`` (shown axis), ``volume_pct``, ``status``,
        ``text`` (hover: metric, limit, unit, kind/model/α/β, source, fraction number, the
        regimen and status) and ``rows``.
    """
    from rtplan_assist.radiobiology import Model, eqd2_transform
    from rtplan_assist.regimens import parse_regimen

    points = []
    for row in rows:
        if row.role != "oar" or row.limit is None or not math.isfinite(row.limit or math.nan):
            continue
        if row.kind not in ("physical", "EQD2"):
            continue
        dvh = dvhs.get(row.structure)
        if dvh is None or dvh.dvh_volume_cc <= 0:
            continue
        transform = None
        if display is not None:
            transform = display.get(row.structure)
            if transform is None:
                continue
        try:
            m = parse_metric(row.metric)
            fractions = parse_regimen(row.regimen).fractions
            own = (None if row.kind == "physical" else
                   eqd2_transform(fractions, Model("LQ", float(row.alpha_beta_gy))))
        except Exception:  # noqa: BLE001, S112 - a row the plot cannot place is not drawn
            continue

        def shown(dose_in_row_kind: float) -> float:
            physical = dose_in_row_kind if own is None else float(own.inverse(dose_in_row_kind))
            return physical if transform is None else float(transform(physical))

        total = dvh.dvh_volume_cc
        if m.returns_dose:
            if m.out_unit != "Gy":
                continue
            dose = shown(float(row.limit))
            if m.kind in ("Mean", "Max", "Min"):
                vol_pct = 100.0 * dvh.volume_at(dose) / total
            elif m.kind == "D":
                vol_pct = m.value if m.query_unit == "%" else 100.0 * m.value / total
            else:
                continue
        else:
            if m.query_unit not in ("Gy", "cGy"):
                continue
            dose = shown(m.value / (100.0 if m.query_unit == "cGy" else 1.0))
            limit = float(row.limit)
            vol_pct = limit if m.out_unit == "%" else 100.0 * limit / total
            if m.kind == "CV":
                vol_pct = 100.0 - vol_pct
        where = ""
        if transform is not None:
            where = f"; drawn at {dose:.2f} Gy on this curve's axis ({transform.label})"
        elif own is not None:
            where = f"; drawn at {dose:.2f} Gy physical in {fractions} fx"
        text = (f"{row.structure} {row.metric} {row.comparator} {row.limit:.4g} {row.unit} "
                f"({_kind_words(row)}); {row.source}; {_fraction_words(row)}; at "
                f"{row.regimen}: {row.status}{where}")
        points.append({
            "structure": row.structure, "regimen": row.regimen, "dose_gy": dose,
            "volume_pct": min(max(vol_pct, 0.0), 100.0), "text": text, "status": row.status,
            "rows": [row],
        })
    return points


def constraint_markers(curves: Sequence[tuple[str, str, object]], rows: Sequence,
                       transforms: Mapping[tuple[str, str], object] | None = None
                       ) -> list[dict]:
    """The numbered constraint markers of every regimen drawn in ``curves``.

    Parameters
    ----------
    curves : sequence of (structure name, regimen label, DVH)
    rows : ResultRow sequence
        Rows of any of the regimens (``row.regimen`` says which).
    transforms : mapping (structure, regimen label) -> DoseTransform, optional
        For an EQD2 axis: physical → EQD2 of each curve (see :func:`constraint_points`).

    Returns
    -------
    list of dict
        :func:`constraint_points`'s dicts, points at the same place merged, also across
        regimens (``texts`` lists each row's text, ``regimen`` is the first one's, the worst
        status kept), numbered from 1 (``number``) in the
        order regimen, then dose.
    """
    from .views import worst_status

    regimens = list(dict.fromkeys(label for _, label, _ in curves))
    merged: list[dict] = []
    places: dict[tuple, dict] = {}
    for regimen in regimens:
        dvhs = {name: dvh for name, label, dvh in curves if label == regimen}
        display = None
        if transforms is not None:
            display = {name: t for (name, label), t in transforms.items() if label == regimen}
        points = constraint_points([r for r in rows if r.regimen == regimen], dvhs,
                                   display=display)
        for p in sorted(points, key=lambda p: (p["dose_gy"], p["structure"])):
            key = (p["structure"], round(p["dose_gy"], 2), round(p["volume_pct"], 2))
            if key in places:
                q = places[key]
                q["texts"].append(p["text"])
                q["rows"] += p["rows"]
                q["status"] = worst_status([q["status"], p["status"]])
                continue
            places[key] = dict(p, texts=[p["text"]])
            merged.append(places[key])
    for number, p in enumerate(merged, start=1):
        p["number"] = number
    return merged


def dvh_figure(curves: Sequence[tuple[str, str, object]], *, kind: str, model: str = "",
               rows: Sequence = (), transforms: Mapping[tuple[str, str], object] | None = None,
               colours: Mapping[str, str] | None = None, title: str = "",
               legend_title: str = "Structures (colour), regimens (line style)") -> go.Figure:
    """Cumulative DVHs in % volume with the constraint limits of every drawn regimen.

    Parameters
    ----------
    curves : sequence of (structure name, regimen label, DVH)
        One colour per structure (:func:`distinct_colours` of the names when ``colours`` does
        not give one), one line style per regimen. The legend lists each structure once
        (clicking it hides all its curves) and each regimen's line style once.
    kind : {"physical", "EQD2"}
    model : str
        Model and α/β text for the axis when ``kind`` is EQD2 (per-structure α/β is in the
        hover text of each curve).
    rows : ResultRow sequence
        Constraint rows of the drawn regimens, shown as numbered markers
        (:func:`constraint_markers`): the structure's colour, the status's colour as the
        outline, one symbol per regimen; the hover gives the metric, limit, unit, model,
        source and fraction number.
    transforms : mapping (structure, regimen) -> DoseTransform, optional
        Needed for ``kind="EQD2"`` to place the limits (:func:`constraint_points`).
    """
    fig = go.Figure()
    names = list(dict.fromkeys(name for name, _, _ in curves))
    colours = {**distinct_colours([(n, None) for n in names]), **dict(colours or {})}
    regimens = list(dict.fromkeys(label for _, label, _ in curves))
    listed: set[str] = set()
    for name, regimen, dvh in curves:
        if dvh.dvh_volume_cc <= 0:
            continue
        vol_pct = 100.0 * dvh.volume_cc_at_dose / dvh.dvh_volume_cc
        suffix = f", {dvh.model}" if dvh.model and kind != "physical" else ""
        fig.add_trace(go.Scatter(
            x=dvh.dose_gy, y=vol_pct, mode="lines",
            name=plotly_text(name), legendgroup=plotly_text(name),
            showlegend=name not in listed,
            line={"color": colours[name], "width": 2.5,
                  "dash": _DASHES[regimens.index(regimen) % len(_DASHES)]},
            hovertemplate=(plotly_text(f"{name} — {regimen}{suffix}")
                           + "<br>%{x:.2f} Gy: %{y:.1f} %<extra></extra>"),
        ))
        listed.add(name)
    if len(regimens) > 1:
        for i, regimen in enumerate(regimens):
            fig.add_trace(go.Scatter(
                x=[None], y=[None], mode="lines", name=plotly_text(f"{regimen} (line style)"),
                line={"color": "#495057", "width": 2, "dash": _DASHES[i % len(_DASHES)]},
                legendgroup="regimen-styles", hoverinfo="skip",
            ))
    markers = constraint_markers(curves, rows, transforms)
    for i, regimen in enumerate(regimens):
        pts = [p for p in markers if p["regimen"] == regimen]
        if not pts:
            continue
        fig.add_trace(go.Scatter(
            x=[p["dose_gy"] for p in pts], y=[p["volume_pct"] for p in pts],
            mode="markers+text", name=plotly_text(f"limits at {regimen}"),
            legendgroup="limits", text=[str(p["number"]) for p in pts],
            textposition="top right", textfont={"size": 11, "color": "#212529"},
            hovertext=[f"[{p['number']}] " + "<br>".join(plotly_text(t) for t in p["texts"])
                       for p in pts],
            hoverinfo="text",
            marker={"symbol": _REGIMEN_SYMBOLS[i % len(_REGIMEN_SYMBOLS)], "size": 10,
                    "color": [colours.get(p["structure"], "#000") for p in pts],
                    "line": {"width": 2, "color": [_marker_colour(p["status"]) for p in pts]}},
        ))
    fig.update_xaxes(title_text=_dose_axis_label(kind, model), rangemode="tozero")
    fig.update_yaxes(title_text="Volume (% of structure)", range=[-3, 104])
    fig.update_layout(title={"text": plotly_text(title), "x": 0.01}, height=600,
                      margin={"l": 60, "r": 10, "t": 50, "b": 50},
                      legend={"font": {"size": 13}, "tracegroupgap": 4,
                              "title": {"text": plotly_text(legend_title)}},
                      template="plotly_white", hovermode="closest")
    return fig
