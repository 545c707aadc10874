"""Contour distance behind the 'central lung' site (2 cm of the mediastinum, SABR-COMET).

Expected values are analytical: two circles of radius r whose centres lie d apart on one
plane are d - 2r apart at the points facing each other (both are contour vertices here);
with planes offset by dz the closest points are sqrt((d - 2r)^2 + dz^2) apart.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtplan_assist.evaluation.lesions import min_distance_mm
from rtplan_assist.model import Structure


def _cylinder(name: str, cx: float, z_planes, radius: float = 10.0, n: int = 1000) -> Structure:
    angles = 2.0 * np.pi * np.arange(n) / n  # k = 0 at angle 0, k = n/2 at angle pi
    ring = np.column_stack([cx + radius * np.cos(angles), radius * np.sin(angles)])
    z = np.asarray(z_planes, dtype=float)
    return Structure(1, name, "ORGAN", z, [[ring.copy()] for _ in z], slice_thickness_mm=2.0)


@pytest.mark.parametrize(
    "b_centre, b_planes, expected",
    [
        (30.0, [0, 2, 4, 6, 8], 10.0),  # same planes: 30 - 2 x 10
        (30.0, [3, 5, 7, 9, 11], math.sqrt(10.0**2 + 1.0**2)),  # planes 1 mm apart
        (-26.0, [0, 2, 4, 6, 8], 6.0),  # the other side, 5000 points each (all kept)
    ],
)
def test_min_distance_between_circles_is_analytical(b_centre, b_planes, expected):
    a = _cylinder("A", 0.0, [0, 2, 4, 6, 8])
    b = _cylinder("B", b_centre, b_planes)
    assert min_distance_mm(a, b) == pytest.approx(expected, rel=1e-12)
    assert min_distance_mm(b, a) == pytest.approx(expected, rel=1e-12)


def test_min_distance_far_apart_and_empty():
    a = _cylinder("A", 0.0, [0, 2])
    far = _cylinder("far", 100.0, [0, 2])  # 80 mm gap: beyond 2 cm, the box gap says so
    assert min_distance_mm(a, far) == pytest.approx(80.0, rel=1e-12)
    empty = Structure(2, "E", "ORGAN", np.zeros(0), [])
    assert min_distance_mm(a, empty) == math.inf
