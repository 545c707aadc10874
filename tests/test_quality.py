"""Per-lesion plan quality indices (rtplan_assist.quality, issue 17) against closed forms.

Geometry: spheres contoured as 720-gon stacks (tests/analytic.py), on a dose that is a linear
function of the distance r to the sphere centre,

    f(r) = Rx · (1 − (r − R) / (2a)),   clamped at 0,

so the prescription isodose is the sphere r = R and the 50 % isodose the sphere r = R + a.
The engine interpolates the dose grid trilinearly: r is convex with Laplacian 2/r, so the
interpolated r exceeds r by at most h²/8 · 2/r (h the grid spacing) and the interpolated
isodose of radius ρ lies between the spheres ρ − h²/(4ρ) and ρ (``_shrink``). PIV and V50 are
integrated on a 1 mm lattice (midpoint rule): allowed 0.1 % beyond those bounds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from rtplan_assist.model import Dose, Grid
from rtplan_assist.quality import QualityTarget, isodose_volume_cc, quality_indices, quality_text

from analytic import ngon_area, sphere_stack

RX = 20.0
R = 10.0
A = 16.0  # 50 % isodose radius R + A = 26 mm
SPACING = 0.25  # contour plane spacing (mm): the stack is within 1 % of the ball
GRID_MM = 1.0


def _radial(grid: Grid, centres) -> np.ndarray:
    zz, yy, xx = np.meshgrid(grid.z_mm, grid.y_mm, grid.x_mm, indexing="ij")
    out = np.zeros(grid.shape)
    for cx, cy, cz in centres:
        r = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2 + (zz - cz) ** 2)
        out = np.maximum(out, np.clip(RX * (1.0 - (r - R) / (2 * A)), 0.0, None))
    return out


def _case(centres_x, x_lo=-50.0, x_hi=50.0):
    nx = int(round((x_hi - x_lo) / GRID_MM)) + 1
    n = int(round(100.0 / GRID_MM)) + 1
    grid = Grid.uniform([x_lo, -50.0, -50.0], [GRID_MM] * 3, (n, n, nx))
    values = _radial(grid, [(c, 0.0, 0.0) for c in centres_x])
    dose = Dose("radial", "1.2.3", "1.2.3.4", grid, values)
    items = []
    for k, cx in enumerate(centres_x):
        target, _, _ = sphere_stack(R, SPACING, cx=cx)
        target.name = f"PTV{k + 1}"
        items.append(QualityTarget(f"L{k + 1}", target, dose, RX))
    return items


def _ball(rho):
    return 4.0 / 3.0 * math.pi * rho**3 / 1000.0


def _shrink(rho):
    return rho - GRID_MM**2 / (4 * rho)


def _stack_truth(ball_r=R):
    """Contour-exact TV (prisms of the 720-gons, half-spacing slabs, sphere_stack planes) and
    TV ∩ ball of radius ``ball_r``, by quadrature of each slab against the ball's section."""
    _, z, radii = sphere_stack(R, SPACING)
    tv = sum(ngon_area(r) * SPACING for r in radii) / 1000.0
    inter = 0.0
    for zk, rk in zip(z, radii):
        area = ngon_area(rk) / (math.pi * rk * rk)  # 720-gon / circle, ≈ 1 − 1.3e-5
        inter += integrate.quad(
            lambda t: area * math.pi * min(rk * rk, max(ball_r * ball_r - t * t, 0.0)),
            zk - SPACING / 2, zk + SPACING / 2)[0]
    return tv, inter / 1000.0


@pytest.fixture(scope="module")
def single():
    return quality_indices(_case([0.0]))[0]


def test_sphere_on_its_prescription_isodose_has_ci_one(single):
    # PIV: the ball r <= R (shrunk by at most _shrink); TV and TV∩PIV contour-exact
    # (_stack_truth). Paddick CI = TV_PIV²/(TV·PIV) = 1 for a target equal to the isodose:
    # here 0.9906 from the contour stack's departure from the ball, and at most 3·h²/(4R²)
    # = 0.75 % less from the trilinear shrink.
    tv, inter = _stack_truth()
    inter_lo = _stack_truth(_shrink(R))[1]
    v = single.values
    assert v["TV[cc]"] == pytest.approx(tv, rel=1e-3)
    assert inter_lo * 0.999 <= v["TV_PIV[cc]"] <= inter * 1.001
    assert _ball(_shrink(R)) * 0.999 <= v["PIV[cc]"] <= _ball(R) * 1.001
    assert inter**2 / (tv * _ball(R)) == pytest.approx(0.9906, abs=1e-4)
    assert v["CI_Paddick"] == pytest.approx(1.0, abs=0.0094 + 0.0075 + 0.002)
    assert v["CI_RTOG"] == pytest.approx(1.0, abs=0.0075 + 0.002 + 0.001)


