"""The lesion page's plan quality section (issue 17): report-only indices of the planned dose.

Unit test: the section builder on hand-made :class:`~rtplan_assist.quality.LesionQuality`
values (every index with its unit and definition, the RTOG 0813/0915 grade with its bounds, the
reason a lesion is not graded, the bridging flag, the shared dose, the notes, no status badge).

Browser test: on the demo patient, the section is collapsed, says "computing…" until its
indices arrive when opened, and then shows L1's Paddick CI and R50% equal to
:func:`rtplan_assist.quality.lesion_quality` of the same browser session's evaluation (computed
again here through the library), L1's grade (lung, 54 Gy/3: graded against RTOG 0813/0915
Table 1) and L3's reason for not being graded (a node). Shares the prepared demo with the other
browser tests (conftest's ``app_cache``).
"""

from __future__ import annotations

import json
import math

import pytest
from test_app_unit import _text


def _find(component, predicate) -> list:
    out = []
    if isinstance(component, list | tuple):
        for c in component:
            out += _find(c, predicate)
        return out
    if component is None or isinstance(component, str | int | float):
        return out
    if predicate(component):
        out.append(component)
    return out + _find(getattr(component, "children", None), predicate)


def _quality(lesion_id="L1", site="lung", fractions=3, values=None, **kw):
    from rtplan_assist.quality import INDEX_DEFINITIONS, LesionQuality, rtog_grades

    vals = {key: math.nan for key, *_ in INDEX_DEFINITIONS}
    vals.update(values or {})
    return LesionQuality(lesion_id, "PTV_1", 54.0, vals,
                         grades=rtog_grades(vals, site, fractions), **kw)


def test_quality_section_builder_units_definitions_grades_bridging_notes():
    from rtplan_assist.app.lesion_view import quality_section
    from rtplan_assist.quality import INDEX_DEFINITIONS, RTOG_SOURCE, rtog_table

    # a lung lesion at the table's first row (1.8 cc: bounds read, not interpolated):
    # R100% 1.1 < 1.2 per protocol; R50% 6.5 between 5.9 and 7.5 minor; D2cm 80 % >= 57 % major
    table = rtog_table()
    assert table[0, 0] == 1.8
    values = {"TV[cc]": 1.8, "CI_RTOG": 1.1, "R50%": 6.5, "D2cm[%]": 80.0, "D2cm[Gy]": 43.2,
              "CI_Paddick": 0.8123, "GI": 5.9091, "HI": 0.2}
    q = _quality(values=values, bridged_with=("L2",), shares_dose_with=("L2",),
                 notes=("the 50 % isodose reaches 30 mm from the targets",))
    section = quality_section(q, planned="54 Gy/3", site="lung")
    text = _text(section)
    cells = {c.to_plotly_json()["props"]["data-index"]: c for c in _find(
        section, lambda c: getattr(c, "className", "") == "num")}
    assert _text(cells["CI_Paddick"]) == "0.812"
    assert _text(cells["D2cm[Gy]"]) == "43.200 Gy"
    assert _text(cells["D2cm[%]"]) == "80.000 % of Rx"
    assert _text(cells["PIV[cc]"]) == "not evaluable"  # NaN never reads as a number
    for key, label, unit, definition in INDEX_DEFINITIONS:
        if key in cells:
            assert definition in text, key
    # every index label carries its definition as a tooltip
    titled = {c.title for c in _find(section, lambda c: getattr(c, "className", "")
                                     == "quality-label")}
    assert titled == {d for k, _, _, d in INDEX_DEFINITIONS if k in cells}
    assert "ratio (dimensionless)" in text and "cc" in text
    grades = {li.to_plotly_json()["props"]["data-index"]:
              (li.to_plotly_json()["props"]["data-level"], _text(li))
              for li in _find(section, lambda c: type(c).__name__ == "Li"
                              and "data-index" in c.to_plotly_json()["props"])}
    assert grades["CI_RTOG"][0] == "per protocol"
    assert grades["R50%"][0] == "minor deviation"
    assert grades["D2cm[%]"][0] == "major deviation"
    assert f"per protocol < {table[0, 1]:.3g}, minor deviation < {table[0, 2]:.3g}" \
        in grades["CI_RTOG"][1]
    assert f"per protocol < {table[0, 5]:.3g} % of Rx" in grades["D2cm[%]"][1]
    assert RTOG_SOURCE in text and "RTOG 0915 (peripheral lung)" in text
    assert "Bridging: yes, with L2" in text and "Shares its dose with L2" in text
    assert "the 50 % isodose reaches 30 mm from the targets" in text
    assert "report-only" in text
    # report-only: no status badge anywhere in the section
    assert not _find(section, lambda c: "status-badge" in (getattr(c, "className", "") or ""))

    # a node is not graded, and says why, once for the three indices
    node = _quality("L3", site="node", fractions=5, values={"TV[cc]": 9.0})
    text = _text(quality_section(node, planned="50 Gy/5", site="node"))
    assert "R100%, R50%, D2cm: not graded" in text
    assert "this lesion's site is node" in text
    assert "Bridging: no" in text and "Its own dose" in text


