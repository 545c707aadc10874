"""Timings of ``evaluate --demo`` (5 lesions × 10 regimens + composite + recommendation) and of
one regimen change (lesion_rows + composite_rows), the budgets of GitHub issue 3.

Run: ``.venv/bin/python benches/bench_evaluate.py [--repeat N]``

``--own`` (issue 15): evaluate's own Python time, i.e. everything but the kernel calls, the
DICOM reading and the imports, in one process: the demo case is loaded once, one evaluation
warms the kernels, then each repeat builds a new evaluator on the loaded case
(``evaluate_folder``: tables, lesions, names), evaluates it and renders json, text, html and
csv. CPU is the process's (every thread); the kernel CPU is measured around the calls that
reach the kernels (``compute_dvh``, ``DVHSampler`` recording, replay and runs, ``add_eqd2_box``,
resampling) with each thread's own clock, so ``own CPU = CPU - kernel CPU``.
``--process`` times ``rtplan-assist evaluate DEMO --format json`` as a new process instead.

Figures of issue 15 (2-core machine shared with other engineers; before = main 7399377 with
this issue's files as they were at 3379e4d, after = main 7399377; alternating, load ~1.5):

* ``--own``, first evaluation of the process, evaluate + json own CPU: before 0.387, 0.377 s;
  after 0.226, 0.212 s (-43 %): evaluate 0.26 -> 0.155 s, json text 0.12 -> 0.06 s; the
  kernels' CPU (1.1-1.3 s) is the same. Other renderers: csv 0.152 -> 0.093 s, text 0.014 ->
  0.008 s, html 0.10 -> 0.09 s. Rows alone (54 lists of lesion x regimen rows, constraints
  included): 135 -> 67 ms.
* whole process, ``evaluate DEMO --format json``, 12 alternating runs: CPU median 2.06 ->
  1.88 s (min 1.92 -> 1.74), wall median 1.58 -> 1.40 s (min 1.46 -> 1.26).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def _kernel_clock():
    """Wrap the calls that reach the kernels so that their CPU time (per thread) is summed;
    returns the list that collects the seconds."""
    import functools
    import sys
    import threading
    from functools import cached_property

    from rtplan_assist import dvh as dvh_module
    from rtplan_assist.kernels import eqd2 as eqd2_kernels
    from rtplan_assist.kernels import resample as resample_kernels

    spent: list[float] = []
    lock = threading.Lock()

    def clocked(func):
        @functools.wraps(func)
        def run(*args, **kwargs):
            t0 = time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                with lock:
                    spent.append(time.thread_time() - t0)

        return run

    for module, name in ((dvh_module, "compute_dvh"), (eqd2_kernels, "add_eqd2_box"),
                         (resample_kernels, "resample_trilinear")):
        original = getattr(module, name)
        wrapped = clocked(original)
        for other in list(sys.modules.values()):  # the names imported elsewhere too
            if getattr(other, "__name__", "").startswith("rtplan_assist") and getattr(
                other, name, None
            ) is original:
                setattr(other, name, wrapped)
    sampler = dvh_module.DVHSampler
    sampler.__init__ = clocked(sampler.__init__)
    sampler.dvh = clocked(sampler.dvh)
    runs = cached_property(clocked(sampler.support_runs.func))
    runs.__set_name__(sampler, "support_runs")
    sampler.support_runs = runs
    return spent


def own_time(repeat: int) -> None:
    """Evaluate's own Python time (module docstring, ``--own``)."""
    from rtplan_assist.demo import demo_case_folder
    from rtplan_assist.dicom import load_case
    from rtplan_assist.evaluation import (
        result_to_csv,
        result_to_html,
        result_to_json,
        result_to_text,
    )
    from rtplan_assist.workflow import evaluate_folder

    print(f"load average: {os.getloadavg()[0]:.2f} (cpu count {os.cpu_count()})")
    case = load_case(demo_case_folder())
    spent = _kernel_clock()
    renders = (("json", result_to_json), ("text", result_to_text), ("html", result_to_html),
               ("csv", result_to_csv))

    import gc

    from rtplan_assist import cli_evaluate

    # as the command runs it: with or without the cyclic garbage collector
    without_gc = getattr(cli_evaluate, "EVALUATE_WITHOUT_GC", False)
    print(f"garbage collector during the evaluation: {'off' if without_gc else 'on'} "
          "(as in the evaluate command)")

    def once():
        del spent[:]
        if without_gc:
            gc.disable()
        try:
            w0, c0 = time.perf_counter(), time.process_time()
            result = evaluate_folder(case).evaluate()
            w1, c1 = time.perf_counter(), time.process_time()
            kernel = sum(spent)
            parts = {"evaluate": (w1 - w0, c1 - c0 - kernel, kernel)}
            for name, render in renders:
                t0, u0 = time.perf_counter(), time.process_time()
                render(result)
                parts[name] = (time.perf_counter() - t0, time.process_time() - u0, 0.0)
        finally:
            gc.enable()
        gc.collect()  # between runs, outside the timings
        return parts

    # the first run is the one a new process pays (kernels loaded from their cache: counted
    # as kernel time; first parses and caches of the tables and names: own time)
    first = once()
    runs = [once() for _ in range(repeat)]
    for name in runs[0]:
        wall = statistics.median(r[name][0] for r in runs)
        own = statistics.median(r[name][1] for r in runs)
        kernel = statistics.median(r[name][2] for r in runs)
        print(f"{name:9s} first: wall {first[name][0]:6.3f} s, own CPU {first[name][1]:6.3f} s, "
              f"kernel CPU {first[name][2]:6.3f} s | then: wall {wall:6.3f} s, own CPU "
              f"{own:6.3f} s, kernel CPU {kernel:6.3f} s")
    for label, picked in (("first", [first]), (f"then (medians of {repeat})", runs)):
        wall = statistics.median(r["evaluate"][0] + r["json"][0] for r in picked)
        own = statistics.median(r["evaluate"][1] + r["json"][1] for r in picked)
        print(f"evaluate + json, {label}: wall {wall:.3f} s, own CPU {own:.3f} s")


def whole_process(repeat: int) -> None:
    """``rtplan-assist evaluate DEMO --format json`` as a new process (``--process``)."""
    import resource
    import subprocess
    import sys
    import tempfile

    from rtplan_assist.demo import demo_case_folder

    folder = str(demo_case_folder())
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        cmd = [sys.executable, "-m", "rtplan_assist.cli", "evaluate", folder, "--format",
               "json", "--out", out]
        for _ in range(repeat):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(cmd, check=False, stderr=subprocess.DEVNULL)
            walls.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    print(f"evaluate DEMO --format json, new process: wall median {statistics.median(walls):.2f} s "
          f"(min {min(walls):.2f}), CPU median {statistics.median(cpus):.2f} s over {repeat}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--own", action="store_true",
                        help="evaluate's own Python time (CPU and wall, kernels excluded)")
    parser.add_argument("--process", action="store_true",
                        help="whole-process evaluate of the demo (wall and CPU)")
    args = parser.parse_args()
    if args.own or args.process:
        if args.own:
            own_time(args.repeat)
        if args.process:
            whole_process(args.repeat)
        return

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
