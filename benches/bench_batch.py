"""Batch throughput: patients per minute, serial vs process pool (vs Dask LocalCluster).

Generates N synthetic demo patients (seeds 1..N, ~28 MB and ~2.5 s each) in a temporary
folder, then runs :func:`rtplan_assist.batch.run_batch` on them once per executor, each into
a fresh output folder (nothing reused), and prints patients/minute.

    python benches/bench_batch.py               # 50 patients: needs ~1.4 GB of temp disk
    python benches/bench_batch.py --n 10 --dask --reports pdf
    python benches/bench_batch.py --n 8 --workers 1,2 --dask   # 1 and 2 workers (issue 15)

The issue's figure is for 50 patients on the 2-core machine; ``--n`` reduces it when the
disk or the time is short (the script says what it ran).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from rtplan_assist.batch import run_batch
from rtplan_assist.demo import write_demo_patient

MB_PER_PATIENT = 28


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="number of patients (default 50)")
    parser.add_argument("--workers", default=str(os.cpu_count() or 1),
                        help="pool / Dask workers, or a comma list such as 1,2 (default: CPU "
                        "count)")
    parser.add_argument("--dask", action="store_true", help="also time a Dask LocalCluster")
    parser.add_argument("--no-serial", action="store_true", help="skip the serial run")
    parser.add_argument("--reports", choices=("none", "html", "pdf"), default="none",
                        help="per-patient report format (default none: evaluation only)")
    parser.add_argument("--tmp", default=None, help="parent of the temporary folder")
    args = parser.parse_args()

    tmp_parent = Path(args.tmp or tempfile.gettempdir())
    free_mb = shutil.disk_usage(tmp_parent).free / 1e6
    need_mb = args.n * MB_PER_PATIENT * 1.2
    if free_mb < need_mb:
        raise SystemExit(f"{tmp_parent}: {free_mb:.0f} MB free, {need_mb:.0f} MB needed; "
                         "use --n or --tmp")
    report = None if args.reports == "none" else args.reports
    with tempfile.TemporaryDirectory(prefix="rtpa-bench-batch-", dir=tmp_parent) as work:
        root = Path(work) / "patients"
        t0 = time.perf_counter()
        for seed in range(1, args.n + 1):
            write_demo_patient(root, seed=seed)
        gen = time.perf_counter() - t0
        print(f"{args.n} demo patients generated in {gen:.1f} s "
              f"({args.n * MB_PER_PATIENT} MB); cpu_count={os.cpu_count()}, reports={args.reports}, "
              f"load average {os.getloadavg()[0]:.1f}")
        runs = []
        if not args.no_serial:
            runs.append(("serial (in process)", {"workers": 0}))
        for n in [int(w) for w in args.workers.split(",")]:
            runs.append((f"process pool x{n}", {"workers": n}))
            if args.dask:
                runs.append((f"Dask LocalCluster x{n}", {"workers": n, "scheduler": "local"}))
        print(f"{'executor':28} {'seconds':>8} {'patients/min':>13} {'s/patient':>10} "
              f"{'cpu s/pt':>9} {'load':>5}  exit")
        for label, kwargs in runs:
            out = Path(work) / f"out-{len(label)}-{time.monotonic_ns()}"
            cpu0 = _cpu_seconds()
            t0 = time.perf_counter()
            summary = run_batch(root, out, progress=False, report_format=report, **kwargs)
            seconds = time.perf_counter() - t0
            cpu = _cpu_seconds() - cpu0
            assert summary.n_evaluated == args.n, summary.line()
            print(f"{label:28} {seconds:8.1f} {60 * args.n / seconds:13.2f} "
                  f"{seconds / args.n:10.2f} {cpu / args.n:9.2f} {os.getloadavg()[0]:5.1f}  "
                  f"{summary.exit_code}", flush=True)
        print("cpu s/pt: user + sys of this process and of its ended children (pool and "
              "LocalCluster workers, their start-up included); load: 1-min load average after "
              "the run (on a shared machine throughput grows with workers only as far as "
              "cores are idle)")


def _cpu_seconds() -> float:
    """User + sys seconds of this process and of its children that have ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


if __name__ == "__main__":
    main()
