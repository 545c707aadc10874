"""End-cap conventions (issue 11): ``half`` (Nelms et al. 2015's analytical values and most
TPSs) and ``none`` (Eclipse; named in Nelms' ReadMeFirst). Truth by hand: a cylinder of
regular 720-gons (area n/2 r² sin(2π/n)) contoured every s mm from z0 to z1 spans
[z0 − s/2, z1 + s/2] with half caps and [z0, z1] without; in a dose linear in z the extremes
are the dose at those ends."""

from __future__ import annotations

import numpy as np
import pytest

from analytic import circle, cube_grid, linear_dose, ngon_area
from rtplan_assist.dvh import compute_dvh
from rtplan_assist.errors import GeometryError
from rtplan_assist.geometry import slab_limits
from rtplan_assist.model import Structure


def test_slab_limits_without_end_caps_stop_at_each_run_of_planes():
    # two runs (a gap of 10 mm > 1.5 × 2 mm) and a lone plane
    z = np.array([0.0, 2.0, 4.0, 14.0, 16.0, 30.0])
    lo, hi = slab_limits(z, 2.0, "none")
    np.testing.assert_allclose(lo, [0.0, 1.0, 3.0, 14.0, 15.0, 29.0])
    np.testing.assert_allclose(hi, [1.0, 3.0, 4.0, 15.0, 16.0, 31.0])  # lone plane: own slab
    lo, hi = slab_limits(z, 2.0, "half")
    np.testing.assert_allclose(lo, [-1.0, 1.0, 3.0, 13.0, 15.0, 29.0])
    np.testing.assert_allclose(hi, [1.0, 3.0, 5.0, 15.0, 17.0, 31.0])
    with pytest.raises(GeometryError):
        slab_limits(z, 2.0, "rounded")


@pytest.mark.parametrize("caps,z_lo,z_hi", [("half", -11.0, 11.0), ("none", -10.0, 10.0)])
def test_cylinder_volume_and_extremes_follow_the_end_caps(caps, z_lo, z_hi):
    r, s = 8.0, 2.0
    planes = np.arange(-10.0, 10.0 + 1e-9, s)
    cyl = Structure(1, "Cyl", "ORGAN", planes, [[circle(0.0, 0.0, r)] for _ in planes],
                    slice_thickness_mm=s)
    dose = linear_dose(cube_grid(20.0, 2.0, offset=(0.3, -0.2, 0.1)), 30.0, gz=1.0)
    h = compute_dvh(cyl, dose, end_caps=caps)
    assert h.end_caps == caps
    assert h.volume_cc == pytest.approx(ngon_area(r) * (z_hi - z_lo) / 1000, rel=1e-9)
    assert h.dvh_volume_cc == pytest.approx(h.volume_cc, rel=1e-6)
    # dose 30 + z Gy (exact under trilinear interpolation): extremes at the ends, mean mid-way
    assert h.dmax_gy == pytest.approx(30.0 + z_hi, abs=1e-6)
    assert h.dmin_gy == pytest.approx(30.0 + z_lo, abs=1e-6)
    assert h.dmean_gy == pytest.approx(30.0, abs=1e-3)
