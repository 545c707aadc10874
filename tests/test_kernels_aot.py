"""The kernels' ahead-of-time build (kernels/_jit.py, built by ``python -m
rtplan_assist.precompile`` from scripts/setup.sh) against Numba's JIT of the same source.

Expected values: the JIT's, bit for bit. The JIT is the engine the accuracy suites validated
against analytical values (Nelms 2015 and the synthetic suites); the build compiles the same
functions with the same compiler, so any difference at all is a build fault. The accuracy
suites themselves then run on the build (it is what a command uses once set up).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rtplan_assist.kernels import _jit


@pytest.fixture(scope="module")
def demo_folder():
    from rtplan_assist.demo import demo_case_folder

    return demo_case_folder()


@pytest.fixture(scope="module")
def demo_case(demo_folder):
    from rtplan_assist.dicom import load_case

    return load_case([demo_folder / "RS.dcm", demo_folder / "RD.L1.dcm"])


def _require_build():
    # the README's test command (scripts/test.sh) runs scripts/setup.sh, which builds it; a
    # missing or stale build is a set-up fault to report, not a test to leave out
    status = _jit.aot_status()
    if not status.startswith("ahead-of-time build"):
        pytest.fail(f"{status}: scripts/setup.sh builds the kernels ahead of time")


def _capture(kernel_obj, monkeypatch, module, name):
    """Record the arguments of every call of one kernel made through its module global."""
    calls = []

    def spy(*args):
        calls.append(args)
        return kernel_obj(*args)

    monkeypatch.setattr(module, name, spy)
    return calls


def test_dvh_kernels_of_the_demo_are_bit_identical_to_the_jit(demo_case, monkeypatch):
    # every structure of the demo on the float32 RTDOSE and on the same dose in float64
    _require_build()
    from rtplan_assist.dvh import compute_dvhs
    from rtplan_assist.kernels import dvh as kd

    acc = kd._dvh_accumulate
    calls = _capture(acc, monkeypatch, kd, "_dvh_accumulate")
    dose = demo_case.doses[0]
    compute_dvhs(list(demo_case.structures), dose, workers=1)
    compute_dvhs(list(demo_case.structures), dose, workers=1,
                 dose_array=dose.dose_gy.astype(np.float64))
    assert len(calls) >= 2 * 20
    table = _jit._load_aot()[0]["dvh._dvh_accumulate"]
    for args in calls:
        built = table[_jit.signature_key(args)]  # the demo's signatures are in the build
        a_cdf, a_stats = built(*args)
        j_cdf, j_stats = acc.jit(*args)
        assert a_cdf.tobytes() == j_cdf.tobytes()
        assert a_stats.tobytes() == j_stats.tobytes()


def test_voxel_bed_and_resampling_are_bit_identical_to_the_jit(demo_case):
    _require_build()
    from rtplan_assist.kernels import eqd2, resample

    dose = np.ascontiguousarray(demo_case.doses[0].dose_gy, dtype=np.float64).ravel()
    table = _jit._load_aot()[0]
    for transition in (None, 6.0):  # LQ and LQ-L
        out = np.empty_like(dose)
        if transition is None:
            args = (dose, 5.0, 3.0, 1.0, out)
            kernel = eqd2._scaled_bed_lq
        else:
            args = (dose, 5.0, 3.0, transition, 1.0, out)
            kernel = eqd2._scaled_bed_lql
        table[kernel.name][_jit.signature_key(args)](*args)
        built = out.copy()
        kernel.jit(*args)
        assert built.tobytes() == out.tobytes()
    grid = demo_case.doses[0].grid
    axes = (grid.z_mm, grid.y_mm, grid.x_mm)
    half = tuple((float(s) / 2, float(s) / 2) for s in grid.spacing[::-1])
    values = demo_case.doses[0].dose_gy
    shifted = tuple(a + 1.0 for a in axes)
    aot_out, aot_outside = resample.resample_trilinear(values, axes, half, shifted)
    real = resample._resample
    try:
        resample._resample = real.jit
        jit_out, jit_outside = resample.resample_trilinear(values, axes, half, shifted)
    finally:
        resample._resample = real
    assert aot_out.tobytes() == jit_out.tobytes()
    assert np.array_equal(aot_outside, jit_outside)


def test_a_signature_the_build_lacks_runs_on_the_jit_with_the_same_result():
    # a Fortran-ordered dose has another Numba signature than the C-ordered one the build has;
    # the call must still be answered (by the JIT), with the same CDF
    _require_build()
    from rtplan_assist.kernels.dvh import dvh_accumulate

    sq = np.array([[-2.0, -2.0], [2.0, -2.0], [2.0, 2.0], [-2.0, 2.0]])
    dose = np.linspace(0.0, 3.0, 3 * 5 * 5).reshape(3, 5, 5)
    common = (np.array([-1.0]), np.array([1.0]), np.array([0, 1]), np.array([0, 4]),
              sq[:, 0].copy(), sq[:, 1].copy())
    geometry = (np.array([-2.0, -2.0, -1.0]), np.array([1.0, 1.0, 1.0]),
                np.array([-1.0, 0.0, 1.0]), np.array([[-2.5, 2.5], [-2.5, 2.5], [-1.5, 1.5]]),
                0.5, 0.01, 400, None)
    c_cdf, c_stats = dvh_accumulate(*common, dose, *geometry)
    f_cdf, f_stats = dvh_accumulate(*common, np.asfortranarray(dose), *geometry)
    # the wrapper makes the array C-contiguous, so both go through one signature: same bits
    assert c_cdf.tobytes() == f_cdf.tobytes() and c_stats.tobytes() == f_stats.tobytes()
    # the inside volume: a 4 x 4 mm square over 2 mm of slab is 32 mm^3 (analytical)
    assert c_stats[0] == pytest.approx(32.0, rel=1e-12)


def test_signature_keys_tell_apart_what_numba_tells_apart():
    key = _jit.signature_key
    a = np.zeros((2, 3))
    assert key((a,)) != key((a.astype(np.float32),))  # dtype
    assert key((a,)) != key((np.zeros((2, 3, 1)),))  # rank
    assert key((a,)) != key((a.T,))  # layout
    ro = a.copy()
    ro.flags.writeable = False
    assert key((a,)) == key((ro,))  # the build reads either (kernels/_jit.signature_key)
    assert key((1,)) != key((1.0,)) != key((True,))
    assert key((np.int32(1),)) != key((1,))
    assert key(((1, 2.0),)) != key(((1.0, 2.0),))
    assert key((object(),)) is None  # unknown: the JIT decides
    assert key((2**70,)) is None


def test_a_stale_build_is_not_used(monkeypatch):
    # a build of other kernel sources would run other code: it must not load
    _require_build()
    saved = dict(_jit._STATE)
    try:
        monkeypatch.setattr(_jit, "source_hash", lambda: "0" * 64)
        _jit._STATE.update(aot=None, aot_status=None)
        assert _jit.aot_status() == "JIT (the ahead-of-time build is stale: run scripts/setup.sh)"
        assert _jit._load_aot() is None
    finally:
        _jit._STATE.update(saved)


def test_dvh_and_evaluate_with_the_build_do_not_import_numba(demo_folder, tmp_path):
    _require_build()
    probe = """
