"""Hostile batch roots (issue 18): grouping by folder, dangling links, unreadable folders,
workers that must die with their batch, formula cells, batch-level errors in one line."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hostile_tasks import list_folder
from test_dicom_synthetic import square, write_struct

from rtplan_assist.batch import evaluate_patient, patient_folders, run_batch
from rtplan_assist.cli import main


def _patient(folder: Path, pid: str = "SAME-ID") -> Path:
    write_struct(folder / "RS.dcm", [(1, "PTV", "PTV", [("CLOSED_PLANAR", square(0.0))])],
                 patient_id=pid)
    return folder


def test_one_patient_id_in_sibling_folders_stays_two_patients(tmp_path):
    # On main the root collapsed into one patient "." holding both copies.
    root = tmp_path / "root"
    _patient(root / "SMITH_2023")
    _patient(root / "SMITH_2024")
    assert patient_folders(root) == [root / "SMITH_2023", root / "SMITH_2024"]
    summary = run_batch(root, tmp_path / "out", workers=0, progress=False,
                        report_format=None, task=list_folder)
    assert [r["folder"] for r in summary.records] == ["SMITH_2023", "SMITH_2024"]


def test_damaged_copy_does_not_block_the_good_one(tmp_path):
    root = tmp_path / "root"
    _patient(root / "good")
    bad = _patient(root / "copy")
    data = (bad / "RS.dcm").read_bytes()
    (bad / "RS.dcm").write_bytes(data[: len(data) // 3])
    assert patient_folders(root) == [root / "copy", root / "good"]


def test_dangling_link_is_an_error_row_not_a_stopped_batch(tmp_path, capsys):
    # On main: exit 70 "internal error FileNotFoundError" and no output at all.
    root = tmp_path / "root"
    _patient(root / "A", "A1")
    _patient(root / "B", "B1")
    (root / "B" / "RD.dcm").symlink_to(tmp_path / "gone.dcm")
    code = main(["batch", str(root), "--out", str(tmp_path / "out"), "--workers", "0",
                 "--report-format", "none", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "internal error" not in err
    rows = list(csv.DictReader((tmp_path / "out" / "summary.csv").open()))
    assert [r["folder"] for r in rows] == ["A", "B"]
    assert rows[1]["status"] == "error" and "RD.dcm: dangling link" in rows[1]["error"]


def test_unreadable_folder_gets_an_error_row(tmp_path, monkeypatch):
    root = tmp_path / "root"
    _patient(root / "A", "A1")
    locked = root / "LOCKED"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path="."):  # what a folder without read permission does (tests run as root)
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert locked in patient_folders(root)
    record = evaluate_patient({"folder": str(locked), "rel": "LOCKED", "tables": None})
    assert record["status"] == "error" and "Permission denied" in record["error"]


def test_formula_names_are_neutralised_in_csv(tmp_path):
    root = tmp_path / "root"
    _patient(root / "=HYPERLINK(1)", "P1")
    run_batch(root, tmp_path / "out", workers=0, progress=False, report_format=None,
              task=list_folder)
    text = (tmp_path / "out" / "summary.csv").read_text()
    assert "'=HYPERLINK(1)" in text and "\n=HYPERLINK" not in text


def test_unwritable_out_is_one_line_exit_2(tmp_path, capsys):
    root = tmp_path / "root"
    _patient(root / "A", "A1")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["batch", str(root), "--out", str(blocker / "out"), "--workers", "0",
                 "--report-format", "none", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "internal error" not in err and len(err.strip().splitlines()) == 1


def test_deidentified_batch_error_names_no_sub_folder(tmp_path, capsys):
    root = tmp_path / "root"
    _patient(root / "DOE_JANE", "P1")
    # --out inside ROOT is refused with a message naming both paths
    code = main(["batch", str(root), "--out", str(root / "DOE_JANE" / "out"), "--workers",
                 "0", "--report-format", "none", "--no-progress", "--deidentify"])
    err = capsys.readouterr().err
    assert code == 2 and "DOE_JANE" not in err and str(root) not in err


_DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from hostile_tasks import sleepy
    from rtplan_assist.batch import run_batch
    from rtplan_assist.cli_batch import _terminate_as_interrupt
    _terminate_as_interrupt()
    try:
        run_batch({root!r}, {out!r}, workers=2, progress=False, report_format=None,
                  task=sleepy)
    except KeyboardInterrupt:
        sys.exit(130)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is gone for our purpose
        return fh.read().split()[2] != "Z"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_workers_die_with_their_batch(tmp_path, how):
    # On main SIGTERM (and SIGKILL) to the batch left its pool workers running forever.
    root = tmp_path / "root"
    _patient(root / "A", "A1")
    _patient(root / "B", "B1")
    pids = tmp_path / "pids"
    pids.mkdir()
    script = _DRIVER.format(tests=str(Path(__file__).parent), root=str(root),
                            out=str(tmp_path / "out"))
    proc = subprocess.Popen([sys.executable, "-c", script],
                            env={**os.environ, "HOSTILE_PID_DIR": str(pids)})
    try:
        deadline = time.monotonic() + 60
        while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = [int(p.read_text()) for p in pids.iterdir()]
        assert len(workers) == 2
        proc.send_signal(how)
        code = proc.wait(timeout=20)
        if how == signal.SIGTERM:
            assert code == 130
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers)
    finally:
        proc.kill()
        for p in pids.iterdir():
            try:
                os.kill(int(p.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
