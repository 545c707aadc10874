"""Browser tests of the composite / MDT page, the DVH view and the dose view (issue 14), on
the demo patient in headless Chromium (``pytest --headless``; run under
``flock /tmp/rtplan-browser.lock``). The prepared demo is shared through conftest's
``app_cache``."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from test_app_browser import PREPARE_TIMEOUT_S, _choose, _start

pytestmark = pytest.mark.browser

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _go(dash_duo, path: str) -> None:
    """Open a page of the app without reloading it (the session's stores stay)."""
    dash_duo.driver.execute_script(
        f"window.history.pushState({{}}, '', '{path}');"
        "window.dispatchEvent(new PopStateEvent('popstate'));")


def _number(text: str) -> float:
    return float(_NUMBER.search(text).group())


def test_composite_page_sorts_by_headroom_and_flags_a_choice_off_the_recommendation(
        dash_duo, app_cache):
    _start(dash_duo, app_cache)
    dash_duo.wait_for_element("#lesion-list", timeout=PREPARE_TIMEOUT_S)
    dash_duo.find_element("#nav-composite").click()
    dash_duo.wait_for_element("#composite-table td.cell-headroom", timeout=60)

    # Headroom recomputed from the shown value and limit of each row (upper limits: margin
    # (limit - value) / limit; lower limits: (value - limit) / limit), rows tightest first.
    margins = []
    for tr in dash_duo.find_elements("#composite-table tbody tr"):
        cells = tr.find_elements("css selector", "td")
        value, limit_cell = _number(cells[2].text), cells[3].text
        limit = _number(limit_cell)
        upper = limit_cell.lstrip().startswith(("≤", "<"))
        margins.append((limit - value) / limit if upper else (value - limit) / limit)
        shown_pct = _number(cells[4].text)  # "96 % of limit"
        assert shown_pct == pytest.approx(100 * (value / limit if upper else limit / value),
                                          abs=1.0)
        # the limit's source carries its fraction number (or says it is a published EQD2),
        # its key and CSV line behind "details"
        assert "fx" in cells[7].text or "published as an EQD2 limit" in cells[7].text
        assert cells[7].find_elements("css selector", "details")
    assert len(margins) >= 3 and margins == sorted(margins)
    banner = dash_duo.find_element("#verdict").find_element("xpath", "..").text
    assert "combination" not in banner and "visited" not in banner  # no algorithm statistics
    # demo plans (rtplan_assist.demo): L2 is planned 60 Gy/8
    assert dash_duo.find_element("#composite-planned-L2").text == "60 Gy/8"
    assert not dash_duo.find_elements("#chosen-table tr.mdt-row-differs")

    # choose a regimen that is not the recommended one: highlighted, and said in the banner
    recommended = dash_duo.find_element("#composite-recommended-L2").text
    target = "50 Gy/5" if recommended != "50 Gy/5" else "60 Gy/8"
    dash_duo.find_element("#composite-chosen-L2").find_element("xpath", "../..").find_element(
        "css selector", "a").click()
    dash_duo.wait_for_element("#lesion-choice", timeout=60)
    _choose(dash_duo, "lesion-choice", target)
    dash_duo.wait_for_element(f"th.col-chosen[data-regimen='{target}']", timeout=60)
    dash_duo.find_element("#nav-composite").click()
    dash_duo.wait_for_text_to_equal("#composite-chosen-L2", target, timeout=60)
    dash_duo.wait_for_element("#chosen-table tr.mdt-row-differs[data-lesion='L2']", timeout=10)
    banner = dash_duo.find_element("#verdict").find_element("xpath", "..").text
    assert f"{target} is chosen (recommended: {recommended})" in banner
    assert dash_duo.get_logs() == []
    assert math.isfinite(margins[0])


def _figure_traces(dash_duo, graph_id: str) -> list[dict]:
    return dash_duo.driver.execute_script(
        f"return document.querySelector('#{graph_id} .js-plotly-plot').data"
        ".map(t => ({name: t.name, x: t.x, y: t.y, hovertext: t.hovertext}));")


def _esophagus_marker(traces, regimen: str):
    """(dose, volume, hover line) of the oesophagus D0.03cc marker of ``regimen`` (a marker
    at the same place as another regimen's lists both rows)."""
    for trace in traces:
        if not trace["name"].startswith("limits at "):
            continue
        for x, y, text in zip(trace["x"], trace["y"], trace["hovertext"]):
            for line in text.split("<br>"):
                if "Esophagus D0.03cc[Gy] &lt;=" in line and f"at {regimen}:" in line:
                    return x, y, line
    raise AssertionError(f"no oesophagus D0.03cc marker at {regimen}")


def test_dvh_limits_of_every_regimen_on_both_axes(dash_duo, app_cache):
    _start(dash_duo, app_cache)
    dash_duo.wait_for_element("#lesion-list", timeout=PREPARE_TIMEOUT_S)
    _go(dash_duo, "/dvh/L2")
    dash_duo.wait_for_element("#dvh-marker-table", timeout=60)
    physical = _figure_traces(dash_duo, "dvh-graph")
    regimens = [t["name"][:-len(" (line style)")] for t in physical
                if t["name"].endswith(" (line style)")]
    # the recommended (chosen) and the planned regimen of L2, each with its limits
    assert len(regimens) == 2
    assert [t["name"] for t in physical if t["name"].startswith("limits at ")] == [
        f"limits at {r}" for r in regimens]
    dash_duo.find_element("#dvh-kind input[value='EQD2']").click()
    dash_duo.wait_for_contains_text("#dvh-graph", "EQD2", timeout=30)
    eqd2 = _figure_traces(dash_duo, "dvh-graph")
    assert [t["name"] for t in eqd2 if t["name"].startswith("limits at ")] == [
        f"limits at {r}" for r in regimens]
    for regimen in regimens:
        n = int(regimen.split("/")[1])
        limit_gy, volume, text = _esophagus_marker(physical, regimen)
        x, y, text_eqd2 = _esophagus_marker(eqd2, regimen)
        # LQ: EQD2 = D (D/n + α/β) / (2 + α/β), oesophagus α/β 3 Gy (its tables' value)
        assert x == pytest.approx(limit_gy * (limit_gy / n + 3.0) / 5.0, rel=1e-6)
        assert y == pytest.approx(volume)
        assert "fx" in text_eqd2 and ("safron" in text_eqd2 or "tg101" in text_eqd2)
    legend = [t["name"] for t in eqd2 if not t["name"].startswith("limits at ")]
    assert legend.count("Esophagus") == 2 and len(set(legend)) < len(legend)
    assert dash_duo.get_logs() == []


def test_composite_dose_view_goes_to_an_oar_maximum(dash_duo, app_cache, demo_evaluation):
    from rtplan_assist.structures import occupancy

    evaluation, result = demo_evaluation
    # expected, from the composite EQD2 array itself: the hottest voxel (α/β 3 Gy, the
    # recommended regimens, the app's default) among the voxels at least half inside the
    # oesophagus, and the CT slice nearest to it
    structure = next(s for s in evaluation.oar_structures.values() if s.name == "Esophagus")
    grid, eqd2 = evaluation.composite_eqd2(result.recommendation.choice, 3.0)
    inside = occupancy(structure, grid).full() >= 0.5
    k, _j, _i = np.unravel_index(np.argmax(np.where(inside, eqd2, -np.inf)), eqd2.shape)
    hottest = float(eqd2[k, _j, _i])
    ct_z = np.asarray(evaluation.case.ct.grid.z_mm)
    expected_z = float(ct_z[np.argmin(np.abs(ct_z - float(np.asarray(grid.z_mm)[k])))])

    _start(dash_duo, app_cache)
    dash_duo.wait_for_element("#lesion-list", timeout=PREPARE_TIMEOUT_S)
    dash_duo.find_element("#nav-composite-dose").click()
    dash_duo.wait_for_contains_text("#dose-graph", "Composite EQD2", timeout=60)
    assert f"CT z = {expected_z:.1f} mm" not in dash_duo.find_element("#dose-graph").text
    dash_duo.find_element("#dose-goto").click()
    dash_duo.wait_for_element("input.dash-dropdown-search", timeout=10).send_keys("Esophagus")
    dash_duo.wait_for_element("label[role=option]:has(input[value='oar:Esophagus'])",
                              timeout=10).click()
    dash_duo.wait_for_contains_text("#dose-goto-message", "Esophagus: maximum", timeout=30)
    assert f"maximum {hottest:.2f} Gy EQD2 (LQ, α/β = 3 Gy)" in dash_duo.find_element(
        "#dose-goto-message").text
    dash_duo.wait_for_contains_text("#dose-graph", f"CT z = {expected_z:.1f} mm", timeout=30)
    # orientation letters of the demo's HFS images on the axial slice
    letters = dash_duo.driver.execute_script(
        "return document.querySelector('#dose-graph .js-plotly-plot').layout.annotations"
        ".map(a => a.text);")
    assert letters == ["<b>R</b>", "<b>L</b>", "<b>A</b>", "<b>P</b>"]
    assert dash_duo.get_logs() == []