def _open_quality(dash_duo) -> None:
    """Open the quality section (a DOM click: the section lies below the window's bottom
    on the demo and the sticky summary may cover what scrolls under it)."""
    button = dash_duo.find_element("#lesion-quality-section .accordion-button")
    dash_duo.driver.execute_script("arguments[0].click()", button)


@pytest.mark.browser
def test_lesion_page_quality_section_equals_the_library(dash_duo, app_cache):
    from test_app_browser import PREPARE_TIMEOUT_S, _start

    from rtplan_assist.quality import lesion_quality

    app = _start(dash_duo, app_cache)
    dash_duo.wait_for_element("#lesion-list", timeout=PREPARE_TIMEOUT_S)
    dash_duo.find_element("#link-L1").click()
    dash_duo.wait_for_element("#comparison-table", timeout=60)
    # collapsed by default: the page's first view computes nothing
    assert not dash_duo.find_element("#lesion-quality-computing").is_displayed()
    _open_quality(dash_duo)
    dash_duo.wait_for_element("#quality-table", timeout=60)

    # the same browser session's evaluation, its indices computed again by the library
    state = app.rtplan_state
    session = json.loads(dash_duo.driver.execute_script(
        "return window.sessionStorage.getItem('session-id')"))
    loaded = state.patient(session, state.default_key())
    fresh = loaded.evaluator.copy()
    fresh.__dict__.pop("_quality_cache", None)
    expected = {q.lesion_id: q for q in lesion_quality(fresh)}
    for key in ("CI_Paddick", "R50%"):
        shown = dash_duo.find_element(f"#quality-table td.num[data-index='{key}']").text
        assert float(shown) == pytest.approx(expected["L1"].values[key], abs=5e-4), key
    grades = dash_duo.find_element("#quality-grades").text
    assert "R100%" in grades and "RTOG 0813/0915 protocol Table 1" in grades
    assert "per protocol <" in grades and "not graded" not in grades
    level = {g.index: g.level for g in expected["L1"].grades}["R50%"]
    assert dash_duo.find_element("#quality-grades li[data-index='R50%']").get_attribute(
        "data-level") == level

    dash_duo.driver.get(dash_duo.server_url + "/lesion/L3")
    dash_duo.wait_for_element("#comparison-table", timeout=60)
    _open_quality(dash_duo)
    dash_duo.wait_for_contains_text("#quality-grades", "not graded", timeout=30)
    assert "site is node" in dash_duo.find_element("#quality-grades").text
    shown = dash_duo.find_element("#quality-table td.num[data-index='CI_Paddick']").text
    assert float(shown) == pytest.approx(expected["L3"].values["CI_Paddick"], abs=5e-4)
    assert dash_duo.get_logs() == []


def test_quality_is_computed_once_per_patient_for_every_session():
    """PatientShared.quality: the first caller computes, later sessions reuse (planned doses
    are the same for every session), whichever thread asks."""
    import threading

    from rtplan_assist.app.services.shared import PatientShared

    shared = PatientShared()
    calls = []

    def compute():
        calls.append(1)
        return ["indices"]

    results = []
    threads = [threading.Thread(target=lambda: results.append(shared.quality(compute)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [["indices"]] * 4 and len(calls) == 1
