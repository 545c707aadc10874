"""Compile the kernels once: ``python -m rtplan_assist.precompile``.

``scripts/setup.sh`` runs this after installing, so that neither the first ``serve``, the first
browser visit nor the first ``dvh`` waits on a compiler in silence. Two builds, one source
(``kernels/_jit.py``):

1. Numba's JIT cache: the built-in demo patient goes through what the commands and the app run
   (the app's preparation: loading, every regimen's DVHs and constraints, the recommendation and
   the composite; the dose view's composite EQD2 grid and a structure's voxel occupancy;
   ``dvh`` of every dose, also on a float64 grid; ``evaluate`` of the demo with an earlier course
   in a shifted frame of reference), which compiles every kernel signature they use
   (``njit(cache=True)``) and records them;
2. the ahead-of-time build of exactly those signatures (``numba.pycc``), which the commands
   then load in milliseconds without importing Numba.

A second run finds the JIT cache (a few seconds) and rebuilds the ahead-of-time module.
Prints ``compiling kernels, once, about N s`` first (N measured on a 2-core machine), one line
per step, and the time it took.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

#: seconds of compilation on an idle 2-core machine (measured: ~25 s user CPU for the JIT
#: cache, ~12 s when it is cached, plus ~25 s for the ahead-of-time build; a busy machine
#: stretches the wall time)
ESTIMATE_S = 60


def main() -> int:
    t0 = time.perf_counter()
    print(f"rtplan-assist: compiling kernels, once, about {ESTIMATE_S} s "
          "on an idle 2-core machine (cached afterwards) ...", flush=True)
    steps = 7

    def step(i: int, text: str) -> None:
        print(f"  [{i}/{steps}] {text} ({time.perf_counter() - t0:.0f} s)", flush=True)

    # the workload runs on the JIT (filling its cache) and notes every signature it calls
    os.environ["RTPLAN_ASSIST_KERNELS"] = "jit"
    from rtplan_assist.kernels import _jit

    with _jit.recording() as recorded:
        _workload(step)
    step(6, f"ahead-of-time build of the {len(recorded)} kernel signatures used (numba.pycc)")
    try:
        so = build_ahead_of_time(recorded)
    except Exception as exc:  # noqa: BLE001 - any build failure leaves the (working) JIT
        why = " ".join(str(exc).split())[:300]
        print(f"  ahead-of-time build failed ({type(exc).__name__}: {why}); the kernels run on "
              "Numba's JIT (about 0.35 s more per command; a C compiler and the Python "
              "headers are needed)", flush=True)
        so = None
    print(f"  [{steps}/{steps}] kernels compiled in {time.perf_counter() - t0:.0f} s "
          f"(JIT cache{f' and {so.name}' if so else ' only'})", flush=True)
    return 0


def _workload(step) -> None:
    step(1, "loading the demo patient and the DVH kernels")
    import numpy as np

    from rtplan_assist.app.prepare import build_evaluator
    from rtplan_assist.cli import main as cli
    from rtplan_assist.demo import demo_case_folder, write_demo_patient
    from rtplan_assist.dvh import compute_dvhs

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
    step(3, "composite EQD2 grid of the dose view; voxel occupancy (masks)")
    evaluator.composite_eqd2(recommendation.choice, 3.0)
    from rtplan_assist.structures import occupancy

    case = evaluator.case
    structure = next(s for s in case.structures if not s.is_empty)
    occupancy(structure, case.doses[0].grid)
    step(4, "dvh of every dose, and on a float64 dose grid")
    with tempfile.TemporaryDirectory(prefix="rtplan-precompile-") as tmp:
        quiet = contextlib.redirect_stderr(io.StringIO())
        with quiet:
            cli(["dvh", str(folder), "--dose", "all", "--out", str(Path(tmp) / "dvh.json")])
        dose = case.doses[0]
        compute_dvhs(list(case.structures), dose, dose_array=dose.dose_gy.astype(np.float64))
        step(5, "evaluate with an earlier course in another frame of reference; resampling; "
             "voxel-wise BED")
        patient = write_demo_patient(tmp, variant="prior-reg")
        with quiet:
            cli(["evaluate", str(patient), "--prior", f"{patient}-prior", "--format", "json",
                 "--out", str(Path(tmp) / "evaluate.json")])
    # what the demo does not reach: lesions on different dose grids (the composite resamples
    # them trilinearly) and voxel-wise BED with the LQ-L model, on a float32 and a float64 grid
    from rtplan_assist.kernels.eqd2 import bed_voxels
    from rtplan_assist.kernels.resample import resample_trilinear

    grid = dose.grid
    axes = (grid.z_mm, grid.y_mm, grid.x_mm)
    half = tuple((float(s) / 2, float(s) / 2) for s in grid.spacing[::-1])
    for values in (dose.dose_gy, dose.dose_gy.astype(np.float64)):
        resample_trilinear(values, axes, half, tuple(a + 1.0 for a in axes))
    # RTDOSE pixel data of every integer type a planning system writes (and float)
    from rtplan_assist.kernels.scale import scale_to_float32

    for kind in (np.uint16, np.uint32, np.int16, np.int32, np.float32, np.float64):
        scale_to_float32(np.arange(6, dtype=kind).reshape(1, 2, 3), 1e-4)
    flat = np.ascontiguousarray(dose.dose_gy, dtype=np.float64).ravel()
    for model in (None, 6.0):
        for to_eqd2 in (False, True):
            bed_voxels(flat, 5, 3.0, model, to_eqd2=to_eqd2)


def build_ahead_of_time(recorded: dict) -> Path:
    """Compile the recorded kernel signatures into one extension (``numba.pycc``) and write it
    with its manifest into ``kernels/__pycache__`` (``_jit.aot_paths``): the extension replaced
    atomically, the manifest written last, so that a reader never pairs a new manifest with an
    old module."""
    from rtplan_assist.kernels import _jit

    with warnings.catch_warnings():  # pycc is "pending deprecation" in Numba; see the README
        warnings.simplefilter("ignore")
        import numba.pycc.compiler as pycc_compiler
        from numba.pycc import CC

    entries: dict[str, dict[str, str]] = {}
    so_path, manifest_path = _jit.aot_paths()
    so_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rtplan-aot-", dir=so_path.parent) as tmp:
        cc = CC(_jit.AOT_MODULE)
        cc.output_dir = tmp
        for i, ((name, key), (k, argtypes)) in enumerate(sorted(recorded.items())):
            if key is None:
                continue  # an argument the key does not know: that call stays on the JIT
            cres = k.dispatcher.overloads[argtypes]
            export = f"k{i}"
            cc.export(export, cres.signature.return_type(*argtypes))(k.dispatcher.py_func)
            entries.setdefault(name, {})[key] = export
        # every kernel releases the GIL in the build (structures run on threads): pycc's
        # compiler takes its flags from this class, so it gets one with release_gil set
        real_flags = pycc_compiler.Flags

        class _NoGilFlags(real_flags):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.release_gil = True

        pycc_compiler.Flags = _NoGilFlags
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                cc.compile()
        finally:
            pycc_compiler.Flags = real_flags
        built = Path(tmp) / so_path.name
        manifest = dict(_jit.expected_manifest(), entries=entries)
        manifest_path.unlink(missing_ok=True)
        os.replace(built, so_path)
        part = Path(tmp) / manifest_path.name
        part.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        os.replace(part, manifest_path)
    return so_path


if __name__ == "__main__":
    sys.exit(main())
