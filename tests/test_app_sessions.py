"""Two browser sessions at once (issue 6): neither sees the other's patient, choices or upload.

One server on a data root with two demo patients, ``bed-1`` and ``bed-2``, whose only
difference the screens show is their PatientID (``write_demo_patient(patient_id=...)``; the
folder names, which the shared patient picker lists, say nothing of the patient). Two
independent headless Chromiums (``dash_duo`` and a second :class:`dash.testing.browser.Browser`
with conftest's options: two profiles, so two browser sessions) drive it at the same time:

* A opens bed-1 and B bed-2: each sees its own PatientID and never the other's;
* on lesion L2, A adds and chooses a regimen of its own (7 x 7 Gy) while B chooses another;
  each composite shows its own choice;
* B then opens bed-1 too: it gets the recommendation, not A's choice, and not A's added
  regimen (which lives in A's copy of the evaluator on the server); A keeps its own;
* A uploads a third patient: it is in A's picker only, B never sees its PatientID, and B's
  session cannot open it even when it asks for the upload's key directly.

The two patients are prepared before the server starts (through :class:`AppServices`, the
preparation the background job would run), so the test pays the preparation once, in parallel.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from selenium.webdriver.common.keys import Keys

pytestmark = pytest.mark.browser

PATIENT_A = "SESSION-A-1111"  # bed-1
PATIENT_B = "SESSION-B-2222"  # bed-2
PATIENT_UPLOAD = "UPLOADED-C-3333"  # A's upload
ADDED_REGIMEN = "49 Gy/7"  # A's own regimen for L2: in no regimen table (regimens.py)
LOAD_TIMEOUT_S = 300  # an engine edited under the cache key's feet means a new preparation


@pytest.fixture(scope="module")
def patients(tmp_path_factory) -> SimpleNamespace:
    """A data root with two demo patients, and the files of a third one to upload."""
    from rtplan_assist.demo import write_demo_patient

    root = tmp_path_factory.mktemp("two-patients")
    staging = tmp_path_factory.mktemp("staging")
    for bed, patient_id in (("bed-1", PATIENT_A), ("bed-2", PATIENT_B)):
        write_demo_patient(staging, patient_id=patient_id).rename(root / bed)
    # the upload: one lesion (L3's plan and dose) and the structures, no CT (7 MB, quick to
    # prepare)
    source = write_demo_patient(staging, patient_id=PATIENT_UPLOAD)
    upload = tmp_path_factory.mktemp("upload")
    for name in ("RS.dcm", "RP.L3.dcm", "RD.L3.dcm"):
        shutil.copy(source / name, upload / name)
    return SimpleNamespace(root=root, upload_files=sorted(upload.iterdir()))


@pytest.fixture(scope="module")
def prepared_cache(patients, tmp_path_factory):
    """A cache folder holding both patients' prepared evaluations (prepared in parallel)."""
    from rtplan_assist.app.services import AppServices

    cache = tmp_path_factory.mktemp("sessions-cache")
    state = AppServices(patients.root, cache_dir=cache)
    try:
        with ThreadPoolExecutor(len(state.entries)) as pool:
            list(pool.map(state.prepare, state.entries))
    finally:
        state.close()
    return cache


@pytest.fixture
def second_browser(request, tmp_path):
    """A second headless Chromium, set up as ``dash_br`` but beside ``dash_duo`` (its own
    download folder); quit at the end."""
    from dash.testing.browser import Browser

    with Browser(browser=request.config.getoption("webdriver"),
                 headless=request.config.getoption("headless"),
                 options=request.config.hook.pytest_setup_options(),
                 download_path=str(tmp_path / "download-b"), percy_run=False) as browser:
        yield browser


# -- helpers: one browser (dash_duo or second_browser) ----------------------------------------------------
def _choose(browser, dropdown_id: str, search: str, value: str) -> None:
    """Pick ``value`` in a Dash 4 ``dcc.Dropdown``: open it, type ``search``, click the option."""
    browser.find_element(f"#{dropdown_id}").click()
    browser.wait_for_element("input.dash-dropdown-search", timeout=10).send_keys(search)
    option = browser.wait_for_element(f"label[role=option]:has(input[value='{value}'])",
                                      timeout=10)
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", option)
    option.click()


def _picker_labels(browser) -> list[str]:
    """The patient picker's option labels as the user sees them (opens and closes it)."""
    browser.find_element("#patient-picker").click()
    browser.wait_for_element("label[role=option]", timeout=10)
    labels = [o.text for o in browser.find_elements("label[role=option]")]
    browser.find_element("input.dash-dropdown-search").send_keys(Keys.ESCAPE)
    return labels


