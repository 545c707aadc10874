"""The DVH kernel is deterministic: no uninitialised memory, no state shared between runs.

Issue 11: ``RtCylinder_02_0`` (AntPost) came out NaN in one of two full-suite runs. Cause:
``kernels/dvh.py`` allocated its row node buffers with ``np.empty`` and, when a chord ended
exactly on a dose-grid column (contour vertices on grid nodes are the normal case), read the
next column's unwritten value with interpolation weight 0; ``0 * NaN`` is NaN whenever the
allocator handed back a block that held a NaN. The first test reproduces that on purpose by
leaving NaN-filled blocks in the allocator before the kernel runs (20/20 NaN before the fix).

``--dvh-stress ROUNDS`` runs the Nelms stress test longer (default 2 rounds).
"""

from __future__ import annotations

import csv
import math
import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numba import njit

from rtplan_assist.dicom import load_case
from rtplan_assist.dvh import compute_dvh
from rtplan_assist.model import Dose, Grid, Structure


@njit(cache=True)
def _leave_nan_blocks(n):
    """Allocate and free NaN-filled arrays of ``n`` float64: the next ``np.empty(n)`` in this
    thread usually gets one of these blocks back (glibc's per-thread cache is LIFO)."""
    a = np.full(n, np.nan)
    b = np.full(n, np.nan)
    c = np.full(n, np.nan)
    d = np.full(n, np.nan)
    e = np.full(n, np.nan)
    return a[0] + b[0] + c[0] + d[0] + e[0]


def test_chord_ending_on_a_dose_column_is_finite_under_a_poisoned_allocator():
    # a 10 x 10 mm square whose left and right edges lie on dose columns (x = -5, +5), in a
    # linear field: the mean over a prism of a linear field is its value at the centroid,
    # 10 Gy, and Dmin/Dmax are the values at the corners (closed form, no engine code)
    nx = 21
    grid = Grid.uniform((-10.0, -10.0, -10.0), (1.0, 1.0, 1.0), (21, 21, nx))
    x = grid.origin[0] + np.arange(nx) * grid.spacing[0]
    y = grid.origin[1] + np.arange(21) * grid.spacing[1]
    z = grid.z_mm
    field = 10.0 + 0.5 * x[None, None, :] + 0.2 * y[None, :, None] + 0.1 * z[:, None, None]
    dose = Dose("", "1.2.3", "", grid, field.astype(np.float32))
    square = np.array([[-5.0, -3.0], [5.0, -3.0], [5.0, 3.0], [-5.0, 3.0]])
    planes = np.arange(-4.0, 4.5, 1.0)
    s = Structure(1, "Box", "ORGAN", planes, [[square] for _ in planes], slice_thickness_mm=1.0)
    for _ in range(20):
        _leave_nan_blocks(nx)
        h = compute_dvh(s, dose)
        assert math.isfinite(h.dmean_gy) and np.all(np.isfinite(h.volume_cc_at_dose))
        assert abs(h.dmean_gy - 10.0) < 1e-4
        # box x in [-5, 5], y in [-3, 3], z in [-4.5, 4.5] (half-slice end caps)
        assert abs(h.dmax_gy - (10.0 + 2.5 + 0.6 + 0.45)) < 1e-4
        assert abs(h.dmin_gy - (10.0 - 2.5 - 0.6 - 0.45)) < 1e-4
        assert math.isfinite(h.metric("D95%[Gy]").value)


@pytest.fixture(scope="module")
def nelms_cases(shared_data):
    root = shared_data / "nelms-dvh"
    with open(root / "analytical.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["rtstruct"] and r["rtdose"]]
    cases = {}
    for r in rows:
        key = (r["rtstruct"], r["rtdose"])
        if key not in cases:
            case = load_case([root / r["rtstruct"], root / r["rtdose"]])
            shape = [s for s in case.structures
                     if not s.is_empty and not s.name.upper().startswith("POI")][0]
            cases[key] = (shape, case.doses[0])
    return cases


def _fingerprint(structure, dose):
    h = compute_dvh(structure, dose)
    values = (h.dmin_gy, h.dmean_gy, h.dmax_gy, h.dvh_volume_cc,
              *(h.metric(m).value for m in ("D99%[Gy]", "D95%[Gy]", "D5%[Gy]", "D1%[Gy]",
                                            "D0.03cc[Gy]")))
    return values, h.dose_gy.tobytes(), h.volume_cc_at_dose.tobytes()


def test_every_nelms_dvh_is_finite_and_identical_in_any_order_on_several_threads(
        nelms_cases, request):
    """Every Nelms row (data: Nelms et al., Med Phys 2015;42(8):4435-48) computed serially,
    then ROUNDS times more in random orders on 4 threads: every value finite and every run
    bit-identical to the serial one."""
    rounds = max(int(request.config.getoption("--dvh-stress")), 1)
    keys = list(nelms_cases)
    assert len(keys) == 90
    reference = {k: _fingerprint(*nelms_cases[k]) for k in keys}
    for k, (values, _, _) in reference.items():
        assert all(math.isfinite(v) for v in values), (k, values)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(rounds):
            order = keys[:]
            rng.shuffle(order)
            results = list(pool.map(lambda k: (k, _fingerprint(*nelms_cases[k])), order))
            for k, got in results:
                assert got == reference[k], (k, f"seed {seed}", got[0], reference[k][0])


def test_metric_of_an_overflowed_dvh_is_not_evaluable_without_a_runtime_warning():
    # a fuzz case (planned prescription 1e-300 Gy) scaled a DVH by ~1e302: every dose
    # became inf and D-metrics warned 'invalid value in scalar subtract' (dvh.py:130)
    import warnings

    grid = Grid.uniform((-10.0, -10.0, -10.0), (1.0, 1.0, 1.0), (21, 21, 21))
    dose = Dose("", "1.2.3", "", grid, np.full(grid.shape, 2.0, dtype=np.float32))
    square = np.array([[-5.0, -3.0], [5.0, -3.0], [5.0, 3.0], [-5.0, 3.0]])
    s = Structure(1, "Box", "ORGAN", np.array([0.0, 1.0]), [[square], [square]],
                  slice_thickness_mm=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = compute_dvh(s, dose).scaled(1e308)
        for m in ("D95%[Gy]", "D0.03cc[Gy]", "Max[Gy]", "V20Gy[%]"):
            mv = h.metric(m)
            assert math.isnan(mv.value) and "not finite" in mv.note, (m, mv)
