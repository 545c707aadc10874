"""Issue 14: ``evaluate --format html`` shows one row per organ by default and keeps every row
behind collapsed ``<details>`` (the page was 180,000 px tall); organ summaries on constructed
rows (which row is closest to its limit follows from the numbers written below)."""

from __future__ import annotations

import math
from html.parser import HTMLParser

from test_reasons import row

from rtplan_assist.evaluation import result_to_html
from rtplan_assist.evaluation.output import organ_summary


class _Rows(HTMLParser):
    """Counts table rows outside and inside ``<details>``."""

    def __init__(self):
        super().__init__()
        self.depth = 0
        self.visible = 0
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag == "details":
            self.depth += 1
        elif tag == "tr":
            if self.depth:
                self.hidden += 1
            else:
                self.visible += 1

    def handle_endtag(self, tag):
        if tag == "details":
            self.depth -= 1


def test_html_one_row_per_organ_every_row_collapsed(demo_evaluation):
    _, result = demo_evaluation
    parser = _Rows()
    parser.feed(result_to_html(result))
    n_rows = len(result.rows) + len(result.composite_rows) + len(result.chosen_rows())
    # every row is in a collapsed table (with one header row per table)
    assert parser.hidden >= n_rows
    regimens = len({(r.lesion_id, r.regimen) for r in result.rows})
    organs = len({r.structure for r in result.rows if r.structure})
    # visible: the lesion × regimen table and one row per present organ per lesion and for
    # the composite, plus header rows; nothing close to the 3,000+ rows of the full table
    assert parser.visible <= regimens + (len(result.lesions) + 1) * (organs + 1) + 1
    assert parser.visible < n_rows / 5


def test_organ_summary_picks_the_closest_mandatory_row():
    rows = [
        # mandatory: 20/30 = 67 % and 27/30 = 90 % of their limits; the 90 % row decides
        row(metric="D0.03cc[Gy]", value=20.0, limit=30.0),
        row(metric="D5cc[Gy]", value=27.0, limit=30.0),
        # an advisory row at 150 % does not decide an organ that has mandatory rows
        row(metric="Mean[Gy]", value=15.0, limit=10.0, priority="report", status="fail"),
        # an organ with advisory rows only: its status says so
        row(organ="Trachea", structure="Trachea", value=25.0, limit=20.0, priority="report",
            status="fail"),
        row(organ="Trachea", structure="Trachea", metric="", value=math.nan, limit=None,
            status="not evaluable", priority="report", comparator="",
            reason="no cited limit at 12 fx for Trachea: advisory extrapolations shown"),
    ]
    summary = {name: (status, closest, n) for name, status, closest, n in organ_summary(rows)}
    status, closest, n = summary["Esophagus"]
    assert (status, closest.metric, n) == ("pass", "D5cc[Gy]", 3)
    status, closest, n = summary["Trachea"]
    assert status == "advisory fail (no cited limit)" and closest.value == 25.0
    assert [name for name, *_ in organ_summary(rows)] == ["Esophagus", "Trachea"]
