"""Occupancy kernel against hand geometry."""

from __future__ import annotations

import numpy as np
import pytest

from analytic import ngon_area, sphere_stack
from rtplan_assist.model import Grid, Structure
from rtplan_assist.structures import occupancy


def test_square_aligned_to_voxel_edges_is_exact():
    """A 5 × 5 × 6 mm box whose faces lie on voxel edges of a 1 mm grid with voxel centres
    at integers: 150 voxels fully inside (occupancy 1), none partial."""
    sq = np.array([[-0.5, -0.5], [4.5, -0.5], [4.5, 4.5], [-0.5, 4.5]])
    z = np.array([1.5, 3.5, 5.5])  # slabs [0.5, 6.5]: voxel layers 1..6
    box = Structure(1, "Box", "ORGAN", z, [[sq] for _ in z], slice_thickness_mm=2.0)
    grid = Grid.uniform([-3, -3, -3], [1, 1, 1], (12, 12, 12))
    mask = occupancy(box, grid)
    full = mask.full()
    assert full.sum() == pytest.approx(150.0, abs=1e-9)
    assert np.count_nonzero(full > 1e-12) == 150
    assert mask.volume_cc == pytest.approx(0.150, rel=1e-12)


def test_half_voxel_overlap():
    """A square covering half of each voxel of one column in x: occupancy 0.5 there."""
    sq = np.array([[0.0, -0.5], [0.5, -0.5], [0.5, 0.5], [0.0, 0.5]])
    one = Structure(1, "Strip", "ORGAN", np.array([0.0]), [[sq]], slice_thickness_mm=1.0)
    grid = Grid.uniform([-2, -2, -2], [1, 1, 1], (5, 5, 5))
    full = occupancy(one, grid).full()
    assert full[2, 2, 2] == pytest.approx(0.5, abs=1e-12)
    assert full.sum() == pytest.approx(0.5, abs=1e-12)


def test_sphere_volume_and_outside():
    """Occupancy sums to the contour-stack volume (Σ n-gon area × spacing) inside the grid;
    a grid cut at the centre leaves half of it outside."""
    s, z, radii = sphere_stack(8.0, 2.0)
    expected = sum(ngon_area(r) for r in radii) * 2.0 / 1000
    grid = Grid.uniform([-12, -12, -12], [2.5, 2.5, 2.5], (11, 11, 11))
    assert occupancy(s, grid).volume_cc == pytest.approx(expected, rel=2e-3)
    half = Grid.uniform([-12, -12, 1.25], [2.5, 2.5, 2.5], (6, 11, 11))  # z edge at 0
    mask = occupancy(s, half)
    assert mask.volume_cc + mask.outside_cc == pytest.approx(expected, rel=2e-3)
    assert mask.outside_cc == pytest.approx(expected / 2, rel=5e-3)
