"""Timings of ``evaluate --demo`` (5 lesions × 10 regimens + composite + recommendation) and of
one regimen change (lesion_rows + composite_rows), the budgets of GitHub issue 3.

Run: ``.venv/bin/python benches/bench_evaluate.py [--repeat N]``

* cold: the first evaluation in this process (Numba kernels loaded from their cache);
* warm: a new CaseEvaluator on the loaded case (every DVH recomputed; kernels warm);
* cached: ``evaluate()`` again on the same evaluator;
* regimen change: on a warm evaluator, a regimen never evaluated for one lesion
  (``lesion_rows``) and the composite of a choice never evaluated (``composite_rows``).

The machine's load average is printed: the budgets assume the 2 cores are free.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from rtplan_assist.demo import demo_case_folder
    from rtplan_assist.dicom import load_case
    from rtplan_assist.evaluation import CaseEvaluator
    from rtplan_assist.regimens import Regimen

    print(f"load average: {os.getloadavg()[0]:.2f} (cpu count {os.cpu_count()})")
    t0 = time.perf_counter()
    case = load_case(demo_case_folder())
    print(f"load_case(demo): {time.perf_counter() - t0:.2f} s")

    t0 = time.perf_counter()
    evaluator = CaseEvaluator(case)
    result = evaluator.evaluate()
    cold = time.perf_counter() - t0
    n_rows = len(result.rows)
    print(
        f"cold evaluate: {cold:.2f} s ({len(result.lesions)} lesions, {n_rows} lesion rows, "
        f"{len(result.composite_rows)} composite rows)"
    )

    warm, parts = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        evaluator = CaseEvaluator(case)
        result = evaluator.evaluate()
        warm.append(time.perf_counter() - t0)
        parts.append(dict(evaluator.timings))
    print(
        f"warm evaluate (new evaluator): median {statistics.median(warm):.2f} s, "
        f"min {min(warm):.2f} s over {args.repeat}"
    )
    best = parts[warm.index(min(warm))]
    print("  of which: " + ", ".join(f"{k} {v:.2f} s" for k, v in best.items()))
    print(
        f"  recommendation: {result.recommendation.choice and {k: v.label for k, v in result.recommendation.choice.items()}}"
    )
    print(
        f"  search: {result.recommendation.composite_evaluations} voxel-wise organ composites; "
        "recorded DVH samples of the composite organs: "
        f"{sum(s.nbytes for s in evaluator._samplers.values()) / 2**20:.0f} MiB"
    )

    t0 = time.perf_counter()
    evaluator.evaluate()
    print(f"cached evaluate (same evaluator): {time.perf_counter() - t0:.3f} s")

    changes = []
    extra = [Regimen(6, 48.0), Regimen(7, 56.0), Regimen(12, 60.0)]
    base = dict(result.choice)
    swaps = [("L4", Regimen(5, 50.0)), ("L1", Regimen(5, 55.0)), ("L4", Regimen(8, 60.0))]
    for regimen, (lid, alternative) in zip(extra, swaps):
        t0 = time.perf_counter()
        evaluator.lesion_rows("L1", regimen)
        t1 = time.perf_counter()
        evaluator.composite_rows(dict(base, **{lid: alternative}))
        t2 = time.perf_counter()
        changes.append((t1 - t0, t2 - t1))
    for (rows_s, comp_s), regimen in zip(changes, extra):
        print(
            f"regimen change L1 -> {regimen.label}: lesion_rows {1000 * rows_s:.1f} ms, "
            f"composite_rows of a new choice {1000 * comp_s:.0f} ms"
        )


if __name__ == "__main__":
    main()
