"""RTOG 0813/0915 deviation grading of the plan quality indices (issue 17).

Expected values come from protocol Table 1 as read in two agreeing secondary transcriptions
(constraints/quality/rtog0813_0915_table1.csv cites both), typed here by hand, and the
protocol's Notes: linear interpolation between rows (Note 1); beyond "minor" is "major"
(Note 2); the bounds are strict ("<").
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtplan_assist.quality import grade_text, rtog_grades, rtog_table

# PTV cc, R100 none/minor, R50 none/minor, D2cm none/minor (% of Rx): protocol Table 1
TABLE_1 = [
    (1.8, 1.2, 1.5, 5.9, 7.5, 50, 57), (3.8, 1.2, 1.5, 5.5, 6.5, 50, 57),
    (7.4, 1.2, 1.5, 5.1, 6.0, 50, 58), (13.2, 1.2, 1.5, 4.7, 5.8, 50, 58),
    (22.0, 1.2, 1.5, 4.5, 5.5, 54, 63), (34.0, 1.2, 1.5, 4.3, 5.3, 58, 68),
    (50.0, 1.2, 1.5, 4.0, 5.0, 62, 77), (70.0, 1.2, 1.5, 3.5, 4.8, 66, 86),
    (95.0, 1.2, 1.5, 3.3, 4.4, 70, 89), (126.0, 1.2, 1.5, 3.1, 4.0, 73, 91),
    (163.0, 1.2, 1.5, 2.9, 3.7, 77, 94),
]


def _values(tv, r100=1.0, r50=4.0, d2cm=40.0):
    return {"TV[cc]": tv, "CI_RTOG": r100, "R50%": r50, "D2cm[%]": d2cm}


def _by_label(grades):
    return {g.label: g for g in grades}


def test_shipped_table_is_the_transcribed_table_1():
    assert np.array_equal(rtog_table(), np.array(TABLE_1, dtype=float))


def test_interpolated_bounds_midway_between_rows():
    # PTV 17.6 cc is midway between the 13.2 and 22.0 cc rows (Note 1): R50 bounds
    # (4.7 + 4.5)/2 = 4.6 and (5.8 + 5.5)/2 = 5.65; D2cm (50 + 54)/2 = 52 and (58 + 63)/2 = 60.5
    g = _by_label(rtog_grades(_values(17.6, r50=4.59, d2cm=52.0), "lung", 3))
    assert g["R50%"].none_below == pytest.approx(4.6)
    assert g["R50%"].minor_below == pytest.approx(5.65)
    assert g["R50%"].level == "per protocol"            # 4.59 < 4.6
    assert g["D2cm"].none_below == pytest.approx(52.0)
    assert g["D2cm"].minor_below == pytest.approx(60.5)
    assert g["D2cm"].level == "minor deviation"         # 52 is not < 52, but < 60.5
    assert g["R100%"].level == "per protocol"           # 1.0 < 1.2


def test_levels_at_a_table_row_are_strict_and_beyond_minor_is_major():
    # PTV 50 cc row: R50 < 4.0 per protocol, < 5.0 minor, else major (Note 2)
    levels = [_by_label(rtog_grades(_values(50.0, r50=v), "central lung", 5))["R50%"].level
              for v in (3.99, 4.0, 4.99, 5.0, 7.0)]
    assert levels == ["per protocol", "minor deviation", "minor deviation",
                      "major deviation", "major deviation"]
    g = _by_label(rtog_grades(_values(50.0, r100=1.5), "lung", 1))["R100%"]
    assert g.level == "major deviation"                 # R100% minor bound 1.5, strict


@pytest.mark.parametrize("site,fractions,tv,why", [
    ("liver", 3, 20.0, "site is liver"),
    ("lung", 8, 20.0, "planned in 8 fractions"),
    ("lung", 3, 1.0, "outside the table's 1.8-163 cc"),
    ("lung", 3, 200.0, "outside the table's 1.8-163 cc"),
])
def test_not_graded_outside_the_table_scope(site, fractions, tv, why):
    grades = rtog_grades(_values(tv), site, fractions)
    assert [g.level for g in grades] == ["not graded"] * 3
    assert all(why in g.reason for g in grades)
    assert all(math.isnan(g.none_below) for g in grades)
    assert "not graded against RTOG 0813/0915" in grade_text(grades[0])


def test_a_not_evaluable_index_is_not_graded():
    g = _by_label(rtog_grades(_values(20.0, r50=math.nan), "lung", 3))
    assert g["R50%"].level == "not graded" and "not evaluable" in g["R50%"].reason
    assert g["D2cm"].level == "per protocol"
