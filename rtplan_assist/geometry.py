"""Contour-stack geometry: slabs of each plane, exact polygon volume, flat arrays for kernels.

Convention (ARCHITECTURE.md; Nelms et al. 2015): each contour plane stands for a slab of
half the distance to its neighbours on each side; the first and last planes of each part
get end caps of half the nominal plane spacing. Planes further apart than 1.5 × the nominal
spacing start a new part (two lesions in one ROI, a gap in a contour stack), so no slab
bridges a gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import GeometryError
from .model import Structure

GAP_FACTOR = 1.5


@dataclass(frozen=True)
class FlatContours:
    """A structure's polygons as flat arrays, the layout the kernels take.

    Attributes
    ----------
    z_lo, z_hi : (P,) float64
        Slab limits per plane (mm).
    plane_poly : (P + 1,) int64
        Plane ``p`` owns polygons ``plane_poly[p]:plane_poly[p + 1]``.
    poly_start : (Q + 1,) int64
        Polygon ``q`` owns vertices ``poly_start[q]:poly_start[q + 1]``.
    vx, vy : (V,) float64
        Vertex coordinates (mm).
    """

    z_lo: np.ndarray
    z_hi: np.ndarray
    plane_poly: np.ndarray
    poly_start: np.ndarray
    vx: np.ndarray
    vy: np.ndarray


def nominal_spacing(structure: Structure, fallback_mm: float | None = None) -> float:
    """Nominal plane spacing (mm) for end caps: the structure's slice thickness, else the
    modal spacing of its planes, else ``fallback_mm``."""
    if structure.slice_thickness_mm and structure.slice_thickness_mm > 0:
        return float(structure.slice_thickness_mm)
    z = np.asarray(structure.plane_z_mm, dtype=np.float64)
    if len(z) > 1:
        gaps = np.round(np.diff(z), 3)
        gaps = gaps[gaps > 0]
        if len(gaps):
            values, counts = np.unique(gaps, return_counts=True)
            return float(values[np.argmax(counts)])
    if fallback_mm and fallback_mm > 0:
        return float(fallback_mm)
    raise GeometryError(
        f"structure '{structure.name}': one contour plane and no slice thickness known; "
        "cannot give it a thickness"
    )


END_CAPS = ("half", "none")
"""End-cap conventions: ``half`` (default) extends the first and last plane of every run of
planes by half the nominal spacing (Nelms et al. 2015's analytical values, Pinnacle, RayStation
and the half-slice convention of most TPSs); ``none`` ends the solid at the end contours (as
Eclipse does; Nelms' ReadMeFirst names it). A run of one plane keeps its nominal slab under
either (it has no other thickness)."""


def slab_limits(z: np.ndarray, nominal_mm: float,
                end_caps: str = "half") -> tuple[np.ndarray, np.ndarray]:
    """Slab [z_lo, z_hi] of each plane (mm) under the half-spacing convention.

    Parameters
    ----------
    z : (P,) ascending plane positions in mm
    nominal_mm : nominal spacing used for end caps and to detect gaps
    end_caps : {"half", "none"} (see ``END_CAPS``)

    Returns
    -------
    z_lo, z_hi : (P,) float64
    """
    if end_caps not in END_CAPS:
        raise GeometryError(f"end caps must be one of {END_CAPS}, got {end_caps!r}")
    z = np.asarray(z, dtype=np.float64)
    half = nominal_mm / 2.0
    z_lo = z - half
    z_hi = z + half
    if len(z) > 1:
        gaps = np.diff(z)
        joined = gaps <= GAP_FACTOR * nominal_mm + 1e-6
        mids = z[:-1] + gaps / 2.0
        z_hi[:-1] = np.where(joined, mids, z[:-1] + half)
        z_lo[1:] = np.where(joined, mids, z[1:] - half)
        if end_caps == "none":
            # a run's first plane starts, and its last plane ends, at its own contour
            first = np.r_[True, ~joined]
            last = np.r_[~joined, True]
            alone = first & last
            z_lo = np.where(first & ~alone, z, z_lo)
            z_hi = np.where(last & ~alone, z, z_hi)
    return z_lo, z_hi


def flatten(structure: Structure, fallback_spacing_mm: float | None = None,
            end_caps: str = "half") -> FlatContours:
    """Flat kernel arrays for a structure (see :class:`FlatContours`); cached on the
    structure (structures are not modified after loading)."""
    key = (fallback_spacing_mm, end_caps)
    cached = structure.__dict__.get("_flat")
    if cached is not None and cached[0] == key:
        return cached[1]
    flat = _flatten(structure, fallback_spacing_mm, end_caps)
    structure.__dict__["_flat"] = (key, flat)
    return flat


def _flatten(structure: Structure, fallback_spacing_mm: float | None,
             end_caps: str = "half") -> FlatContours:
    if structure.is_empty:
        raise GeometryError(f"structure '{structure.name}' has no contours")
    z = np.asarray(structure.plane_z_mm, dtype=np.float64)
    order = np.argsort(z, kind="stable")
    z = z[order]
    if np.any(np.diff(z) <= 0):
        raise GeometryError(f"structure '{structure.name}': duplicate contour planes")
    nominal = nominal_spacing(structure, fallback_spacing_mm)
    z_lo, z_hi = slab_limits(z, nominal, end_caps)
    plane_poly = [0]
    poly_start = [0]
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for p in order:
        for poly in structure.polygons[p]:
            poly = np.asarray(poly, dtype=np.float64)
            if poly.ndim != 2 or poly.shape[0] < 3 or poly.shape[1] != 2:
                continue
            if not np.all(np.isfinite(poly)):
                raise GeometryError(
                    f"structure '{structure.name}': non-finite contour coordinates"
                )
            xs.append(poly[:, 0])
            ys.append(poly[:, 1])
            poly_start.append(poly_start[-1] + poly.shape[0])
        plane_poly.append(len(poly_start) - 1)
    return FlatContours(
        z_lo=z_lo,
        z_hi=z_hi,
        plane_poly=np.asarray(plane_poly, dtype=np.int64),
        poly_start=np.asarray(poly_start, dtype=np.int64),
        vx=np.concatenate(xs) if xs else np.zeros(0),
        vy=np.concatenate(ys) if ys else np.zeros(0),
    )


def shoelace_area(poly: np.ndarray) -> float:
    """Signed area (mm²) of a closed polygon (N, 2), positive when counter-clockwise."""
    x = poly[:, 0]
    y = poly[:, 1]
    cross = np.dot(x[:-1], y[1:]) - np.dot(y[:-1], x[1:]) + x[-1] * y[0] - y[-1] * x[0]
    return 0.5 * float(cross)


def _point_in_polygon(px: float, py: float, poly: np.ndarray) -> bool:
    x = poly[:, 0]
    y = poly[:, 1]
    x2 = np.concatenate((x[1:], x[:1]))
    y2 = np.concatenate((y[1:], y[:1]))
    crosses = (y <= py) != (y2 <= py)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = x + (py - y) * (x2 - x) / (y2 - y)
    return bool(np.count_nonzero(crosses & (xc > px)) % 2)


def plane_area_even_odd(polygons: list[np.ndarray]) -> float:
    """Even-odd area (mm²) of non-crossing polygons on one plane.

    Each polygon's shoelace area counts positive or negative by the parity of the number
    of other polygons containing it (a hole inside an outline subtracts, an island inside
    the hole adds back). Independent of the kernels' scan-line integration, so the two can
    check each other.
    """
    polys = [np.asarray(p, dtype=np.float64) for p in polygons if len(p) >= 3]
    # Identical polygons cancel in pairs under even-odd (the kernels agree); the depth test
    # below is ambiguous for them (each one's vertex lies on the other) and gave a negative
    # area (issue 6 fuzzing: a contour exported twice on its plane).
    seen: dict[bytes, int] = {}
    for i, poly in enumerate(polys):
        key = np.round(poly, 6).tobytes()
        if key in seen:
            polys[seen.pop(key)] = None
            polys[i] = None
        else:
            seen[key] = i
    polys = [p for p in polys if p is not None]
    total = 0.0
    for i, poly in enumerate(polys):
        depth = 0
        cx, cy = poly[0]
        for j, other in enumerate(polys):
            if i != j and _point_in_polygon(cx, cy, other):
                depth += 1
        total += (-1) ** depth * abs(shoelace_area(poly))
    return total


def polygon_volume_cc(structure: Structure, fallback_spacing_mm: float | None = None,
                      end_caps: str = "half") -> float:
    """Contour-stack volume in cm³: Σ even-odd plane area × slab thickness (end caps as
    ``end_caps`` says, see ``END_CAPS``).

    Cached on the structure (structures are not modified after loading).
    """
    if structure.is_empty:
        return 0.0
    key = ("_polygon_volume_cc", (fallback_spacing_mm, end_caps))
    cached = structure.__dict__.get(key[0])
    if cached is not None and cached[0] == key[1]:
        return cached[1]
    volume = _polygon_volume_cc(structure, fallback_spacing_mm, end_caps)
    structure.__dict__[key[0]] = (key[1], volume)
    return volume


def _polygon_volume_cc(structure: Structure, fallback_spacing_mm: float | None,
                       end_caps: str = "half") -> float:
    z = np.asarray(structure.plane_z_mm, dtype=np.float64)
    order = np.argsort(z, kind="stable")
    z_lo, z_hi = slab_limits(z[order], nominal_spacing(structure, fallback_spacing_mm),
                             end_caps)
    areas = _plane_areas(structure)[order]
    return float(np.sum(areas * (z_hi - z_lo))) / 1000.0


def _plane_areas(structure: Structure) -> np.ndarray:
    """Even-odd area (mm²) of each plane, in the structure's plane order; cached on the
    structure: the volume's costly part, the same whatever the fallback spacing and end caps
    (an evaluation asks the volume of an organ under two fallbacks, which the one-entry
    volume cache above does not keep together)."""
    cached = structure.__dict__.get("_plane_areas")
    if cached is None or len(cached) != len(structure.polygons):
        cached = np.array([plane_area_even_odd(plane) for plane in structure.polygons])
        structure.__dict__["_plane_areas"] = cached
    return cached
