"""Batch tasks for tests/test_hostile_batch.py (module level: spawn workers import them)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rtplan_assist.batch import _error_record


def list_folder(task: dict) -> dict:
    """Evaluates nothing: an 'error' record whose reason lists the folder's files."""
    files = sorted(p.name for p in Path(task["folder"]).rglob("*"))
    return _error_record(task["label"], "files: " + ",".join(files), 0.0)


def sleepy(task: dict) -> dict:
    """Writes its worker's pid next to the batch output, then sleeps for a minute."""
    Path(os.environ["HOSTILE_PID_DIR"], f"{os.getpid()}.pid").write_text(str(os.getpid()))
    time.sleep(60)
    return _error_record(task["label"], "slept", 60.0)
