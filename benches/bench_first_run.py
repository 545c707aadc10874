"""First run on a fresh clone (issue 15): what ``./run.sh`` costs before the overview is usable,
and the first ``dvh``, with what the user sees meanwhile.

Clones this checkout's HEAD into a temporary folder and runs, timing each line of output:

1. ``scripts/setup.sh`` (what ``./run.sh`` runs first): pip into a new ``.venv``, then the
   kernels' compilation (Numba's JIT cache and the ahead-of-time build), printing the time of
   every line it writes and the longest silence between two lines;
2. ``rtplan-assist serve`` (what ``./run.sh`` runs next) until ``/_dash-layout`` answers;
3. the preparation of the demo patient that the first browser visit starts: the app runs
   ``python -m rtplan_assist.app.prepare FOLDER OUT.pkl`` in a fresh interpreter
   (``app/services/prepared.py``), so the same command is run and timed here, with the
   largest gap between its progress lines (the browser's progress bar moves with them);
4. the first ``rtplan-assist dvh`` of the demo thorax (all 28 structures, dose L1).

The overview is usable after 1 + 2 + 3 (the request overhead of the app is not included).
pip's time depends on the network and its cache (kept); the rest is CPU. The demo patient
is written anew into a fresh ``RTPLAN_ASSIST_CACHE``, as on a new machine.

    python benches/bench_first_run.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_lines(cmd: list[str], cwd: Path, env=None) -> tuple[float, list[tuple[float, str]]]:
    """Run ``cmd``; (seconds, [(time of line, line)]) of its merged stdout/stderr."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1, env=env)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - t0, line.rstrip("\n")))
    code = proc.wait()
    if code != 0:
        tail = "\n".join(text for _, text in lines[-20:])
        raise SystemExit(f"{' '.join(cmd)} exited {code}:\n{tail}")
    return time.perf_counter() - t0, lines


def longest_silence(total: float, lines: list[tuple[float, str]]) -> tuple[float, str]:
    """(seconds, the line after which nothing was printed for that long)."""
    best, after, last, last_text = 0.0, "(start)", 0.0, "(start)"
    for t, text in lines + [(total, "(end)")]:
        if t - last > best:
            best, after = t - last, last_text
        last, last_text = t, text
    return best, after


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", metavar="DIR", help="clone here and keep it (default: a temp dir)")
    args = ap.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="first-run-"))
    clone = base / "rtplan-assist"
    if clone.exists():
        shutil.rmtree(clone)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "RTPLAN_ASSIST_KERNELS")}
    env["RTPLAN_ASSIST_CACHE"] = str(base / "user-cache")  # the demo patient written anew
    print(f"fresh clone of {subprocess.run(['git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()} "
          f"in {clone}; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")

    # 1. set-up
    setup_s, lines = timed_lines(["bash", "scripts/setup.sh"], clone, env)
    print(f"\n1. scripts/setup.sh: {setup_s:.0f} s; what it printed:")
    for t, text in lines:
        print(f"   {t:6.1f} s  {text[:110]}")
    compile_at = next((t for t, text in lines if "compiling kernels" in text), setup_s)
    silence, after = longest_silence(setup_s, lines)
    print(f"   pip and byte-compiling {compile_at:.0f} s, kernels {setup_s - compile_at:.0f} s; "
          f"longest silence {silence:.0f} s after {after[:70]!r}")

    # 2. the server
    exe = clone / ".venv" / "bin" / "rtplan-assist"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cache = base / "cache"
    t0 = time.perf_counter()
    server = subprocess.Popen([str(exe), "serve", "--port", str(port), "--cache-dir", str(cache)],
                              cwd=clone, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=env)
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_dash-layout", timeout=5).read()
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - t0 > 120:
                    raise SystemExit("serve did not answer")
                time.sleep(0.1)
        serve_s = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"\n2. rtplan-assist serve answers after {serve_s:.1f} s")

    # 3. the first visit's preparation of the demo patient
    folder = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-c",
         "from rtplan_assist.demo import demo_case_folder; print(demo_case_folder())"],
        capture_output=True, text=True, check=True, env=env).stdout.strip()
    prep_s, prog = timed_lines([str(clone / ".venv" / "bin" / "python"), "-m",
                                "rtplan_assist.app.prepare", folder, str(base / "demo.pkl")],
                               clone, env)
    steps = [(t, text) for t, text in prog if text.startswith("PROGRESS")]
    gap, after = longest_silence(prep_s, steps)
    print(f"\n3. preparing the demo patient (the first visit's background job): {prep_s:.1f} s, "
          f"{len(steps)} progress steps, largest gap {gap:.2f} s after {after[:60]!r}")

    # 4. the first dvh
    dvh_s, out = timed_lines([str(exe), "dvh", f"{folder}/RS.dcm", f"{folder}/RD.L1.dcm",
                              "--out", str(base / "dvh.json")], clone, env)
    print(f"\n4. first rtplan-assist dvh of the demo thorax: {dvh_s:.2f} s; it printed "
          f"{len(out)} line(s): {[text[:80] for _, text in out][:3]}")
    print(f"\n./run.sh to a usable overview: {setup_s + serve_s + prep_s:.0f} s "
          f"(set-up {setup_s:.0f} + server {serve_s:.1f} + preparation {prep_s:.1f})")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
