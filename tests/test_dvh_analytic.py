"""DVH engine against closed-form truth on the contours as drawn (dvh-accuracy.md §8, G2).

Every expected value comes from the geometry formulas in ``tests/analytic.py`` (circle
segment areas, n-gon areas, slab sums), not from the engine.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytic import (
    circle, cube_grid, invert, linear_dose, ngon_area, segment_area, slabs, sphere_stack,
)
from rtplan_assist.dvh import DVHSampler, compute_dvh
from rtplan_assist.geometry import polygon_volume_cc
from rtplan_assist.model import Grid, Structure

D0 = 40.0  # Gy at the centre
G = 1.0  # Gy/mm, as in Nelms et al. 2015


def sphere_truth(radii, z, spacing, axis):
    """Volume-above-dose function, volume, mean, min and max for a sphere stack in a
    1 Gy/mm field along ``axis`` through the centre (D0 at the origin)."""
    z_lo, z_hi = slabs(z, spacing)
    areas = np.array([ngon_area(r) for r in radii])
    volume = float(np.sum(areas * (z_hi - z_lo)))
    if axis == "z":
        def v_above(d):
            zc = (d - D0) / G
            return float(np.sum(areas * np.clip(z_hi - np.maximum(z_lo, zc), 0, None)))
        mean = D0 + G * float(np.sum(areas * (z_hi - z_lo) * z)) / volume
        dmin, dmax = D0 + G * z_lo[0], D0 + G * z_hi[-1]
    else:
        def v_above(d):
            a = (d - D0) / G
            return float(sum(segment_area(r, a) * (hi - lo) for r, lo, hi in zip(radii, z_lo, z_hi)))
        mean = D0  # symmetric about the centre
        dmin, dmax = D0 - G * radii.max(), D0 + G * radii.max()
    return v_above, volume, mean, dmin, dmax


CASES = [
    # (radius mm, contour spacing mm, dose grid mm, gradient axis)
    (12.0, 1.0, 1.0, "y"),
    (12.0, 3.0, 2.5, "z"),
    (12.0, 2.0, 3.0, "x"),
    (5.0, 2.5, 2.5, "y"),   # 0.5 cc
    (5.0, 1.0, 2.5, "z"),
    (3.0, 1.0, 2.5, "x"),   # 0.11 cc
    (2.0, 1.0, 2.5, "y"),   # 0.03 cc
]


def _engine(name: str, structure, dose):
    """``kernel``: :func:`compute_dvh`; ``replay``: the recorded samples of
    :class:`DVHSampler` (the composite path of the evaluation) on the same dose."""
    if name == "kernel":
        return compute_dvh(structure, dose)
    return DVHSampler(structure, dose.grid, label="test").dvh(dose.dose_gy)


@pytest.mark.parametrize("engine", ["kernel", "replay"])
@pytest.mark.parametrize("radius,spacing,grid_mm,axis", CASES)
def test_sphere_stack_matches_closed_form(radius, spacing, grid_mm, axis, engine):
    structure, z, radii = sphere_stack(radius, spacing, phase=0.5 if spacing < 2 else 0.3)
    grads = {"x": (G, 0, 0), "y": (0, G, 0), "z": (0, 0, G)}[axis]
    dose = linear_dose(cube_grid(radius + 6.0, grid_mm, offset=(0.37, -0.21, 0.13)), D0, *grads)
    v_above, volume, mean, dmin, dmax = sphere_truth(radii, z, spacing, axis)
    dvh = _engine(engine, structure, dose)

    vol_tol = 0.002 if volume >= 0.5 * 1000 * 0.999 else 0.01
    assert dvh.volume_cc == pytest.approx(volume / 1000, rel=vol_tol)
    assert dvh.dvh_volume_cc == pytest.approx(volume / 1000, rel=vol_tol)
    assert dvh.outside_cc == pytest.approx(0.0, abs=1e-9)
    assert dvh.dmean_gy == pytest.approx(mean, rel=0.002)
    assert dvh.dmin_gy == pytest.approx(dmin, abs=0.02)
    assert dvh.dmax_gy == pytest.approx(dmax, abs=0.02)

    vols = {"D98%": 0.98, "D95%": 0.95, "D50%": 0.50, "D2%": 0.02}
    for name, frac in vols.items():
        truth = invert(v_above, frac * volume, dmin, dmax)
        got = dvh.metric(f"{name}[Gy]").value
        assert got == pytest.approx(truth, abs=max(0.005 * truth, 0.05)), name
    for cc in (0.03, 2.0):
        if cc * 1000 < volume:
            truth = invert(v_above, cc * 1000, dmin, dmax)
            got = dvh.metric(f"D{cc}cc[Gy]").value
            assert got == pytest.approx(truth, abs=max(0.005 * truth, 0.05)), cc

    # whole cumulative curve: |ΔV| <= 1 % of volume (>= 0.5 cc), 3 % below
    curve_tol = 0.01 if volume >= 500 else 0.03
    for d in np.linspace(dmin, dmax, 101):
        assert dvh.volume_at(d) * 1000 == pytest.approx(v_above(d), abs=curve_tol * volume)


@pytest.mark.parametrize("engine", ["kernel", "replay"])
def test_annulus_hole_by_even_odd(engine):
    """Chest-wall-like ring: outer r 20 mm, hole r 10 mm, on 5 planes 2 mm apart.
    Volume = (A_outer − A_inner) × 10 mm; dose linear in x: V(x ≥ a) = seg(20, a) − seg(10, a)."""
    z = np.arange(5) * 2.0
    polys = [[circle(0, 0, 20.0), circle(0, 0, 10.0, n=360, clockwise=True)] for _ in z]
    ring = Structure(7, "Ring", "ORGAN", z, polys, slice_thickness_mm=2.0)
    grid = Grid.uniform([-30, -30, -6], [2.5, 2.5, 2.5], (10, 25, 25))
    dose = linear_dose(grid, D0, gx=G)
    dvh = _engine(engine, ring, dose)
    area = ngon_area(20.0) - ngon_area(10.0, 360)
    assert dvh.volume_cc == pytest.approx(area * 10 / 1000, rel=1e-6)
    assert dvh.dvh_volume_cc == pytest.approx(area * 10 / 1000, rel=2e-3)
    for a in (-15.0, -5.0, 0.0, 12.0):
        truth = (segment_area(20.0, a) - segment_area(10.0, a)) * 10 / 1000
        assert dvh.volume_at(D0 + a) == pytest.approx(truth, abs=0.01 * area * 10 / 1000)
    assert dvh.dmean_gy == pytest.approx(D0, abs=0.002 * D0)


def test_partly_outside_grid_reports_outside_fraction():
    """A 20 mm cube centred on the grid's x edge: exactly half of it lies outside.
    Edge of the grid = last voxel centre + half a voxel."""
    grid = Grid.uniform([-20, -20, -20], [2.0, 2.0, 2.0], (21, 21, 21))  # edges ±21 mm
    sq = np.array([[11.0, -10.0], [31.0, -10.0], [31.0, 10.0], [11.0, 10.0]])
    z = np.arange(-9.0, 10.0, 2.0)
    cube = Structure(3, "Cube", "ORGAN", z, [[sq] for _ in z], slice_thickness_mm=2.0)
    dose = linear_dose(grid, 10.0)
    excluded = compute_dvh(cube, dose)
    assert excluded.volume_cc == pytest.approx(8.0, rel=1e-9)  # 20 × 20 × 20 mm³
    assert excluded.outside_cc == pytest.approx(4.0, rel=1e-6)
    assert excluded.dvh_volume_cc == pytest.approx(4.0, rel=1e-6)
    assert any("50.0%" in w and "outside" in w for w in excluded.warnings)
    zero = compute_dvh(cube, dose, outside="zero")
    assert zero.dvh_volume_cc == pytest.approx(8.0, rel=1e-6)
    assert zero.dmin_gy == 0.0
    assert zero.metric("V5Gy[%]").value == pytest.approx(50.0, abs=0.01)
    assert zero.dmean_gy == pytest.approx(5.0, rel=1e-6)


def test_uniform_dose_gives_step_dvh():
    """Uniform 7 Gy: every D-metric is 7 Gy, V7Gy is the whole volume, V7.01Gy none."""
    s, z, radii = sphere_stack(6.0, 2.0)
    grid = cube_grid(12.0, 2.5)
    dose = linear_dose(grid, 7.0)
    dvh = compute_dvh(s, dose)
    for m in ("D99%[Gy]", "D50%[Gy]", "D0.03cc[Gy]", "Max[Gy]", "Min[Gy]", "Mean[Gy]"):
        assert dvh.metric(m).value == pytest.approx(7.0, abs=2e-3), m
    assert dvh.metric("V6.99Gy[%]").value == pytest.approx(100.0, abs=1e-6)
    assert dvh.metric("V7.01Gy[cc]").value == pytest.approx(0.0, abs=1e-9)


def test_metric_semantics_on_linear_field():
    """Cube 20 mm, dose 0..20 Gy linear in x across it: V(≥D) = 8 cc × (20 − D)/20 exactly.
    So V15Gy[%] = 25 %, CV15Gy[cc] = 6 cc, D25%[Gy] = 15 Gy, DC25%[Gy] = 5 Gy,
    D1cc[Gy] = 17.5 Gy, V50%[%] (Rx 20 Gy) = 50 %, D95%[%] (Rx 20 Gy) = 5 %."""
    sq = np.array([[0.0, 0.0], [20.0, 0.0], [20.0, 20.0], [0.0, 20.0]])
    z = np.arange(1.0, 20.0, 2.0)
    cube = Structure(4, "Cube", "ORGAN", z, [[sq] for _ in z], slice_thickness_mm=2.0)
    grid = Grid.uniform([0, -5, -5], [2.5, 2.5, 2.5], (13, 13, 13))
    dvh = compute_dvh(cube, linear_dose(grid, 0.0, gx=1.0))
    assert dvh.metric("V15Gy[%]").value == pytest.approx(25.0, abs=0.05)
    assert dvh.metric("V1500cGy[cc]").value == pytest.approx(2.0, abs=0.005)
    assert dvh.metric("CV15Gy[cc]").value == pytest.approx(6.0, abs=0.005)
    assert dvh.metric("D25%[Gy]").value == pytest.approx(15.0, abs=0.01)
    assert dvh.metric("DC25%[Gy]").value == pytest.approx(5.0, abs=0.01)
    assert dvh.metric("D1cc[Gy]").value == pytest.approx(17.5, abs=0.01)
    assert dvh.metric("D1cc[cGy]").value == pytest.approx(1750.0, abs=1)
    assert dvh.metric("V50%[%]", prescription_gy=20.0).value == pytest.approx(50.0, abs=0.05)
    assert dvh.metric("D95%[%]", prescription_gy=20.0).value == pytest.approx(5.0, abs=0.05)
    assert math.isnan(dvh.metric("V50%[%]").value)  # no prescription: not evaluable
    assert math.isnan(dvh.metric("D9cc[Gy]").value)  # larger than the structure
    assert dvh.metric("Mean[Gy]").value == pytest.approx(10.0, abs=1e-6)
    assert dvh.metric("Dmax[Gy]").value == pytest.approx(20.0, abs=1e-6)
    assert dvh.metric("Min[Gy]").value == pytest.approx(0.0, abs=1e-6)


def test_polygon_volume_is_independent_of_kernel():
    """The shoelace/nesting volume and the scan-line DVH volume agree (G3: within 0.2 %)."""
    s, z, radii = sphere_stack(9.0, 2.5)
    expected = sum(ngon_area(r) for r in radii) * 2.5 / 1000
    assert polygon_volume_cc(s) == pytest.approx(expected, rel=1e-9)
