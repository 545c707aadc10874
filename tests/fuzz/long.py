"""Long fuzzing run: draw structured and byte-level mutations until the time is up.

Usage (from the project root)::

    .venv/bin/python tests/fuzz/long.py --minutes 30 [--seed 1] [--out findings.txt]

Each case runs in this process under the harness guards (time, memory). The run prints one
line per untyped exception, timeout or broken invariant (the mutation and seed that
reproduce it) and a summary; the exit code is 1 when anything was found, else 0.
Reproduce a finding with ``harness.mutated_case(names, seed)`` or
``harness.mutate_bytes(data, name, seed)``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import harness  # type: ignore[no-redef]
else:
    from . import harness


def real_files() -> list[tuple[str, Path, list[Path]]]:
    """(label, file to mutate, companion files) from pydicom's test files and ../shared/data."""
    from pydicom.data import get_testdata_file

    out = []
    for name in ("rtstruct.dcm", "rtdose.dcm", "rtplan.dcm"):
        path = get_testdata_file(name)
        if path:
            out.append((f"pydicom/{name}", Path(path), []))
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    dcp = shared / "dicompyler-core-example"
    if dcp.is_dir():
        for name in ("rtss.dcm", "rtplan.dcm", "rtdose.dcm"):
            companions = [dcp / n for n in ("rtss.dcm", "rtplan.dcm") if n != name]
            out.append((f"dicompyler/{name}", dcp / name, companions))
    for rel in ("pymedphys-orientation/rtdose_non_square_pixels.dcm",
                "rt-utils-mock/mock_data/rt.dcm", "rt-utils-mock/empty/dummy_rt.dcm",
                "rt-utils-mock/mock_data/ct_1.dcm", "nelms-dvh/structures/Sphere_20_0.dcm",
                "nelms-dvh/dose/Linear_AntPost_3mm_Aligned.dcm"):
        if (shared / rel).is_file():
            out.append((rel, shared / rel, []))
    return out


def run_one(paths, *, evaluate: bool) -> str | None:
    """None when the case ended as the contract says, else a description of the failure."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            harness.run_pipeline(paths, evaluate=evaluate)
    except harness.FuzzTimeout as exc:
        return f"timeout: {exc}"
    except AssertionError as exc:
        return f"invariant: {exc}"
    except Exception as exc:  # noqa: BLE001 - this is what the run looks for
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if "/rtplan_assist/" in f.filename or "/kernels/" in f.filename]
        frame = (ours or frames)[-1]
        return f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}: {exc}"[:400]
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--out", type=Path, help="also append findings to this file")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # pydicom's value warnings are expected here

    rng = random.Random(args.seed)
    deadline = time.monotonic() + 60.0 * args.minutes
    seeds = real_files()
    found: Counter[str] = Counter()
    n_cases = 0
    kinds: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="rtpa-fuzz-") as tmp:
        tmp_path = Path(tmp)
        base_bytes = harness.base_case_bytes(tmp_path / "base")
        while time.monotonic() < deadline:
            n_cases += 1
            case_dir = tmp_path / f"case{n_cases}"
            seed = rng.randrange(2**32)
            if rng.random() < 0.6:
                names = rng.sample(sorted(harness.STRUCTURED), rng.choice([1, 1, 2, 3]))
                label = f"structured {names} seed={seed}"
                try:
                    harness.write_case(harness.mutated_case(names, seed), case_dir)
                except harness.Unwritable:
                    kinds["unwritable"] += 1
                    shutil.rmtree(case_dir)
                    continue
                evaluate = True
            else:
                name = rng.choice(sorted(harness.BYTE_MUTATIONS))
                if rng.random() < 0.5 or not seeds:
                    role = rng.choice(sorted(base_bytes))
                    files = dict(base_bytes)
                    files[role] = harness.mutate_bytes(files[role], name, seed)
                    label = f"bytes base/{role} {name} seed={seed}"
                    evaluate = True
                else:
                    src_label, src, companions = rng.choice(seeds)
                    files = {p.stem: p.read_bytes() for p in companions}
                    files[src.stem] = harness.mutate_bytes(src.read_bytes(), name, seed)
                    label = f"bytes {src_label} {name} seed={seed}"
                    evaluate = False
                case_dir.mkdir()
                for stem, data in files.items():
                    (case_dir / f"{stem}.dcm").write_bytes(data)
            failure = run_one(case_dir, evaluate=evaluate)
            kinds[label.split(" ")[0]] += 1
            if failure:
                key = failure.split(":")[0] + ":" + failure.split(" at ")[-1].split(":")[0]
                if not found[key]:
                    line = f"{label}: {failure}"
                    print(line, flush=True)
                    if args.out:
                        with open(args.out, "a", encoding="utf-8") as fh:
                            fh.write(line + "\n")
                found[key] += 1
            shutil.rmtree(case_dir)
    print(f"{n_cases} cases ({dict(kinds)}) in {args.minutes:g} min, seed {args.seed}; "
          f"{sum(found.values())} failures of {len(found)} kinds", flush=True)
    for key, count in found.most_common():
        print(f"  {count:5d}  {key}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
