"""One status vocabulary and one palette for every output (text, HTML, report, app).

A row's ``status`` is one of :data:`STATUSES`; a verdict one of :data:`VERDICTS`; a
constraint's priority one of :data:`PRIORITIES`. :func:`status_style` gives the words and the
colours every renderer uses; colour is never the only cue (the text goes with it).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "PRIORITIES",
    "PRIORITY_RANK",
    "STATUSES",
    "STATUS_STYLE",
    "VERDICTS",
    "StatusStyle",
    "status_style",
]

#: Status of one evaluated row.
STATUSES = ("pass", "goal missed", "fail", "not evaluable", "info")
#: Verdict of a plan or a composite (:func:`rtplan_assist.evaluation.rows_verdict`).
VERDICTS = ("pass", "fail", "not evaluable")
#: Priority of a constraint row, strictest first.
PRIORITIES = ("mandatory", "optimal", "report")
PRIORITY_RANK = {name: rank for rank, name in enumerate(PRIORITIES)}


@dataclass(frozen=True)
class StatusStyle:
    """How a status is shown.

    Attributes
    ----------
    text : str
        In tables and reports (``FAIL`` stands out in upper case).
    badge : str
        Short upper-case label for badges.
    colour : str
        Strong colour (hex) for a badge or a marker on white.
    background : str
        Light colour (hex) for a table row or cell with dark text.
    """

    text: str
    badge: str
    colour: str
    background: str


STATUS_STYLE = {
    "pass": StatusStyle("pass", "PASS", "#198754", "#d3f0da"),
    "goal missed": StatusStyle("goal missed", "GOAL MISSED", "#e0a800", "#ffeeba"),
    "fail": StatusStyle("FAIL", "FAIL", "#dc3545", "#f5b7b1"),
    "not evaluable": StatusStyle("not evaluable", "N/E", "#6c757d", "#e2e3e5"),
    "info": StatusStyle("info", "INFO", "#0d6efd", "#e3f0fb"),
}


def status_style(status: str) -> StatusStyle:
    """The style of ``status``; an unknown one is shown as it is, in grey on white."""
    return STATUS_STYLE.get(status) or StatusStyle(
        status, status.upper() or "?", "#6c757d", "#ffffff"
    )
