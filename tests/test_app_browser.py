"""Browser tests: the real app on the demo patient in headless Chromium (``pytest --headless``).

The first test pays for preparing the demo patient (all lesions × regimens and the joint
recommendation) in the background job; the prepared evaluation is shared by the tests through
one cache folder (``RTPLAN_ASSIST_TEST_APP_CACHE`` reuses one between runs).
"""

from __future__ import annotations

import os
import zipfile

import pytest

pytestmark = pytest.mark.browser

PREPARE_TIMEOUT_S = 1200  # the joint recommendation is the slow part of the preparation


@pytest.fixture(scope="module")
def app_cache(tmp_path_factory):
    path = os.environ.get("RTPLAN_ASSIST_TEST_APP_CACHE")
    return path or str(tmp_path_factory.mktemp("app-cache"))


def _start(dash_duo, cache_dir):
    from rtplan_assist.app import create_app

    app = create_app(None, cache_dir=cache_dir)
    dash_duo.start_server(app)
    return app


def _choose(dash_duo, dropdown_id: str, value: str) -> None:
    """Pick ``value`` in a Dash 4 ``dcc.Dropdown``: open it, filter by typing, click the option."""
    dash_duo.find_element(f"#{dropdown_id}").click()
    dash_duo.wait_for_element("input.dash-dropdown-search", timeout=10).send_keys(value)
    option = dash_duo.wait_for_element(
        f"label[role=option]:has(input[value='{value}'])", timeout=10)
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", option)
    option.click()


def test_demo_patient_regimen_change_updates_table_and_composite(dash_duo, app_cache):
    _start(dash_duo, app_cache)
    # overview: the five demo lesions, each linking to its comparison
    dash_duo.wait_for_element("#lesion-list", timeout=PREPARE_TIMEOUT_S)
    links = dash_duo.find_elements("#lesion-list a")
    assert [a.text for a in links] == ["L1", "L2", "L3", "L4", "L5"]

    dash_duo.find_element("#link-L2").click()
    dash_duo.wait_for_element("#comparison-table", timeout=60)
    dash_duo.wait_for_contains_text("#lesion-title", "L2", timeout=30)
    chosen_before = dash_duo.find_element("th.col-chosen").get_attribute("data-regimen")
    composite_before = dash_duo.find_element("#composite-table").text
    target = "50 Gy/5" if chosen_before != "50 Gy/5" else "60 Gy/8"

    _choose(dash_duo, "lesion-choice", target)
    dash_duo.wait_for_element(f"th.col-chosen[data-regimen='{target}']", timeout=60)
    # the 50 Gy/5 (or planned 60 Gy/8) column of L2 fails the oesophagus constraint
    table = dash_duo.find_element("#comparison-table").text
    assert "FAIL" in table and "Esophagus" in table and "Gy" in table
    dash_duo.wait_for_text_to_equal("#composite-table", dash_duo.find_element(
        "#composite-table").text, timeout=5)
    assert dash_duo.find_element("#composite-table").text != composite_before

    # the composite screen shows the new choice of L2
    dash_duo.find_element("#nav-composite").click()
    dash_duo.wait_for_text_to_equal("#composite-chosen-L2", target, timeout=60)
    assert "EQD2" in dash_duo.find_element("#composite-table").text
    assert dash_duo.find_element("#verdict").text
    assert dash_duo.get_logs() == []


def test_unsafe_upload_is_refused_with_a_clear_message(dash_duo, app_cache, tmp_path):
    bad = tmp_path / "patient.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../../escape.dcm", b"not dicom")
    _start(dash_duo, app_cache)
    dash_duo.wait_for_element("#upload input[type=file]", timeout=30)
    dash_duo.find_element("#upload input[type=file]").send_keys(str(bad))
    dash_duo.wait_for_contains_text("#upload-error", "outside the upload folder", timeout=30)
    assert not (tmp_path.parent / "escape.dcm").exists()
    assert dash_duo.get_logs() == []
