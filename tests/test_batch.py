"""Batch: rows per patient, error rows, exit codes, resume, atomic outputs, Dask = pool."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rtplan_assist.batch import EXIT_ERRORS, EXIT_FAIL, run_batch
from rtplan_assist.cli import main
from rtplan_assist.demo import write_demo_patient

GOOD = ("RTPA-DEMO-0001", "RTPA-DEMO-0002", "RTPA-DEMO-0003")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, copy_function=shutil.copy2)  # keeps mtimes: same fingerprint
    return dst


@pytest.fixture(scope="session")
def demo_patients(tmp_path_factory) -> Path:
    """Three demo patients (seeds 1-3), generated once."""
    folder = tmp_path_factory.mktemp("demo-patients")
    for seed in (1, 2, 3):
        write_demo_patient(folder, seed=seed)
    return folder


def _make_bad(root: Path, template: Path) -> None:
    # a patient whose structure set is truncated (a damaged transfer)
    corrupt = _copy(template, root / "corrupt")
    data = (template / "RS.dcm").read_bytes()
    (corrupt / "RS.dcm").write_bytes(data[: len(data) // 3])
    # a patient exported without its structure set
    no_rs = _copy(template, root / "no-rtstruct")
    (no_rs / "RS.dcm").unlink()


@pytest.fixture(scope="session")
def mixed_root(demo_patients, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mixed") / "root"
    root.mkdir()
    for name in GOOD:
        _copy(demo_patients / name, root / name)
    _make_bad(root, demo_patients / GOOD[0])
    return root


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def pool_run(mixed_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("out-pool")
    before = _hashes(mixed_root)
    summary = run_batch(mixed_root, out, workers=2, progress=False, report_format="pdf")
    return out, summary, before


def test_rows_errors_and_exit_code(pool_run, mixed_root):
    out, summary, before = pool_run
    assert _hashes(mixed_root) == before  # inputs byte-identical
    assert summary.exit_code == EXIT_ERRORS  # two patients could not be evaluated
    rows = _read_csv(out / "summary.csv")
    by_folder = {r["folder"]: r for r in rows}
    assert set(by_folder) == set(GOOD) | {"corrupt", "no-rtstruct"}
    for name in GOOD:
        assert by_folder[name]["status"] == "evaluated"
        assert by_folder[name]["patient_id"] == name
        assert by_folder[name]["n_lesions"] == "5"
        # the demo's planned regimens fail mandatory limits (L2/L3 oesophagus, L5 cord)
        assert by_folder[name]["verdict"] == "fail"
        assert "Esophagus" in by_folder[name]["failing_constraints"]
        assert (out / by_folder[name]["report"]).read_bytes()[:5] == b"%PDF-"
    assert by_folder["corrupt"]["status"] == "error"
    assert "RS.dcm" in by_folder["corrupt"]["error"]
    assert by_folder["no-rtstruct"]["status"] == "error"
    assert "no RTSTRUCT" in by_folder["no-rtstruct"]["error"]

    metrics = _read_csv(out / "metrics.csv")
    results = json.loads((out / "results.json").read_text())
    per_patient = {p["folder"]: p for p in results["patients"]}
    for name in GOOD:
        mine = [m for m in metrics if m["folder"] == name]
        result = per_patient[name]["result"]
        # one tidy row per lesion row and composite row of the evaluation (planned regimens:
        # every lesion row is at its planned regimen)
        assert len(mine) == len(result["rows"]) + len(result["composite_rows"]) > 100
        assert {m["lesion_id"] for m in mine} == {"L1", "L2", "L3", "L4", "L5", "composite"}
        planned = {"L1": "54 Gy/3", "L2": "60 Gy/8", "L3": "50 Gy/5", "L4": "50 Gy/5",
                   "L5": "27 Gy/3"}
        assert all(m["regimen"] == planned[m["lesion_id"]] for m in mine
                   if m["lesion_id"] != "composite")
    for name in ("corrupt", "no-rtstruct"):
        mine = [m for m in metrics if m["folder"] == name]
        assert len(mine) == 1 and mine[0]["status"] == "error" and mine[0]["reason"]
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporary


def test_rerun_skips_unchanged_and_recomputes_modified(pool_run, mixed_root):
    out, first, _ = pool_run
    metrics = (out / "metrics.csv").read_bytes()
    again = run_batch(mixed_root, out, workers=2, progress=False, report_format="pdf")
    assert again.n_reused == 3 and again.exit_code == first.exit_code  # errors are retried
    assert (out / "metrics.csv").read_bytes() == metrics
    # touch one input file: only that patient is recomputed
    touched = mixed_root / GOOD[1] / "RP.L1.dcm"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    third = run_batch(mixed_root, out, workers=2, progress=False, report_format="pdf")
    reused = {r["folder"]: r["reused"] for r in third.records}
    assert reused == {GOOD[0]: True, GOOD[1]: False, GOOD[2]: True, "corrupt": False,
                      "no-rtstruct": False}
    assert (out / "metrics.csv").read_bytes() == metrics  # same data, same rows
    assert not list(out.rglob("*.tmp"))


def test_dask_local_cluster_gives_the_same_rows(pool_run, mixed_root, tmp_path):
    pytest.importorskip("distributed")
    out, _, _ = pool_run
    summary = run_batch(mixed_root, tmp_path, workers=2, scheduler="local", progress=False,
                        report_format=None)
    assert summary.executor.startswith("Dask LocalCluster")
    assert summary.exit_code == EXIT_ERRORS
    # identical tidy rows (reports off: the report column is empty in summary.csv only)
    assert (tmp_path / "metrics.csv").read_bytes() == (out / "metrics.csv").read_bytes()


def test_out_inside_root_is_refused(mixed_root, capsys):
    assert main(["batch", str(mixed_root), "--out", str(mixed_root / GOOD[0] / "out")]) == 2
    assert "inside ROOT" in capsys.readouterr().err
    assert not (mixed_root / GOOD[0] / "out").exists()


def test_interrupted_batch_resumes_without_duplicates(demo_patients, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    for name in GOOD[:2]:
        _copy(demo_patients / name, root / name)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rtplan_assist.cli", "batch", str(root), "--out", str(out),
           "--workers", "1", "--report-format", "none", "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list((out / "patients").glob("*.json")) and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # our own process group: the CLI and its pool worker
    proc.wait(timeout=30)
    assert len(list((out / "patients").glob("*.json"))) == 1  # killed after the first patient
    assert not (out / "metrics.csv").exists()  # aggregates come at the end
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == EXIT_FAIL, done.stderr  # both evaluated, planned doses fail
    assert "1 unchanged and reused" in done.stderr, done.stderr
    summary = _read_csv(out / "summary.csv")
    assert sorted(r["folder"] for r in summary) == list(GOOD[:2])
    metrics = _read_csv(out / "metrics.csv")
    keys = [(m["folder"], m["lesion_id"], m["regimen"], m["structure"], m["organ"], m["metric"],
             m["source"], m["kind"]) for m in metrics]
    assert len(keys) == len(set(keys))  # no duplicate row
    assert {m["folder"] for m in metrics} == set(GOOD[:2])
    assert not list(out.rglob("*.tmp"))


@pytest.mark.slow
def test_twenty_patients_one_corrupt_one_without_rtstruct(demo_patients, tmp_path):
    """The issue's acceptance run: 20 demo-like patients (the three seeds, copied under 20
    folder names), one with a truncated RTSTRUCT, one without RTSTRUCT."""
    root = tmp_path / "root"
    root.mkdir()
    for i in range(20):
        _copy(demo_patients / GOOD[i % 3], root / f"patient-{i:02d}")
    _make_bad(root, demo_patients / GOOD[0])
    before = _hashes(root)
    out = tmp_path / "out"
    code = main(["batch", str(root), "--out", str(out), "--workers", "2", "--report-format",
                 "none", "--no-progress"])
    assert code == EXIT_ERRORS
    assert _hashes(root) == before
    summary = _read_csv(out / "summary.csv")
    assert len(summary) == 22
    assert sum(r["status"] == "evaluated" for r in summary) == 20
    errors = {r["folder"]: r["error"] for r in summary if r["status"] == "error"}
    assert set(errors) == {"corrupt", "no-rtstruct"} and all(errors.values())
    metrics = _read_csv(out / "metrics.csv")
    counts = {}
    for m in metrics:
        counts[m["folder"]] = counts.get(m["folder"], 0) + 1
    assert counts["corrupt"] == counts["no-rtstruct"] == 1
    # copies of one seed give the same number of rows
    for i in range(20):
        assert counts[f"patient-{i:02d}"] == counts[f"patient-{i % 3:02d}"] > 100
