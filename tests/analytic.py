"""Closed-form test geometry: contour stacks and linear dose fields whose DVHs are known.

Truth is computed on the contours *as drawn* (the "contour-exact" truth of
dvh-accuracy.md §8, G2): right prisms of each plane's polygons, half-spacing slabs, half-slice
end caps. Polygons are regular 720-gons, within 1e-4 mm of their circle, so circle-segment
formulas give the truth to far better than the tolerances tested.
"""

from __future__ import annotations

import math

import numpy as np

from rtplan_assist.model import Dose, Grid, Structure

N_GON = 720


def circle(cx: float, cy: float, r: float, n: int = N_GON, start: float = 0.0,
           clockwise: bool = False) -> np.ndarray:
    """(n, 2) regular polygon inscribed in a circle (mm)."""
    t = start + np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    if clockwise:
        t = -t
    return np.c_[cx + r * np.cos(t), cy + r * np.sin(t)]


def ngon_area(r: float, n: int = N_GON) -> float:
    """Area of a regular n-gon of circumradius r: n/2 r² sin(2π/n)."""
    return 0.5 * n * r * r * math.sin(2 * math.pi / n)


def segment_area(r: float, a: float) -> float:
    """Area of the part of a disc of radius r with coordinate >= a (circle segment):
    r² acos(a/r) − a √(r² − a²)."""
    if a >= r:
        return 0.0
    if a <= -r:
        return math.pi * r * r
    return r * r * math.acos(a / r) - a * math.sqrt(r * r - a * a)


def sphere_stack(R: float, spacing: float, z0: float = 0.0, cx: float = 0.0,
                 cy: float = 0.0, phase: float = 0.5) -> tuple[Structure, np.ndarray, np.ndarray]:
    """Sphere of radius R contoured on planes z0 + (k + phase) * spacing.

    Returns the structure, the plane z values and the radii of the planes' circles.
    """
    k = np.arange(-math.ceil(R / spacing) - 1, math.ceil(R / spacing) + 1)
    z = (k + phase) * spacing
    z = z[np.abs(z) < R - 1e-6]
    radii = np.sqrt(R * R - z * z)
    polys = [[circle(cx, cy, r)] for r in radii]
    s = Structure(1, "Sphere", "ORGAN", z + z0, polys, slice_thickness_mm=spacing)
    return s, z + z0, radii


def linear_dose(grid: Grid, d0: float, gx: float = 0.0, gy: float = 0.0, gz: float = 0.0,
                centre=(0.0, 0.0, 0.0)) -> Dose:
    """Dose d0 + g·(r − centre) in Gy on ``grid`` (trilinear interpolation is exact for it)."""
    zz, yy, xx = np.meshgrid(grid.z_mm, grid.y_mm, grid.x_mm, indexing="ij")
    values = d0 + gx * (xx - centre[0]) + gy * (yy - centre[1]) + gz * (zz - centre[2])
    return Dose("analytic", "1.2.3", "1.2.3.4", grid, values.astype(np.float64))


def cube_grid(half_width: float, spacing: float, offset=(0.0, 0.0, 0.0)) -> Grid:
    """Grid of voxel centres covering [-half_width, half_width] around ``offset``."""
    n = int(round(2 * half_width / spacing)) + 1
    origin = np.array(offset) - half_width
    return Grid.uniform(origin, [spacing] * 3, (n, n, n))


def slabs(z: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Half-spacing slabs of uniformly spaced planes (the convention under test)."""
    return z - spacing / 2, z + spacing / 2


def invert(volume_of_dose, target_cc: float, lo: float, hi: float) -> float:
    """Dose D with volume_of_dose(D) = target (the function is non-increasing), by bisection."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if volume_of_dose(mid) >= target_cc:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
