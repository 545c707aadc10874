"""DVH engine speed and memory (issue 2 budget: all DVHs of a 25-structure thorax on a
2.5 mm grid in <= 1 s warm on 2 cores, with the accurate defaults).

Case: the built-in demo patient (synthetic thorax + upper abdomen: 28 structures incl.
External 15.8 L and lungs; five RTDOSE grids of 125 × 87 × 121 at 2.5 mm).

Prints: load time; per-structure occupancy (rasterisation) and DVH times on one grid;
all-structure DVH wall time on 2 threads for each grid (warm); the cold start of a fresh
process with the kernels' ahead-of-time build, and on Numba's JIT with and without its cache
on disk (``RTPLAN_ASSIST_KERNELS=jit``); peak memory (RSS).

Usage: ``python benches/bench_dvh.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLD_SNIPPET = """
import time
t0 = time.perf_counter()
from rtplan_assist.demo import demo_case_folder
from rtplan_assist.dicom import load_case
from rtplan_assist.dvh import compute_dvhs
case = load_case(demo_case_folder())
t1 = time.perf_counter()
compute_dvhs(case.structures, case.doses[0])
t2 = time.perf_counter()
print(f"{t1 - t0:.2f} {t2 - t1:.2f}")
"""


def cold_start(env_extra: dict) -> tuple[float, float]:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", COLD_SNIPPET], capture_output=True, text=True,
                         env=env, check=True)
    load, dvh = out.stdout.split()
    return float(load), float(dvh)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from rtplan_assist.demo import demo_case_folder
    from rtplan_assist.dicom import load_case
    from rtplan_assist.dvh import compute_dvh, compute_dvhs
    from rtplan_assist.structures import occupancy

    folder = demo_case_folder()
    t = time.perf_counter()
    case = load_case(folder)
    print(f"load_case (headers + 5 doses + 28 structures): {time.perf_counter() - t:.2f} s")
    structures = [s for s in case.structures if not s.is_empty]
    dose = case.doses[0]
    print(f"grid {dose.grid.shape} at {dose.grid.spacing} mm; {len(structures)} structures; "
          f"{os.cpu_count()} cores")

    compute_dvhs(structures, dose)  # compile / warm
    for s in structures[:1]:
        occupancy(s, dose.grid)
    print(f"\n{'structure':<16}{'volume cc':>11}{'occupancy ms':>14}{'DVH ms':>9}")
    for s in structures:
        t = time.perf_counter()
        mask = occupancy(s, dose.grid)
        t_occ = time.perf_counter() - t
        t = time.perf_counter()
        h = compute_dvh(s, dose)
        t_dvh = time.perf_counter() - t
        print(f"{s.name:<16}{h.volume_cc:>11.2f}{1000 * t_occ:>14.1f}{1000 * t_dvh:>9.1f}"
              + ("" if abs(mask.volume_cc - h.dvh_volume_cc) < 0.01 * h.volume_cc + 0.01
                 else "  (occupancy volume differs)"))

    print("\nall structures, one grid, threads = cores (warm):")
    for d in case.doses:
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            compute_dvhs(structures, d)
            times.append(time.perf_counter() - t)
        print(f"  {Path(d.path).name}: best {min(times):.3f} s, median "
              f"{sorted(times)[len(times) // 2]:.3f} s")

    print(f"\npeak RSS so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    load, dvh = cold_start({})
    print(f"cold process, ahead-of-time build: load {load:.2f} s, first DVH pass {dvh:.2f} s")
    with tempfile.TemporaryDirectory() as empty:
        load, dvh = cold_start({"NUMBA_CACHE_DIR": empty, "RTPLAN_ASSIST_KERNELS": "jit"})
        print(f"cold process, JIT, empty Numba cache: load {load:.2f} s, first DVH pass "
              f"{dvh:.2f} s (includes JIT compilation)")
    load, dvh = cold_start({"RTPLAN_ASSIST_KERNELS": "jit"})
    print(f"cold process, JIT, Numba cache on disk: load {load:.2f} s, first DVH pass {dvh:.2f} s")


if __name__ == "__main__":
    main()
