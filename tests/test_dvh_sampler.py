"""Recorded DVH samples (``DVHSampler``, the composite path of the evaluation) and the
voxel-wise EQD2 sum over a box (``kernels/eqd2.add_eqd2_box``).

Expected values: closed forms (EQD2 = D (D/n + α/β) / (2 + α/β); volumes of boxes), and, for
the replay, the kernel pass it replays (same samples and arithmetic, so the same curve).
"""

from __future__ import annotations

import numpy as np
import pytest

from analytic import cube_grid, linear_dose, sphere_stack
from rtplan_assist.dvh import DVHSampler, compute_dvh
from rtplan_assist.errors import GeometryError
from rtplan_assist.kernels.eqd2 import add_eqd2_box, voxel_runs
from rtplan_assist.model import Dose, Grid, Structure


def test_replay_gives_the_kernel_curve_on_any_field():
    """A non-linear field (the DVH of x² + y z on a sphere): the replayed curve is the one the
    kernel computes, bin for bin, and Dmin/Dmax/mean agree to rounding."""
    structure, _, _ = sphere_stack(9.0, 2.0, phase=0.3)
    grid = cube_grid(15.0, 2.5, offset=(0.37, -0.21, 0.13))
    z, y, x = np.meshgrid(grid.z_mm, grid.y_mm, grid.x_mm, indexing="ij")
    values = 30.0 + 0.1 * x**2 + 0.05 * y * z
    sampler = DVHSampler(structure, grid, label="field")
    # the replay reads the voxels of its support only and bins up to their maximum; the
    # kernel on the field with zeros elsewhere bins the same way
    inside = np.zeros_like(values)
    inside.reshape(-1)[sampler.support] = values.reshape(-1)[sampler.support]
    kernel = compute_dvh(structure, Dose("field", "field", "FOR", grid, inside), refine=False)
    replay = sampler.dvh(values)
    np.testing.assert_array_equal(replay.dose_gy, kernel.dose_gy)
    np.testing.assert_array_equal(replay.volume_cc_at_dose, kernel.volume_cc_at_dose)
    assert (replay.dmin_gy, replay.dmax_gy) == (kernel.dmin_gy, kernel.dmax_gy)
    assert replay.dmean_gy == pytest.approx(kernel.dmean_gy, rel=1e-12)
    np.testing.assert_array_equal(sampler.dvh(inside).volume_cc_at_dose,
                                  replay.volume_cc_at_dose)
    assert sampler.support.size < values.size and sampler.nbytes > 0
    # and the field's own DVH (binned to the field's maximum) agrees within a bin
    own = compute_dvh(structure, Dose("field", "field", "FOR", grid, values))
    for metric in ("D95%[Gy]", "D50%[Gy]", "D2%[Gy]", "Mean[Gy]", "Max[Gy]"):
        assert replay.metric(metric).value == pytest.approx(own.metric(metric).value,
                                                            abs=2 * values.max() / 8192)


def test_replay_keeps_outside_volume_and_rejects_bad_arrays():
    """Half of a 20 mm cube lies beyond the grid's x edge (+21 mm): 4 of its 8 cc outside."""
    grid = Grid.uniform([-20, -20, -20], [2.0, 2.0, 2.0], (21, 21, 21))
    sq = np.array([[11.0, -10.0], [31.0, -10.0], [31.0, 10.0], [11.0, 10.0]])
    z = np.arange(-9.0, 10.0, 2.0)
    cube = Structure(3, "Cube", "ORGAN", z, [[sq] for _ in z], slice_thickness_mm=2.0)
    sampler = DVHSampler(cube, grid, label="grid")
    dvh = sampler.dvh(linear_dose(grid, 10.0).dose_gy)
    assert dvh.outside_cc == pytest.approx(4.0, rel=1e-6)
    assert dvh.dvh_volume_cc == pytest.approx(4.0, rel=1e-6)
    assert dvh.dmean_gy == pytest.approx(10.0, rel=1e-9)
    with pytest.raises(GeometryError, match="shape"):
        sampler.dvh(np.zeros((2, 2, 2)))
    bad = np.full(grid.shape, 10.0)
    bad.reshape(-1)[sampler.support[0]] = np.nan
    with pytest.raises(GeometryError, match="non-finite"):
        sampler.dvh(bad)


def eqd2(total: float, n: int, ab: float) -> float:
    return total * (total / n + ab) / (2 + ab)


def test_eqd2_box_sum_matches_hand_values():
    """Two plans on a 4×5×6 grid, summed on the box [1:3, 2:5, 1:4]:
    plan A 12 Gy planned, scaled ×2 → 24 Gy in 3 fx at α/β 3: 24 (8 + 3) / 5 = 52.8 Gy;
    plan B 10 Gy, ×1, in 5 fx: 10 (2 + 3) / 5 = 10 Gy; sum 62.8 Gy EQD2 in every box voxel."""
    a = np.full((4, 5, 6), 12.0, dtype=np.float32)
    b = np.full((4, 5, 6), 10.0)
    total = np.zeros((2, 3, 3))
    add_eqd2_box(total, a, (1, 2, 1), 2.0, 3, 3.0)
    add_eqd2_box(total, b, (1, 2, 1), 1.0, 5, 3.0)
    assert eqd2(24, 3, 3) == pytest.approx(52.8) and eqd2(10, 5, 3) == pytest.approx(10.0)
    np.testing.assert_allclose(total, 62.8, rtol=1e-12)
    # the box reads its own voxels of the plan: a gradient along x shows the offset
    ramp = np.broadcast_to(np.arange(6, dtype=np.float64), (4, 5, 6)).copy()
    part = np.zeros((2, 3, 3))
    add_eqd2_box(part, ramp, (1, 2, 1), 1.0, 1, 2.0)
    np.testing.assert_allclose(part[0, 0], [eqd2(d, 1, 2.0) for d in (1.0, 2.0, 3.0)])


def test_eqd2_box_runs_touch_only_their_voxels():
    total = np.zeros((2, 3, 4))
    indices = np.array([1, 2, 3, 4, 9, 23])  # x row breaks at 4; a gap; the last voxel
    starts, lengths = voxel_runs(indices, total.shape)
    assert starts.tolist() == [1, 4, 9, 23] and lengths.tolist() == [3, 1, 1, 1]
    add_eqd2_box(total, np.full((2, 3, 4), 6.0), (0, 0, 0), 1.0, 2, 3.0,
                 runs=(starts, lengths))
    expected = np.zeros(24)
    expected[indices] = eqd2(6.0, 2, 3.0)  # 6 (3 + 3) / 5 = 7.2 Gy
    np.testing.assert_allclose(total.reshape(-1), expected)
    with pytest.raises(ValueError, match="does not lie inside"):
        add_eqd2_box(total, np.ones((2, 3, 4)), (1, 0, 0), 1.0, 2, 3.0)
    with pytest.raises(ValueError, match="x row"):
        add_eqd2_box(total, np.ones((2, 3, 4)), (0, 0, 0), 1.0, 2, 3.0,
                     runs=(np.array([3]), np.array([2])))
