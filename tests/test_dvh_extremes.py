"""Exact extremes and the hot tail of large structures (issue 11).

A one-voxel hot spot inside structures from ~200 cc to ~8 L. Closed form: the dose grid
holds B everywhere except one node at B + A; trilinear interpolation makes that a *tent*,
f = B + A·φx·φy·φz with hat functions φ (1 at the node, 0 one spacing away). So
Dmax = B + A (the node lies inside the structure). Along one axis the set {φ ≥ a} has length
2Δ(1 − a), so φ is uniformly distributed on [0, 1] over the 2Δ support, and over the support
box (8 voxels) the three hats are independent uniforms U1, U2, U3. Hence the volume receiving
at least B + A·s is V(s) = 8·Δx·Δy·Δz·P(U1U2U3 ≥ s) = 8·Δx·Δy·Δz·[1 − s(1 − ln s + ln²s / 2)]
(the distribution of a product of uniforms: P(ΠUi ≤ s) = s·Σ_{k<n} (−ln s)^k / k!), and
D_v = B + A·s(v) with s(v) the root of V(s) = v (one bisection of a closed-form function).
The part of the structure outside the tent is at exactly B, below every D_v with v inside
the tent. Tolerances: issue 11 (Dmax 0.5 %, D0.03cc max(0.5 %, 0.05 Gy)).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytic import invert
from rtplan_assist.dvh import compute_dvh, compute_dvhs
from rtplan_assist.model import Dose, Grid, Structure

B, A = 40.0, 20.0


def tent_volume_mm3(s: float, voxel_mm3: float) -> float:
    if s <= 0:
        return 8 * voxel_mm3
    if s >= 1:
        return 0.0
    ln = math.log(s)
    return 8 * voxel_mm3 * (1 - s * (1 - ln + ln * ln / 2))


def box(name, x0, x1, y0, y1, z_planes, spacing):
    square = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)
    return Structure(1, name, "ORGAN", np.asarray(z_planes, float), [[square] for _ in z_planes],
                     slice_thickness_mm=spacing)


@pytest.mark.parametrize("side_mm", [60.0, 100.0, 150.0, 200.0])  # 0.2, 1.0, 3.4, 8.0 L
def test_one_voxel_hot_spot_in_a_large_structure(side_mm):
    d = 2.5  # dose grid mm; contours every 2.5 mm on planes between dose planes
    n = int(side_mm / d) + 7
    grid = Grid.uniform([-(n // 2) * d] * 3, [d, d, d], (n, n, n))
    values = np.full(grid.shape, B, dtype=np.float32)
    # a hot node off-centre, not on a contour plane
    k, j, i = n // 2 + 3, n // 2 - 5, n // 2 + 7
    values[k, j, i] = B + A
    dose = Dose("hot", "1.2.3", "", grid, values)
    half = side_mm / 2
    planes = np.arange(-half + 1.25 + 0.4, half - 1.0, 2.5)  # phase 0.4 mm off the dose planes
    s = box("Box", -half, half, -half + 0.3, half + 0.3, planes, 2.5)
    h = compute_dvh(s, dose)
    voxel = d ** 3
    assert h.dmax_gy == pytest.approx(B + A, rel=5e-3)
    assert abs(h.dmax_gy - (B + A)) < 1e-4  # exact: the node's own value
    assert h.dmin_gy == pytest.approx(B, abs=1e-6)
    for v_mm3 in (30.0, 10.0, 60.0):
        s_v = invert(lambda dd: tent_volume_mm3((dd - B) / A, voxel) / 1000.0, v_mm3 / 1000.0,
                     B, B + A)
        got = h.metric(f"D{v_mm3 / 1000:g}cc[Gy]").value
        assert abs(got - s_v) <= max(0.005 * s_v, 0.05), (side_mm, v_mm3, got, s_v)


@pytest.fixture(scope="module")
def demo_case():
    from rtplan_assist.demo import demo_case_folder
    from rtplan_assist.dicom import load_case

    return load_case(demo_case_folder())


def test_dmax_of_a_structure_is_never_below_that_of_a_structure_inside_it(demo_case):
    """Nesting on the demo patient: Dmax(outer) >= Dmax(inner) for every pair where the inner
    structure lies inside the outer one (External contains everything; Lungs contain
    Lung_L/Lung_R; PTVs contain their GTVs): the extremes are exact over each solid."""
    case = demo_case
    dose = case.doses[0]
    by = {s.name: s for s in case.structures}
    dvhs = compute_dvhs([s for s in case.structures if not s.is_empty], dose)
    pairs = [("External", n) for n in dvhs if n != "External"]
    pairs += [("Lungs", "Lung_L"), ("Lungs", "Lung_R")]
    pairs += [(f"PTV_{i}", f"GTV_{i}") for i in range(1, 6) if f"GTV_{i}" in by]
    for outer, inner in pairs:
        assert dvhs[outer].dmax_gy >= dvhs[inner].dmax_gy - 1e-6, (outer, inner)
        assert dvhs[outer].dmin_gy <= dvhs[inner].dmin_gy + 1e-6 or outer == "External", (
            outer, inner)
