"""Reading DICOM: load_case of the demo thorax through the fast path and through pydicom.

Prints, for ``load_case([RS.dcm, RD.L1.dcm])`` and ``load_case(demo folder)`` (warm page
cache, one process, the two paths alternating): median wall and CPU time of the fast path
(``rtplan_assist/dicom/_raw.py``, what ``load_case`` runs) and of the pydicom path it falls
back to (``_load_case(..., fast=False)``, what ``load_case`` ran before); then the import time
of ``rtplan_assist.dicom`` in a new interpreter and whether it imported pydicom, and the same
for ``import pydicom``. Figures only; nothing is asserted (tests/test_dicom_raw.py checks that
both paths give the same case).

    .venv/bin/python benches/bench_dicom.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from rtplan_assist.demo import demo_case_folder
from rtplan_assist.dicom._index import input_paths
from rtplan_assist.dicom.case import _load_case


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _import_time(module: str) -> tuple[float, bool]:
    code = (f"import sys, time; t = time.perf_counter(); import {module}; "
            "print(time.perf_counter() - t, 'pydicom' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), out[1] == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    folder = demo_case_folder()
    inputs = {"RS + RD.L1": [folder / "RS.dcm", folder / "RD.L1.dcm"], "demo folder": folder}
    with open("/proc/loadavg") as fh:
        print(f"load average: {' '.join(fh.read().split()[:3])}")
    for label, inp in inputs.items():
        root, paths = input_paths(inp)
        results = {True: [], False: []}
        for fast in (True, False):  # warm-up: page cache, numpy, pydicom imported
            _load_case(root, paths, None, False, fast=fast)
        for _ in range(args.runs):
            for fast in (True, False):
                results[fast].append(
                    _timed(lambda f=fast: _load_case(root, paths, None, False, fast=f)))
        for fast, name in ((True, "fast path"), (False, "pydicom path")):
            wall = statistics.median(w for w, _ in results[fast])
            cpu = statistics.median(c for _, c in results[fast])
            print(f"load_case({label}) {name:13s}: wall {wall:.3f} s, CPU {cpu:.3f} s "
                  f"(median of {args.runs})")
    for module in ("rtplan_assist.dicom", "pydicom"):
        runs = [_import_time(module) for _ in range(3)]
        print(f"import {module}: {statistics.median(t for t, _ in runs):.3f} s, "
              f"pydicom imported: {runs[0][1]}")


if __name__ == "__main__":
    main()
