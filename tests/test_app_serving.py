"""Serving the app (issue 15): preparation progress as percentage and step count."""

from __future__ import annotations

from rtplan_assist.app.callbacks.patient import progress_text


def test_progress_text_says_percent_and_step():
    assert progress_text(4, 10, "L1 at 54 Gy/3: DVHs and constraints") == (
        "40 % · step 4 of 10 · L1 at 54 Gy/3: DVHs and constraints")
    assert progress_text(0, 0, "reading the DICOM files").startswith("0 % · step 0 of 1 ·")
    assert progress_text(53, 53, "done").startswith("100 % · step 53 of 53")
