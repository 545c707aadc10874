"""Whole-process time of ``rtplan-assist dvh`` / ``evaluate`` against plastimatch, alternating
(issue 15 budgets: ``dvh`` (all structures) <= 1.0 x plastimatch, ``evaluate`` of the whole
demo patient <= 2.0 x plastimatch, peak memory < 400 MiB).

Case: the built-in demo thorax (28 structures; RTDOSE 125 x 87 x 121 at 2.5 mm; dose L1).
plastimatch (Debian ``apt-get install plastimatch``, C++) does the same job in two processes:

    plastimatch convert --input RS --fixed RD --xor-contours --output-ss-img ss.nrrd \
        --output-ss-list ss.txt
    plastimatch dvh --input-dose RD --input-ss-img ss.nrrd --input-ss-list ss.txt \
        --output-csv dvh.csv --num-bins 10000 --bin-width 0.01

Each round runs every command once, in turn, as a fresh process (so imports, Numba cache
loading and file reading count), and reads its wall time, CPU time (user + sys) and peak RSS
from ``wait4``. Prints the median and best of each and the ratios. On a machine shared with
other work, wall times swing with the load: CPU time is printed next to them, and the
comparison is only meaningful between columns of one run.

``--other NAME=DIR`` adds another checkout's ``.venv/bin/rtplan-assist`` (e.g. the code
before a change) to the rotation. ``--dicompyler PYTHON`` adds dicompyler-core (for the
record; it needs pydicom < 3, so it lives in a venv of its own, e.g.
``python -m venv /tmp/dcc && /tmp/dcc/bin/pip install dicompyler-core==0.5.6 'pydicom<3'``):
``dvhcalc.get_dvh`` of every structure of the RTSTRUCT on the same RTDOSE, its defaults.

Usage: ``python benches/bench_vs_plastimatch.py [--rounds 5] [--other before=/path]
[--dicompyler /tmp/dcc/bin/python]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


#: every structure's DVH with dicompyler-core's defaults, a line per structure to stdout
DICOMPYLER = """
import sys
from dicompylercore import dicomparser, dvhcalc
rs, rd = sys.argv[1], sys.argv[2]
for key, structure in dicomparser.DicomParser(rs).GetStructures().items():
    dvh = dvhcalc.get_dvh(rs, rd, key)
    if dvh.volume > 0:
        print(structure["name"], dvh.volume, dvh.mean, dvh.max)
"""


def run(cmd: list[str], cwd: str) -> tuple[float, float, float]:
    """(wall s, cpu s, peak RSS MiB) of one child process; it must exit 0."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode not in (0, 1):  # evaluate exits 1 when a mandatory constraint fails
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {err[-400:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--other", action="append", default=[], metavar="NAME=DIR",
                    help="another checkout whose .venv/bin/rtplan-assist joins the rotation")
    ap.add_argument("--dicompyler", metavar="PYTHON",
                    help="a Python with dicompyler-core installed (joins the rotation)")
    args = ap.parse_args()
    if not shutil.which("plastimatch"):
        raise SystemExit("plastimatch not found: apt-get install plastimatch")

    sys.path.insert(0, str(ROOT))
    from rtplan_assist.demo import demo_case_folder

    folder = demo_case_folder()
    rs, rd = str(folder / "RS.dcm"), str(folder / "RD.L1.dcm")
    work = tempfile.mkdtemp(prefix="bench-plm-")
    plm = ["plastimatch"]
    exes = {"rtplan-assist": str(ROOT / ".venv" / "bin" / "rtplan-assist")}
    for item in args.other:
        name, _, path = item.partition("=")
        exes[name] = str(Path(path) / ".venv" / "bin" / "rtplan-assist")

    jobs: dict[str, list[list[str]]] = {
        "plastimatch convert+dvh": [
            plm + ["convert", "--input", rs, "--fixed", rd, "--xor-contours",
                   "--output-ss-img", "ss.nrrd", "--output-ss-list", "ss.txt"],
            plm + ["dvh", "--input-dose", rd, "--input-ss-img", "ss.nrrd", "--input-ss-list",
                   "ss.txt", "--output-csv", "dvh.csv", "--num-bins", "10000",
                   "--bin-width", "0.01"],
        ],
    }
    for name, exe in exes.items():
        jobs[f"{name} dvh"] = [[exe, "dvh", rs, rd, "--out", f"dvh-{name}.json"]]
        jobs[f"{name} evaluate"] = [[exe, "evaluate", str(folder), "--format", "json",
                                     "--out", f"eval-{name}.json"]]
    if args.dicompyler:
        jobs["dicompyler-core dvh"] = [[args.dicompyler, "-c", DICOMPYLER, rs, rd]]
    for cmds in jobs.values():  # warm the page cache and the Numba caches once
        for c in cmds:
            run(c, work)

    results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in jobs}
    for r in range(args.rounds):
        order = list(jobs) if r % 2 == 0 else list(reversed(jobs))
        for name in order:
            wall = cpu = rss = 0.0
            for c in jobs[name]:
                w, u, m = run(c, work)
                wall, cpu, rss = wall + w, cpu + u, max(rss, m)
            results[name].append((wall, cpu, rss))

    load = os.getloadavg()
    print(f"demo thorax, dose L1; {args.rounds} alternating rounds; {os.cpu_count()} cores; "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"{'command':<30}{'wall med':>10}{'wall best':>11}{'cpu med':>10}{'peak MiB':>10}")
    med = {}
    for name, rows in results.items():
        walls = [w for w, _, _ in rows]
        cpus = [c for _, c, _ in rows]
        med[name] = (statistics.median(walls), statistics.median(cpus), min(walls))
        print(f"{name:<30}{med[name][0]:>10.2f}{min(walls):>11.2f}{med[name][1]:>10.2f}"
              f"{max(m for _, _, m in rows):>10.0f}")
    ref = med["plastimatch convert+dvh"]
    print("\nratio to plastimatch (wall median / wall best / cpu median):")
    for name in jobs:
        if name.startswith("plastimatch"):
            continue
        m = med[name]
        print(f"  {name:<28}{m[0] / ref[0]:>6.2f} x {m[2] / ref[2]:>6.2f} x "
              f"{m[1] / ref[1]:>6.2f} x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
