"""Start-up of the command line (issue 15: ``rtplan-assist --help`` and
``bed 54 3 --alpha-beta 10`` under 0.5 s) and what each command imports.

Each command runs as a fresh process, alternating, ``--rounds`` times; prints median and best
wall time, peak RSS, and the heavy packages the process imported (``-X importtime``). On a
machine shared with other work the wall times swing with the load; compare columns of one run.

``--other NAME=DIR`` adds another checkout's ``.venv`` (e.g. the code before a change).

Usage: ``python benches/bench_startup.py [--rounds 7] [--other before=/path]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "numba", "scipy", "pydicom", "requests", "dash", "plotly", "flask",
         "matplotlib", "sqlalchemy", "weasyprint", "pandas")
COMMANDS = {
    "--help": ["--help"],
    "bed 54 3 --alpha-beta 10": ["bed", "54", "3", "--alpha-beta", "10"],
    "evaluate --help": ["evaluate", "--help"],
}


def timed(cmd: list[str]) -> tuple[float, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024.0


def heavy_imports(python: str, argv: list[str]) -> list[str]:
    out = subprocess.run([python, "-X", "importtime", "-m", "rtplan_assist.cli", *argv],
                         capture_output=True, text=True)
    seen = set()
    for line in out.stderr.splitlines():
        if line.startswith("import time:"):
            name = line.rsplit("|", 1)[-1].strip()
            if name.split(".")[0] in HEAVY:
                seen.add(name.split(".")[0])
    return sorted(seen)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--other", action="append", default=[], metavar="NAME=DIR")
    args = ap.parse_args()
    venvs = {"this": ROOT / ".venv"}
    for item in args.other:
        name, _, path = item.partition("=")
        venvs[name] = Path(path) / ".venv"

    jobs = {(v, c): [str(p / "bin" / "rtplan-assist"), *argv]
            for v, p in venvs.items() for c, argv in COMMANDS.items()}
    for cmd in jobs.values():  # warm the page cache
        timed(cmd)
    times: dict = {k: [] for k in jobs}
    rss: dict = {k: 0.0 for k in jobs}
    for r in range(args.rounds):
        for key in (list(jobs) if r % 2 == 0 else list(reversed(jobs))):
            wall, mib = timed(jobs[key])
            times[key].append(wall)
            rss[key] = max(rss[key], mib)
    load = os.getloadavg()
    print(f"{args.rounds} alternating rounds; {os.cpu_count()} cores; load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"{'checkout':<10}{'command':<28}{'median s':>10}{'best s':>9}{'peak MiB':>10}  imports")
    for (v, c), walls in times.items():
        heavy = heavy_imports(str(venvs[v] / "bin" / "python"), COMMANDS[c])
        print(f"{v:<10}{c:<28}{statistics.median(walls):>10.3f}{min(walls):>9.3f}"
              f"{rss[(v, c)]:>10.0f}  {', '.join(heavy) or '-'}")


if __name__ == "__main__":
    main()
