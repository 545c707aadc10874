"""Compile the Numba kernels once, into their on-disk cache: ``python -m rtplan_assist.precompile``.

``scripts/setup.sh`` runs this after installing, so that neither the first ``serve``, the first
browser visit nor the first ``dvh`` waits on the JIT compiler in silence. It runs the built-in
demo patient through what the commands and the app run (the app's preparation: loading, every
regimen's DVHs and constraints, the recommendation and the composite; then the dose view's
composite EQD2 grid and a structure's voxel occupancy), which compiles every kernel signature
they use (``@njit(cache=True)``). A second run finds the cache and takes a few seconds.

Prints ``compiling kernels, once, about N s`` first (N measured on a 2-core machine), one line
per step, and the time it took.
"""

from __future__ import annotations

import sys
import time

#: seconds of compilation on an idle 2-core machine (measured: 20 s user CPU, 12 s when
#: everything is cached; a busy machine stretches the wall time)
ESTIMATE_S = 30


def main() -> int:
    t0 = time.perf_counter()
    print(f"rtplan-assist: compiling kernels, once, about {ESTIMATE_S} s "
          "on an idle 2-core machine (cached afterwards) ...", flush=True)
    steps = 5

    def step(i: int, text: str) -> None:
        print(f"  [{i}/{steps}] {text} ({time.perf_counter() - t0:.0f} s)", flush=True)

    step(1, "loading the demo patient and the DVH kernels")
    from rtplan_assist.app.prepare import build_evaluator
    from rtplan_assist.demo import demo_case_folder

    folder = demo_case_folder()
    step(2, "DVHs, constraints and BED/EQD2 of every regimen (the app's preparation)")
    tty = sys.stdout.isatty()

    def sub(i: int, n: int, text: str) -> None:
        if not tty and i % 10 and i not in (1, n):  # a log: the first and every tenth step
            return
        line = f"        {i}/{n} {' '.join(str(text).split())}"
        print(f"\r{line[:100]:<100}" if tty else line, end="" if tty else "\n", flush=True)

    evaluator, recommendation = build_evaluator(folder, sub)
    if tty:
        print(flush=True)
    step(3, "composite EQD2 grid of the dose view")
    evaluator.composite_eqd2(recommendation.choice, 3.0)
    step(4, "voxel occupancy (masks)")
    from rtplan_assist.structures import occupancy

    structure = next(s for s in evaluator.case.structures if not s.is_empty)
    occupancy(structure, evaluator.case.doses[0].grid)
    print(f"  [{steps}/{steps}] kernels compiled and cached in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
