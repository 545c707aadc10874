"""Start-up (issue 15): a command imports only what it runs. Checked on the modules a fresh
process has loaded, not on timings (those are in benches/bench_startup.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, sys
from rtplan_assist.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
loaded = {m.split('.')[0] for m, mod in list(sys.modules.items())
          if type(mod).__name__ != "_DeferredModule"}  # registered, not run (cli._defer_requests)
print(json.dumps(sorted(loaded)), file=sys.stderr)
"""


def _top_level_imports(*argv: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                         timeout=120)
    return set(json.loads(out.stderr.strip().splitlines()[-1]))


def test_help_imports_no_numeric_or_web_stack():
    loaded = _top_level_imports("--help")
    assert not loaded & {"numpy", "numba", "scipy", "pydicom", "dash", "flask", "plotly",
                         "matplotlib", "sqlalchemy", "requests"}


def test_bed_imports_numpy_only():
    loaded = _top_level_imports("bed", "54", "3", "--alpha-beta", "10")
    assert "numpy" in loaded
    assert not loaded & {"numba", "scipy", "pydicom", "dash", "flask", "plotly", "matplotlib",
                         "sqlalchemy", "requests"}


def test_dvh_outside_choices_match_the_engine():
    # cli_dvh spells the choices out so that --help does not load the DVH engine
    from rtplan_assist.cli import build_parser
    from rtplan_assist.dvh import OUTSIDE_POLICIES

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    outside = next(a for a in sub.choices["dvh"]._actions if a.dest == "outside")
    assert tuple(outside.choices) == OUTSIDE_POLICIES


def test_pydicom_does_not_load_requests_until_it_is_used():
    probe = """
import sys
from rtplan_assist.cli import _defer_requests
_defer_requests()
import pydicom.data.download as dl  # imports requests for pydicom's test-file downloads
assert dl.HAVE_REQUESTS, "pydicom must still see requests as available"
assert "urllib3" not in sys.modules, "requests ran at import"
import requests
from requests.adapters import HTTPAdapter
assert callable(requests.get) and requests.Session and HTTPAdapter
assert type(sys.modules["requests"]).__name__ == "module"  # an ordinary module once used
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_a_dvh_loads_the_kernels_without_scipy_linalg():
    # On the JIT (forced here; the ahead-of-time build imports no Numba at all):
    # Numba's BLAS probe would import scipy.linalg (0.2 s) on the first kernel load; no kernel
    # uses BLAS (kernels/_jit.py). The DVH still comes out (a real kernel call).
    probe = """
import sys
import numpy as np
from rtplan_assist.kernels.dvh import Refinement, dvh_accumulate
z = np.array([-1.0, 1.0]); sq = np.array([[-2.0, -2.0], [2.0, -2.0], [2.0, 2.0], [-2.0, 2.0]])
cdf, stats = dvh_accumulate(
    np.array([-1.0]), np.array([1.0]), np.array([0, 1]), np.array([0, 4]),
    sq[:, 0].copy(), sq[:, 1].copy(), np.ones((3, 5, 5)), np.array([-2.0, -2.0, -1.0]),
    np.array([1.0, 1.0, 1.0]), np.array([-1.0, 0.0, 1.0]),
    np.array([[-2.5, 2.5], [-2.5, 2.5], [-1.5, 1.5]]), 0.5, 0.01, 200, None)
import numba.np.arraymath as am  # imported by the JIT's first cache load, probe answered
print(round(stats[0], 6), "scipy.linalg" in sys.modules, am._HAVE_BLAS)
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, RTPLAN_ASSIST_KERNELS="jit"))
    # a 4 x 4 mm square over 2 mm of slab: 32 mm^3 (the kernel tallies mm^3)
    assert out.stdout.split() == ["32.0", "False", "False"], out.stderr