def _open_patient(browser, label: str, key: str, patient_id: str) -> None:
    browser.find_element("#nav-overview").click()
    _choose(browser, "patient-picker", label, key)
    browser.wait_for_contains_text("#overview-content", patient_id, timeout=LOAD_TIMEOUT_S)


def _chosen(browser, regimen: str) -> None:
    """Wait until the comparison table marks ``regimen`` as the chosen column."""
    browser.wait_for_element(f"th.col-chosen[data-regimen='{regimen}']", timeout=60)


def _columns(browser) -> list[str]:
    return [th.get_attribute("data-regimen") for th in browser.find_elements("th.col-regimen")]


def _never_shows(browser, *patient_ids: str) -> None:
    page = browser.driver.page_source
    for patient_id in patient_ids:
        assert patient_id not in page, f"{patient_id} leaked into another session's page"


def test_two_sessions_at_once_never_see_each_others_patient_choices_or_upload(
        dash_duo, second_browser, patients, prepared_cache):
    from rtplan_assist.app import create_app

    app = create_app(patients.root, cache_dir=prepared_cache)
    key = {e.label: e.key for e in app.rtplan_state.entries}
    assert sorted(key) == ["bed-1", "bed-2"]
    dash_duo.start_server(app)
    a, b = dash_duo, second_browser
    b.server_url = a.server_url  # the second Chromium, its own profile: a second session

    # 1. each opens its own patient, at the same time
    _choose(a, "patient-picker", "bed-1", key["bed-1"])
    _choose(b, "patient-picker", "bed-2", key["bed-2"])
    a.wait_for_contains_text("#overview-content", PATIENT_A, timeout=LOAD_TIMEOUT_S)
    b.wait_for_contains_text("#overview-content", PATIENT_B, timeout=LOAD_TIMEOUT_S)
    _never_shows(a, PATIENT_B)
    _never_shows(b, PATIENT_A)

    # 2. lesion L2, at the same time: A adds 7 x 7 Gy and chooses it, B chooses another regimen
    a.find_element("#link-L2").click()
    b.find_element("#link-L2").click()
    a.wait_for_element("#comparison-table", timeout=60)
    b.wait_for_element("#comparison-table", timeout=60)
    recommended = b.find_element("th.col-recommended").get_attribute("data-regimen")
    b_choice = next(r for r in _columns(b) if r not in (recommended, ADDED_REGIMEN))
    a.find_element("#add-n").send_keys("7")
    a.find_element("#add-d").send_keys("49")
    a.find_element("#add-regimen").click()
    _choose(b, "lesion-choice", b_choice, b_choice)
    _chosen(a, ADDED_REGIMEN)
    _chosen(b, b_choice)
    assert ADDED_REGIMEN not in _columns(b)
    a.find_element("#nav-composite").click()
    b.find_element("#nav-composite").click()
    a.wait_for_text_to_equal("#composite-chosen-L2", ADDED_REGIMEN, timeout=60)
    b.wait_for_text_to_equal("#composite-chosen-L2", b_choice, timeout=60)
    _never_shows(a, PATIENT_B)
    _never_shows(b, PATIENT_A)

    # 3. B opens A's patient: the recommendation, not A's choice nor A's added regimen
    _open_patient(b, "bed-1", key["bed-1"], PATIENT_A)
    b.find_element("#link-L2").click()
    b.wait_for_element("#comparison-table", timeout=60)
    recommended_a = b.find_element("th.col-recommended").get_attribute("data-regimen")
    _chosen(b, recommended_a)
    assert ADDED_REGIMEN not in _columns(b)
    a.find_element("#nav-overview").click()  # A's screens, rendered again after B's load
    a.wait_for_text_to_equal("#overview-chosen-L2", ADDED_REGIMEN, timeout=60)

    # 4. A uploads a patient: A's picker and screens only
    a.find_element("#upload input[type=file]").send_keys(
        "\n".join(str(p) for p in patients.upload_files))
    a.wait_for_contains_text("#overview-content", PATIENT_UPLOAD, timeout=LOAD_TIMEOUT_S)
    assert any(label.startswith("Upload:") for label in _picker_labels(a))
    assert _picker_labels(b) == ["bed-1", "bed-2"]
    session_a = json.loads(a.driver.execute_script(
        "return window.sessionStorage.getItem('session-id')"))  # the session-id store
    upload_key = next(o["value"] for o in app.rtplan_state.picker_options(session_a)
                      if o["label"].startswith("Upload:"))
    # B asks for A's upload by its key, as a crafted request would: refused, nothing shown
    b.driver.execute_script(
        "window.dash_clientside.set_props('patient-picker', {value: arguments[0]})", upload_key)
    b.wait_for_contains_text("#load-error", "unknown patient", timeout=60)
    _never_shows(b, PATIENT_UPLOAD)
    _never_shows(a, PATIENT_B)
    assert a.get_logs() == [] and b.get_logs() == []
