"""Nothing lost (issue 6, part 2): inputs are byte-identical after every command, are never
opened for writing, and outputs leave no temporary files behind.

Each command runs in this process through :func:`rtplan_assist.cli.main` on a demo patient
while ``open``/``io.open``/``os.open`` are wrapped to record any write-mode open of a path
under the input folder (running as root, a read-only ``chmod`` would not stop a write).
The SHA-256 of every input file is compared before and after. ``batch`` runs with
``--workers 0`` (serial, in this process) so the recorder sees its opens too.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from rtplan_assist.cli import main
from rtplan_assist.dicom import load_case, load_ct_pixels

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def tree_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path (the listing is compared too)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class WriteRecorder:
    """Records write-mode opens of paths under ``root`` (the calls still go through)."""

    def __init__(self, root: Path, monkeypatch):
        self.root = str(Path(root).resolve())
        self.writes: list[tuple[str, str]] = []
        real_open, real_io_open, real_os_open = builtins.open, io.open, os.open

        def under_root(file) -> bool:
            if isinstance(file, int):
                return False
            try:
                return os.path.realpath(os.fsdecode(file)).startswith(self.root)
            except (TypeError, ValueError):
                return False

        def checked_open(file, mode="r", *args, **kwargs):
            if any(c in str(mode) for c in "wax+") and under_root(file):
                self.writes.append((os.fsdecode(file), str(mode)))
            return real_open(file, mode, *args, **kwargs)

        def checked_io_open(file, mode="r", *args, **kwargs):
            if any(c in str(mode) for c in "wax+") and under_root(file):
                self.writes.append((os.fsdecode(file), str(mode)))
            return real_io_open(file, mode, *args, **kwargs)

        def checked_os_open(path, flags, *args, **kwargs):
            if flags & WRITE_FLAGS and under_root(path):
                self.writes.append((os.fsdecode(path), f"os.open flags {flags:#o}"))
            return real_os_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", checked_open)
        monkeypatch.setattr(io, "open", checked_io_open)
        monkeypatch.setattr(os, "open", checked_os_open)


def leftovers(out: Path) -> list[str]:
    """Temporary or hidden files left in an output folder (atomic writes rename theirs)."""
    return [
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file() and (p.name.startswith(".") or p.suffix in (".tmp", ".part"))
    ]


@pytest.fixture(scope="module")
def patient(leakcheck_patient) -> Path:
    return leakcheck_patient


COMMANDS = {
    "dvh json (folder)": lambda p, out: ["dvh", str(p), "--dose", "RD.L1.dcm",
                                         "--out", str(out / "dvh.json")],
    "dvh csv (files)": lambda p, out: ["dvh", str(p / "RS.dcm"), str(p / "RD.L2.dcm"),
                                       "--format", "csv", "--out", str(out / "dvh.csv")],
    "evaluate": lambda p, out: ["evaluate", str(p), "--format", "json",
                                "--out", str(out / "evaluation.json")],
    "batch": lambda p, out: ["batch", str(p.parent), "--out", str(out / "batch"), "--workers",
                             "0", "--report-format", "none", "--no-progress"],
    "report": lambda p, out: ["report", str(p), "--out", str(out / "report.html")],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_command_leaves_inputs_untouched(command, patient, tmp_path, monkeypatch, capsys):
    argv = COMMANDS[command](patient, tmp_path)
    before = tree_hashes(patient.parent)
    recorder = WriteRecorder(patient.parent, monkeypatch)
    code = main(argv)
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code in (0, 1), err
    assert recorder.writes == [], recorder.writes
    assert tree_hashes(patient.parent) == before
    assert leftovers(tmp_path) == []
    assert any(p.is_file() for p in tmp_path.rglob("*")), "the command wrote no output"


def test_loader_and_ct_pixels_leave_inputs_untouched(patient, monkeypatch):
    before = tree_hashes(patient)
    recorder = WriteRecorder(patient, monkeypatch)
    case = load_case(patient)
    hu = load_ct_pixels(case.ct)
    load_case([patient / "RS.dcm", patient / "RD.L3.dcm", patient / "RP.L3.dcm"])
    monkeypatch.undo()
    assert hu.shape == case.ct.grid.shape
    assert recorder.writes == []
    assert tree_hashes(patient) == before


def test_recorder_sees_a_write(tmp_path, monkeypatch):
    # The recorder itself: a write under the root is recorded, a read is not.
    (tmp_path / "a.txt").write_text("x")
    recorder = WriteRecorder(tmp_path, monkeypatch)
    with open(tmp_path / "a.txt") as fh:
        fh.read()
    with open(tmp_path / "b.txt", "w") as fh:
        fh.write("y")
    fd = os.open(tmp_path / "c.txt", os.O_WRONLY | os.O_CREAT)
    os.close(fd)
    monkeypatch.undo()
    assert [Path(p).name for p, _ in recorder.writes] == ["b.txt", "c.txt"]


def test_atomic_output_replaces_in_one_step_and_cleans_up(tmp_path, monkeypatch, patient):
    # A failing run after the output exists: the old output stays whole, no temp file is left.
    out = tmp_path / "dvh.json"
    assert main(["dvh", str(patient), "--dose", "RD.L1.dcm", "--out", str(out)]) == 0
    good = out.read_bytes()

    from rtplan_assist import outputs

    def interrupted(fd):
        raise KeyboardInterrupt  # Ctrl-C after the temporary file is written, before rename

    monkeypatch.setattr(outputs.os, "fsync", interrupted)
    assert main(["dvh", str(patient), "--dose", "RD.L1.dcm", "--out", str(out)]) == 130
    monkeypatch.undo()
    assert out.read_bytes() == good
    assert leftovers(tmp_path) == []


# -- an app session (issue 6): the same guarantee through the web app ------------------------------
def tree_stats(folder: Path) -> dict[str, tuple[int, int, int, int]]:
    """(size, mode, mtime, ctime) in ns of ``folder`` and everything under it: a file rewritten
    with the same bytes, or a temporary file created and removed, changes a time."""
    entries = [folder, *sorted(folder.rglob("*"))]
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mode,
                                         p.stat().st_mtime_ns, p.stat().st_ctime_ns)
            for p in entries}


def _zip_data_url(files: list[Path]) -> str:
    import base64
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for f in files:
            archive.write(f, f.name)
    return "data:application/zip;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_app_session_leaves_inputs_untouched(patient, app_cache, monkeypatch):
    """Open the patient in the app, change and add regimens, view the DVH, the dose (CT read)
    and the composite, export the CSV and the PDF, upload a copy of it and open the copy: every
    request a browser would send (app_http.py), to the real app served on 127.0.0.1.

    The preparation runs in a fresh interpreter (as the background job runs it), where the
    recorder cannot see; the hashes and the times of every file and folder cover it."""
    from app_http import callback_payload, post_callback, screen_payloads, serve
    from rtplan_assist.app import create_app

    root = patient.parent
    hashes, stats = tree_hashes(root), tree_stats(root)
    recorder = WriteRecorder(root, monkeypatch)
    app = create_app(patient, cache_dir=app_cache)
    state = app.rtplan_state
    key, session = state.entries[0].key, "immutability"
    state.prepare(state.entries[0])
    loaded = {"key": key}
    choices = {key: {"choice": {"L2": "49 Gy/7", "L5": "30 Gy/5"}, "added": {"L2": ["49 Gy/7"]}}}
    requests = screen_payloads(app, key=key, session=session, choices=choices)
    requests |= {
        "upload a copy": callback_payload(app, "patient.data", {
            "session-id.data": session, "patient-picker.value": key,
            "upload.contents": [_zip_data_url([patient / n for n in
                                               ("RS.dcm", "RP.L3.dcm", "RD.L3.dcm")])],
            "upload.filename": ["copy.zip"], "patient.data": loaded}, "upload.contents"),
    }
    answers = {}
    with serve(app) as (url, log):
        for what, payload in requests.items():
            status, answers[what], _ = post_callback(url, payload)
            assert status == 200, (what, answers[what])
        upload_key = answers["upload a copy"]["response"]["patient"]["data"]["key"]
        upload = state.entry(upload_key, session)
        state.prepare(upload)
        status, answers["open the copy"], _ = post_callback(url, callback_payload(
            app, "overview-content.children", {"loaded.data": {"key": upload_key},
                                               "choices.data": {}, "session-id.data": session},
            "loaded.data"))
        assert status == 200
    monkeypatch.undo()

    text = {what: json.dumps(answer) for what, answer in answers.items()}
    assert "LEAKCHECK-12345" in text["overview"] and "LEAKCHECK-12345" in text["open the copy"]
    assert "49 Gy/7" in text["added regimen"] and "48 Gy/4" in text["regimen change"]
    assert "LEAKCHECK-12345" in answers["CSV"]["response"]["download-csv"]["data"]["content"]
    pdf = answers["PDF"]["response"]["download-pdf"]["data"]
    assert pdf["base64"] and pdf["content"].startswith("JVBER")  # base64 of "%PDF"
    assert upload.folder.is_relative_to(state.upload_root)
    assert log.messages() == []
    assert recorder.writes == [], recorder.writes
    assert tree_hashes(root) == hashes
    assert tree_stats(root) == stats
    state.close()
