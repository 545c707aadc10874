"""Server time of a regimen change in the app on the demo patient (budget: <= 300 ms).

Calls what the lesion-screen callbacks call (``regimen_change``: the lesion's comparison rows,
its column verdicts and the mandatory composite rows; ``composite_change``: every composite row
of the new choice and the contributors) plus the composite screen's evaluation, on a
prepared demo patient, for every regimen of one lesion (each a new composite). Prints timings.

    .venv/bin/python benches/bench_app.py [--lesion L2] [--cache-dir DIR]

The preparation (background job: every lesion × regimen and the joint recommendation) is
timed too but is not part of the budget; pass ``--cache-dir`` to reuse it between runs.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesion", default="L2")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()

    from rtplan_assist.app.callbacks.lesion import composite_change, regimen_change
    from rtplan_assist.app.services import AppServices

    state = AppServices(None, cache_dir=args.cache_dir)
    entry = state.entries[0]
    t0 = time.perf_counter()
    state.prepare(entry)
    t_prepare = time.perf_counter() - t0
    t0 = time.perf_counter()
    loaded = state.patient("bench", entry.key)
    t_unpickle = time.perf_counter() - t0
    t0 = time.perf_counter()
    regimen_change(loaded, {}, args.lesion)  # the recommended choice: as after loading
    composite_change(loaded, {})
    t_first = time.perf_counter() - t0

    change_ms, evaluate_ms = [], []
    for regimen in loaded.evaluator.regimens_for(args.lesion):
        prefs = {"choice": {args.lesion: regimen.label}}
        t0 = time.perf_counter()
        regimen_change(loaded, prefs, args.lesion)
        composite_change(loaded, prefs)
        change_ms.append(1000 * (time.perf_counter() - t0))
        t0 = time.perf_counter()
        loaded.result(prefs)
        evaluate_ms.append(1000 * (time.perf_counter() - t0))

    print(f"demo patient, lesion {args.lesion}, {len(change_ms)} regimens")
    print(f"  prepare (background job, not budgeted) {t_prepare:8.1f} s")
    print(f"  load prepared evaluator (unpickle)     {1000 * t_unpickle:8.1f} ms")
    print(f"  first screen (recommended choice)      {1000 * t_first:8.1f} ms")
    print(f"  regimen change: comparison + composite median {statistics.median(change_ms):7.1f} ms"
          f"  max {max(change_ms):7.1f} ms  (budget 300 ms)")
    print(f"  composite screen evaluate(), after it  median {statistics.median(evaluate_ms):7.1f}"
          f" ms  max {max(evaluate_ms):7.1f} ms")
    state.close()


if __name__ == "__main__":
    main()