import sys
from rtplan_assist.cli import main
code = main(sys.argv[1:])
print(code, "numba" in sys.modules, "llvmlite" in sys.modules)
"""
    out = tmp_path / "dvh.json"
    run = subprocess.run(
        [sys.executable, "-c", probe, "dvh", str(demo_folder / "RS.dcm"),
         str(demo_folder / "RD.L1.dcm"), "--structure", "Spinal Cord", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != _jit.ENV},
    )
    assert run.stdout.split() == ["0", "False", "False"], run.stderr
    cord = json.loads(out.read_text())["structures"][0]
    assert cord["name"] == "Spinal Cord" and cord["volume_cc"] > 0
    # evaluate too: every kernel signature of the demo patient is in the build (a signature
    # the build lacks, e.g. from a change in what the loader hands the kernels, would
    # silently cost the Numba import again)
    run = subprocess.run(
        [sys.executable, "-c", probe, "evaluate", str(demo_folder), "--format", "json",
         "--out", str(tmp_path / "evaluate.json")],
        capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != _jit.ENV},
    )
    assert run.stdout.split()[1:] == ["False", "False"], run.stderr


def test_the_jit_can_be_forced():
    probe = "from rtplan_assist.kernels._jit import aot_status; print(aot_status())"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, **{_jit.ENV: "jit"}))
    assert run.stdout.strip() == f"JIT ({_jit.ENV}=jit)", run.stderr


def test_a_read_only_total_is_refused_not_written():
    # the one kernel that writes into a caller's array (kernels/_jit.signature_key)
    from rtplan_assist.kernels.eqd2 import add_eqd2_box

    total = np.zeros((2, 2, 2))
    total.flags.writeable = False
    with pytest.raises(TypeError, match="writable"):
        add_eqd2_box(total, np.ones((2, 2, 2)), (0, 0, 0), 1.0, 1, 3.0)
    assert not total.any()
