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
    if argv[0] not in _available_commands():
        pytest.skip(f"rtplan-assist {argv[0]} is not part of this build")
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


def _available_commands() -> set[str]:
    from rtplan_assist.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)