def test_known_fall_off_gives_analytic_gi_r50_d2cm(single):
    # 50 % isodose: the ball r <= R + A: GI = ((R + A)/R)³ = 17.576, R50% = V50/TV, within
    # the shrink bounds of both isodoses; D2cm = f(R + 20 mm) = Rx (1 − 20/(2A)) = 7.5 Gy
    # (37.5 % of Rx); the lattice shell is within one step (1 mm, 0.625 Gy) of 20 mm.
    tv, _ = _stack_truth()
    v = single.values
    v50_lo, v50_hi = _ball(_shrink(R + A)) * 0.999, _ball(R + A) * 1.001
    piv_lo, piv_hi = _ball(_shrink(R)) * 0.999, _ball(R) * 1.001
    assert ((R + A) / R) ** 3 == pytest.approx(_ball(R + A) / _ball(R))
    assert v50_lo <= v["V50%[cc]"] <= v50_hi
    assert v50_lo / piv_hi <= v["GI"] <= v50_hi / piv_lo
    assert v50_lo / tv <= v["R50%"] <= v50_hi / tv
    expected = RX * (1 - 20.0 / (2 * A))
    assert abs(v["D2cm[Gy]"] - expected) <= RX / (2 * A) * 1.0
    assert v["D2cm[%]"] == pytest.approx(100 * v["D2cm[Gy]"] / RX)
    assert single.bridged_with == () and single.shares_dose_with == ()


def test_homogeneity_index_from_the_target_dvh(single):
    # HI = (D2% − D98%)/D50% (ICRU 83) of f inside the ball: f is linear in r and the
    # hottest p % of the volume is the ball of radius ρ = R (p/100)^(1/3), so
    # D_p% = f(R (p/100)^(1/3)) (the stack and the trilinear grid: 0.01 allowed)
    def d(p):
        return RX * (1 - (R * (p / 100) ** (1 / 3) - R) / (2 * A))
    assert single.values["HI"] == pytest.approx((d(2) - d(98)) / d(50), abs=0.01)


def test_far_apart_lesions_equal_their_single_lesion_runs():
    # two lesions 150 mm apart on one dose: each is analysed on the lattice of its own
    # box, so every index equals the run of that lesion alone on the same dose
    both = _case([0.0, 150.0], x_hi=200.0)
    pair = quality_indices(both)
    for k, q in enumerate(pair):
        alone = quality_indices([both[k]])[0]
        assert q.values == pytest.approx(alone.values, rel=1e-12, nan_ok=True)
        assert q.bridged_with == ()
        assert q.shares_dose_with == (both[1 - k].lesion_id,)


def test_touching_lesions_split_the_isodose_volumes():
    # centres 22 mm apart (gap 2 mm between the PTVs): the prescription isodose is two
    # disjoint balls; the 50 % isodose is the union of two balls of radius ρ = 26 mm at
    # distance d = 22: 2 · 4/3 π ρ³ − π (4ρ + d)(2ρ − d)² / 12 (the lens).
    # The attributed volumes must sum to the whole isodose volume of the box (no partition)
    # within 0.1 %, and that to the closed form within the shrink bound.
    items = _case([-11.0, 11.0])
    pair = quality_indices(items)
    lo = np.array([-11.0 - R - 30, -R - 30, -R - 30])
    hi = np.array([11.0 + R + 30, R + 30, R + 30])
    whole50 = isodose_volume_cc(items[0].dose, 0.5 * RX, lo, hi)
    whole100 = isodose_volume_cc(items[0].dose, RX, lo, hi)
    assert sum(q.values["V50%[cc]"] for q in pair) == pytest.approx(whole50, rel=1e-3)
    assert sum(q.values["PIV[cc]"] for q in pair) == pytest.approx(whole100, rel=1e-3)

    def union(rho, d=22.0):
        return 2 * _ball(rho) - math.pi * (4 * rho + d) * (2 * rho - d) ** 2 / 12 / 1000

    assert union(_shrink(R + A)) * 0.999 <= whole50 <= union(R + A) * 1.001
    assert 2 * _ball(_shrink(R)) * 0.999 <= whole100 <= 2 * _ball(R) * 1.001
    # symmetric geometry: each lesion gets half (nearest-target partition)
    assert pair[0].values["V50%[cc]"] == pytest.approx(pair[1].values["V50%[cc]"], rel=1e-3)
    assert pair[0].bridged_with == ("L2",) and pair[1].bridged_with == ("L1",)
    assert "bridging" in quality_text(pair)


def test_near_lesions_with_separate_50_percent_islands_are_not_bridged():
    # centres 60 mm apart: analysed on one lattice (boxes ±40 mm overlap), 50 % isodose
    # balls of radius 26 mm 8 mm apart: two islands, no bridging; each lesion's volumes are
    # its own ball's (the partition plane x = 30 mm lies outside both isodoses), so they
    # equal the single-lesion figures within the lattice's rounding
    pair = quality_indices(_case([-30.0, 30.0], x_lo=-80.0, x_hi=80.0))
    alone = quality_indices(_case([0.0]))[0]
    for q in pair:
        assert q.bridged_with == () and "bridging" not in " ".join(q.notes)
        for key in ("PIV[cc]", "V50%[cc]", "CI_Paddick", "GI"):
            assert q.values[key] == pytest.approx(alone.values[key], rel=2e-3)


def test_isodose_cut_by_the_dose_grid_is_not_evaluable():
    # the same pair on a dose grid ending at x = ±50 mm: each 50 % ball reaches x = ±56 mm,
    # beyond the grid, so V50 (and GI, R50%) cannot be integrated and say why
    for q in quality_indices(_case([-30.0, 30.0])):
        assert math.isnan(q.values["V50%[cc]"]) and math.isnan(q.values["GI"])
        assert any("dose grid edge" in n for n in q.notes)
        assert not math.isnan(q.values["CI_Paddick"])
