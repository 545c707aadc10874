"""Browser tests: the real app on the demo patient in headless Chromium (``pytest --headless``).

The first test pays for preparing the demo patient (all lesions × regimens and the joint
recommendation) in the background job; the prepared evaluation is shared by the tests through
one cache folder (conftest's ``app_cache``; ``RTPLAN_ASSIST_TEST_APP_CACHE`` reuses one between
runs).
"""

from __future__ import annotations

import os
import zipfile

import pytest

pytestmark = pytest.mark.browser

PREPARE_TIMEOUT_S = 1200  # the joint recommendation is the slow part of the preparation


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
    # the composite section follows the summary and the table (a chained callback)
    from dash.testing.wait import until

    until(lambda: dash_duo.find_element("#composite-table").text != composite_before, 30)

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


# -- oversized uploads (issue 6): every case ends in a message, and nothing is sent ---------------
SMALL_CAP = 1024 * 1024  # 1 MiB cap through UploadLimits, so the test files stay small

# A drop of File objects made in the page (a script cannot fill a real drop from disk).
DROP_FILES_JS = """
const [sizes, names] = arguments;
const transfer = new DataTransfer();
sizes.forEach((n, i) => transfer.items.add(new File([new Uint8Array(n)], names[i])));
document.querySelector('#upload > div').dispatchEvent(
    new DragEvent('drop', {bubbles: true, cancelable: true, dataTransfer: transfer}));
"""

# A dropped folder: the browser's FileSystemEntry objects, which a script cannot create for a
# real folder, are stood in for by objects with the same members (isFile, isDirectory, name,
# file(), createReader().readEntries()).
DROP_FOLDER_JS = """
const [folder, sizes, names] = arguments;
const files = sizes.map((n, i) => ({isFile: true, isDirectory: false, name: names[i],
    file: (ok) => ok(new File([new Uint8Array(n)], names[i]))}));
const dir = {isFile: false, isDirectory: true, name: folder, createReader() {
    let done = false;
    return {readEntries(ok) { ok(done ? [] : files); done = true; }};
}};
const event = new Event('drop', {bubbles: true, cancelable: true});
Object.defineProperty(event, 'dataTransfer', {value: {
    items: [{kind: 'file', webkitGetAsEntry: () => dir}], files: []}});
document.querySelector('#upload > div').dispatchEvent(event);
"""


def _record_callback_posts(app) -> list[dict]:
    """Size (bytes) and upload file names of every callback POST the server receives."""
    from flask import request

    posts: list[dict] = []

    @app.server.before_request
    def _record():
        if request.path.endswith("/_dash-update-component"):
            body = request.get_json(silent=True) or {}
            names = next((s.get("value") for s in body.get("state") or []
                          if s.get("id") == "upload" and s.get("property") == "filename"), None)
            posts.append({"bytes": request.content_length or 0, "filenames": names})

    return posts


def test_oversized_upload_is_refused_in_the_page_before_anything_is_sent(dash_duo, app_cache,
                                                                          tmp_path):
    from rtplan_assist.app import create_app
    from rtplan_assist.app.upload import UploadLimits

    app = create_app(None, cache_dir=app_cache, limits=UploadLimits(max_upload_bytes=SMALL_CAP))
    posts = _record_callback_posts(app)
    dash_duo.start_server(app)
    dash_duo.wait_for_element("#upload input[type=file]", timeout=30)
    assert "≤ 1 MB" in dash_duo.find_element("#upload").text

    def pick(*files):
        dash_duo.find_element("#upload input[type=file]").send_keys(
            "\n".join(str(f) for f in files))

    # one file over the cap: dcc.Upload alone drops it without a word (max_size)
    big = tmp_path / "too-big.zip"
    big.write_bytes(os.urandom(3 * SMALL_CAP // 2))
    pick(big)
    dash_duo.wait_for_contains_text(
        "#upload-error", "'too-big.zip' is 1.5 MB, more than the 1.0 MB cap", timeout=10)

    # three files each under the cap, 2.7 MiB together: base64 (x 4/3) is over Flask's
    # MAX_CONTENT_LENGTH (1.4 x cap + 1 MiB), so unchecked it would end in an HTTP 413
    parts = [tmp_path / f"part{i}.dcm" for i in range(3)]
    for part in parts:
        part.write_bytes(os.urandom(SMALL_CAP * 9 // 10))
    pick(*parts)
    dash_duo.wait_for_contains_text(
        "#upload-error", "the upload (3 files) is 2.7 MB, more than the 1.0 MB cap", timeout=10)

    # the same two ways by drag and drop: plain files, then a folder
    dash_duo.driver.execute_script(DROP_FILES_JS, [SMALL_CAP * 6 // 10] * 2, ["a.dcm", "b.dcm"])
    dash_duo.wait_for_contains_text("#upload-error", "the upload (2 files) is 1.2 MB", timeout=10)
    dash_duo.driver.execute_script(DROP_FOLDER_JS, "P1", [SMALL_CAP // 2] * 3,
                                   ["c.dcm", "d.dcm", "e.dcm"])
    dash_duo.wait_for_contains_text("#upload-error", "the upload (3 files) is 1.5 MB", timeout=10)

    # nothing of the refused files reached the server (each is >= 0.5 MiB; callbacks are ~kB)
    assert max(p["bytes"] for p in posts) < SMALL_CAP // 4, posts
    assert not any(app.rtplan_state.upload_root.iterdir())

    # a folder within the caps is read and sent with its path in the names; the server then
    # refuses it for its content (zeros, not DICOM), by the message of app/services/uploads.py
    dash_duo.driver.execute_script(DROP_FOLDER_JS, "P2", [1000, 2000], ["f.dcm", "g.dcm"])
    dash_duo.wait_for_contains_text("#upload-error", "Upload refused: the upload holds no DICOM RT "
                                    "files", timeout=30)
    assert ["P2/f.dcm", "P2/g.dcm"] in [p["filenames"] for p in posts]
    assert dash_duo.get_logs() == []
