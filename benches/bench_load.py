"""Loopback load test of the app: N concurrent regimen changes from N browser sessions (issue 6).

Serves the real app (``create_app`` on the demo patient) in a threaded werkzeug server on
127.0.0.1, prepares the demo patient (the background job's work, timed apart), then sends N
requests at once, each from its own session id: the lesion screen's request after a regimen
change (``render_lesion``, fired by the ``choices`` store; the body is built from the app's
``callback_map`` by ``tests/app_http.py``). Rounds:

1. each session opens lesion L2 with a regimen of its own (``40+i Gy/11``, in no table): the
   session's first request, so it includes its copy of the patient's evaluator
   (``session_copy``: the patient is unpickled once) and evaluating a new regimen;
2. and later: each session changes to a table regimen of L2 (the common regimen change).

Every answer is checked (HTTP 200, the chosen regimen, no other session's regimen offered) and
the server must log no warning or error; the script exits 1 otherwise. Printed per round:
latency p50/p90/p95/max (ms) and throughput (requests/s over the round's wall time), with the
machine's load average and the server process's peak memory.

    .venv/bin/python benches/bench_load.py [--requests 20] [--rounds 3] [--cache-dir DIR]
        [--server werkzeug|serve] [--workers N] [--threads N]

``--server serve`` measures the production server instead: ``rtplan-assist serve`` (gunicorn,
``--workers`` processes x ``--threads``) in its own process on a free loopback port, on the
same prepared cache; its peak memory is the sum of the peak RSS of the master and workers
(VmHWM), and any line it writes besides its banner counts as a server error. It binds a port:
run it under ``flock /tmp/rtplan-browser.lock`` on a shared machine.

The app holds ``PreparedCache.max_loaded`` unpickled patients (6 by default) and
``Sessions.max_sessions`` session copies (64); ``--max-loaded`` changes the first bound. Speed
is measured here, not asserted (tests/test_app_load.py runs the same requests and checks the
answers only).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from app_http import (  # tests/ is on the path (above)
    concurrent_regimen_changes,
    regimen_change_problems,
    serve,
    serve_process,
    session_regimen,
)

LESION = "L2"


def percentiles_ms(latencies_s: list[float]) -> dict[str, float]:
    """p50/p90/p95/max of latencies (s) in ms; inclusive quantiles (exact for the sample)."""
    ms = sorted(1000.0 * t for t in latencies_s)
    if len(ms) == 1:
        return {"p50": ms[0], "p90": ms[0], "p95": ms[0], "max": ms[0]}
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50": q[49], "p90": q[89], "p95": q[94], "max": ms[-1]}


class _Lines:
    def __init__(self, lines: list[str]):
        self._lines = lines

    def messages(self) -> list[str]:
        return self._lines


def _peak_rss_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of ``pid`` and its children, MB."""
    total = 0.0
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


@contextmanager
def serve_production(cache_dir: str, workers: int, threads: int, peak: dict):
    """``rtplan-assist serve`` in its own process; yields (url, its output besides the banner)."""
    lines: list[str] = []
    with serve_process(cache_dir, workers=workers, threads=threads) as served:
        yield served.url, _Lines(lines)
        peak["mb"] = _peak_rss_mb(served.proc.pid)
    lines += [ln for ln in served.output.splitlines()
              if ln.strip() and not ln.startswith("rtplan-assist: serving")]


def run(n_requests: int, rounds: int, cache_dir: str | None, max_loaded: int | None,
        server: str = "werkzeug", workers: int = 2, threads: int = 4) -> int:
    from rtplan_assist.app import create_app

    if server == "serve" and cache_dir is None:
        cache_dir = tempfile.mkdtemp(prefix="bench-load-cache-")
    app = create_app(None, cache_dir=cache_dir)
    state = app.rtplan_state
    if max_loaded is not None:
        state.prepared.max_loaded = max_loaded
    entry = state.entries[0]
    t0 = time.perf_counter()
    state.prepare(entry)
    print(f"demo patient prepared in {time.perf_counter() - t0:.1f} s (cached: instant); "
          f"{os.cpu_count()} CPUs; LRU bounds: {state.prepared.max_loaded} patients, "
          f"{state.sessions.max_sessions} session copies")

    sessions = [f"load-{i:03d}" for i in range(n_requests)]
    own = {s: session_regimen(i) for i, s in enumerate(sessions)}
    failures = 0
    peak: dict = {}
    served = (serve(app) if server == "werkzeug"
              else serve_production(cache_dir, workers, threads, peak))
    print("server: " + ("threaded werkzeug in this process" if server == "werkzeug" else
                        f"rtplan-assist serve (gunicorn, {workers} workers x {threads} threads)"))
    with served as (url, log):
        table: list[str] = []
        for round_no in range(1, rounds + 1):
            if round_no == 1:
                requests = [(s, own[s]) for s in sessions]
            else:  # a table regimen of L2, a different one per session and round
                requests = [(s, table[(i + round_no) % len(table)])
                            for i, s in enumerate(sessions)]
            load_before = os.getloadavg()[0]
            changes, wall_s = concurrent_regimen_changes(app, url, requests,
                                                         patient_key=entry.key, lesion_id=LESION)
            if round_no == 1 and changes[0].status == 200:
                table = [r for r in changes[0].options() if r not in own.values()]
            problems = [p for c in changes for p in regimen_change_problems(
                c, lesion_id=LESION, foreign=set(own.values()) - {own[c.session]})]
            failures += len(problems)
            stats = percentiles_ms([c.latency_s for c in changes])
            what = "first request: own regimen" if round_no == 1 else "regimen change"
            print(f"round {round_no} ({what}), {n_requests} concurrent: "
                  + "  ".join(f"{k} {v:7.0f} ms" for k, v in stats.items())
                  + f"  throughput {n_requests / wall_s:5.1f} req/s  (wall {wall_s:.1f} s, "
                  f"load avg {load_before:.2f} -> {os.getloadavg()[0]:.2f})")
            for problem in problems[:10]:
                print(f"  WRONG: {problem}")
        errors = log.messages()
    failures += len(errors)
    for message in errors[:10]:
        print(f"  SERVER LOG: {message}")
    if server == "werkzeug":
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        where = "this process (server and client threads)"
    else:
        peak_mb, where = peak["mb"], "the server (master + workers, sum of peaks)"
    print(f"peak memory of {where}: {peak_mb:.0f} MB; "
          f"{'no errors' if not failures else f'{failures} problems'}")
    state.close()
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20,
                        help="concurrent requests (= sessions) per round (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--cache-dir", default=None,
                        help="reuse prepared evaluations from here (default: a temporary one)")
    parser.add_argument("--max-loaded", type=int, default=None,
                        help="LRU bound on prepared evaluators in memory (default: the app's)")
    parser.add_argument("--server", choices=("werkzeug", "serve"), default="werkzeug",
                        help="threaded werkzeug in this process (default) or the production "
                        "server of `rtplan-assist serve` in its own process")
    parser.add_argument("--workers", type=int, default=2, help="--server serve: processes")
    parser.add_argument("--threads", type=int, default=4, help="--server serve: threads each")
    args = parser.parse_args()
    if args.requests < 1 or args.rounds < 1:
        parser.error("--requests and --rounds must be at least 1")
    sys.exit(run(args.requests, args.rounds, args.cache_dir, args.max_loaded, args.server,
                 args.workers, args.threads))


if __name__ == "__main__":
    main()
