"""Fuzzing, part 3: the command line on mutated inputs (issue 6).

``rtplan-assist dvh`` and ``evaluate`` on mutated cases exit 0, 1 or 2, never 70 (the
dispatcher's "internal error": a bug); bad input is reported on exactly one stderr line
``rtplan-assist: error: ...``; every stderr line is one of the CLI's own (no traceback).
The commands run in this process through :func:`rtplan_assist.cli.main` (the console
script's entry point); two cases also run the installed console script end to end.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
from fuzz import harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtplan_assist.cli import EXIT_INTERNAL, main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CLI = Path(sys.executable).with_name("rtplan-assist")


#: Lines Python's warnings module prints for pydicom's value warnings ("file.py:440:
#: UserWarning: Invalid value for VR IS: 'abc'" and the source line under it). They are not
#: the CLI's; see test_console_script_prints_only_its_own_lines.
WARNING_LINE = re.compile(r"^\S+\.py:\d+: \w*Warning: |^  ")


def check_streams(code: int, err: str, *, allow_python_warnings: bool = False) -> None:
    lines = err.strip().splitlines()
    if allow_python_warnings:
        lines = [line for line in lines if not WARNING_LINE.match(line)]
    assert code != EXIT_INTERNAL, err
    assert code in (0, 1, 2), (code, err)
    assert "internal error" not in err and "Traceback" not in err, err
    assert all(line.startswith("rtplan-assist: ") for line in lines), err
    errors = [line for line in lines if line.startswith("rtplan-assist: error:")]
    if errors:
        assert code == 2 and lines == errors and len(errors) == 1, err


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    with harness.time_limit(harness.CASE_TIME_LIMIT_S):
        code = main(argv)
    return code, capsys.readouterr().err


def test_cli_on_mutated_cases(capsys, fuzz_scale):
    mutations = sorted(harness.STRUCTURED)
    byte_mutations = sorted(harness.BYTE_MUTATIONS)

    @settings(
        max_examples=40 * fuzz_scale,
        deadline=None,
        derandomize=fuzz_scale == 1,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        structured=st.booleans(),
        names=st.lists(st.sampled_from(mutations), min_size=1, max_size=2),
        byte_mutation=st.sampled_from(byte_mutations),
        role=st.sampled_from(["struct", "dose", "plan"]),
        seed=st.integers(0, 2**32 - 1),
    )
    def check(structured, names, byte_mutation, role, seed):
        with tempfile.TemporaryDirectory(prefix="rtpa-fuzz-") as tmp:
            folder = Path(tmp) / "case"
            if structured:
                try:
                    harness.write_case(harness.mutated_case(names, seed), folder)
                except harness.Unwritable:
                    return
            else:
                paths = harness.write_case(harness.base_datasets(), folder)
                target = next(p for p in paths if p.stem == role)
                target.write_bytes(harness.mutate_bytes(target.read_bytes(), byte_mutation, seed))
            out = Path(tmp) / "out"
            code, err = run_cli(["dvh", str(folder), "--out", str(out / "dvh.json")], capsys)
            check_streams(code, err)
            code, err = run_cli(
                ["evaluate", str(folder), "--format", "csv", "--out", str(out / "ev.csv")], capsys
            )
            check_streams(code, err)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check()


@pytest.mark.parametrize("mutation", ["d_huge_header", "p_fractions"])
def test_console_script_end_to_end(tmp_path, mutation):
    folder = tmp_path / "case"
    harness.write_case(harness.mutated_case([mutation], 1), folder)
    proc = subprocess.run(
        [str(CLI), "evaluate", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    check_streams(proc.returncode, proc.stderr, allow_python_warnings=True)
    assert proc.returncode == 2 and proc.stdout == ""


def test_console_script_prints_only_its_own_lines(tmp_path):
    folder = tmp_path / "case"
    harness.write_case(harness.mutated_case(["p_fractions"], 1), folder)
    proc = subprocess.run(
        [str(CLI), "evaluate", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    check_streams(proc.returncode, proc.stderr)


def test_batch_on_a_root_of_mutated_patients(tmp_path, capsys, fuzz_scale):
    """``batch`` over damaged patient folders: exit 2 (never 70), one summary row per folder,
    an error row with a reason for each folder that cannot be evaluated."""
    import csv
    import random

    rng = random.Random(6)
    root = tmp_path / "root"
    mutations = sorted(harness.STRUCTURED)
    n_folders = 12 * fuzz_scale
    for k in range(n_folders):
        folder = root / f"p{k:03d}"
        pid = f"FUZZ{k:03d}"
        for _ in range(5):
            names = rng.sample(mutations, rng.choice([1, 2]))
            try:
                harness.write_case(harness.mutated_case(names, rng.randrange(2**32), pid), folder)
                break
            except harness.Unwritable:
                continue
        if k % 3 == 0:  # and byte-level damage in a third of them
            target = folder / "dose.dcm"
            if target.is_file():
                data = target.read_bytes()
                name = rng.choice(sorted(harness.BYTE_MUTATIONS))
                target.write_bytes(harness.mutate_bytes(data, name, rng.randrange(2**32)))
    out = tmp_path / "out"
    argv = ["batch", str(root), "--out", str(out), "--workers", "0", "--report-format", "none",
            "--no-progress"]
    code, err = run_cli(argv, capsys)
    assert code in (0, 1, 2) and "internal error" not in err and "Traceback" not in err, err
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    folders = {r["folder"] for r in rows}
    assert len(rows) == len(folders), "a folder has several summary rows"
    assert all(r["status"] != "error" or r.get("error") for r in rows), rows
    # a second run (resume; error folders are retried): the same rows, none lost or doubled
    code2, _ = run_cli(argv, capsys)
    keys = ("folder", "patient_id", "status", "verdict", "error")
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        again = [{k: r[k] for k in keys} for r in csv.DictReader(fh)]
    assert again == [{k: r[k] for k in keys} for r in rows]
    assert code2 == code
