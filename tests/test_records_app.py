"""Logins and MDT decision records in the app (issue 16).

Passwords: scrypt (RFC 7914) recomputed here with :func:`hashlib.scrypt` from the stored
salt and parameters. The browser test drives the real app in headless Chromium (run under
``flock /tmp/rtplan-browser.lock``): a viewer cannot record, a clinician can, the record shows
in the history and its id on the PDF, and two sessions see each other's recorded decisions but
not each other's unrecorded choices.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from rtplan_assist.cli import main

PASSWORDS = {"vera": "viewer-password-1", "carl": "clinician-password-1",
             "cleo": "clinician-password-2"}


def _users(tmp_path):
    from rtplan_assist.records.users import FileUsers

    users = FileUsers(tmp_path / "users.csv")
    users.add("vera", "Vera Viewer", "viewer", PASSWORDS["vera"])
    users.add("carl", "Dr Carl Clinician", "clinician", PASSWORDS["carl"])
    users.add("cleo", "Dr Cleo Second", "clinician", PASSWORDS["cleo"])
    return users


def test_password_hash_is_scrypt():
    from rtplan_assist.records import RecordError
    from rtplan_assist.records.users import hash_password, verify_password

    stored = hash_password("correct horse battery")
    kind, log_n, r, p, salt, key = stored.split("$")
    # RFC 7914 scrypt with the stored salt and parameters gives the stored key
    expected = hashlib.scrypt(b"correct horse battery", salt=base64.b64decode(salt),
                              n=2 ** int(log_n), r=int(r), p=int(p), maxmem=2**26, dklen=32)
    assert kind == "scrypt" and base64.b64decode(key) == expected
    assert int(log_n) >= 14 and len(base64.b64decode(salt)) == 16
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterz", stored)
    assert not verify_password("correct horse battery", "md5$abc")
    assert hash_password("correct horse battery") != stored  # fresh salt each time
    with pytest.raises(RecordError, match="at least 10"):
        hash_password("short")


def test_users_file_and_database(tmp_path, capsys, monkeypatch):
    import io

    users = _users(tmp_path)
    assert (tmp_path / "users.csv").stat().st_mode & 0o077 == 0  # readable by the owner only
    assert users.authenticate("carl", PASSWORDS["carl"]).role == "clinician"
    assert users.authenticate("carl", PASSWORDS["vera"]) is None
    assert users.authenticate("nobody", PASSWORDS["carl"]) is None
    assert PASSWORDS["carl"] not in (tmp_path / "users.csv").read_text()
    users.remove("cleo")
    assert sorted(u.username for u in users.list()) == ["carl", "vera"]

    db = str(tmp_path / "records.sqlite")
    monkeypatch.setattr("sys.stdin", io.StringIO("admin-password-1\n"))
    assert main(["users", "add", "ada", "--role", "admin", "--name", "Dr Ada",
                 "--db", db, "--password-stdin"]) == 0
    out = capsys.readouterr()
    assert "admin-password-1" not in out.out + out.err
    from rtplan_assist.records.users import open_users

    assert open_users("db", db).authenticate("ada", "admin-password-1").display_name == "Dr Ada"
    assert main(["users", "list", "--db", db]) == 0
    assert capsys.readouterr().out == "ada\tadmin\tDr Ada\n"


def test_login_guard(tmp_path, caplog):
    from rtplan_assist.app import create_app

    app = create_app(None, cache_dir=tmp_path / "cache", records_db=str(tmp_path / "r.sqlite"),
                     users=_users(tmp_path))
    client = app.server.test_client()
    page = client.get("/composite")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    assert client.post("/_dash-update-component", json={}).status_code == 401
    assert client.get("/_dash-layout").status_code == 302
    with caplog.at_level(logging.INFO, logger="rtplan_assist.app.auth"):
        bad = client.post("/login", data={"username": "carl", "password": PASSWORDS["vera"]})
        assert bad.status_code == 401 and b"Wrong user name or password" in bad.data
        good = client.post("/login", data={"username": "carl", "password": PASSWORDS["carl"],
                                           "next": "//evil.example/x"})
    assert good.status_code == 302 and good.headers["Location"] == "/"  # no open redirect
    assert client.get("/_dash-layout").status_code == 200
    assert "login failed for 'carl'" in caplog.text and "login carl (clinician)" in caplog.text
    assert PASSWORDS["carl"] not in caplog.text and PASSWORDS["vera"] not in caplog.text
    client.get("/logout")
    assert client.get("/_dash-layout").status_code == 302


def test_viewer_refused_by_the_server(tmp_path):
    """The record callback refuses a viewer even if the request is forged past the disabled
    button."""
    from app_http import callback_payload
    from rtplan_assist.app import create_app

    db = tmp_path / "r.sqlite"
    app = create_app(None, cache_dir=tmp_path / "cache", records_db=str(db),
                     users=_users(tmp_path))
    client = app.server.test_client()
    client.post("/login", data={"username": "vera", "password": PASSWORDS["vera"]})
    payload = callback_payload(app, "record-message.children", {
        "record-decision.n_clicks": 1, "loaded.data": {"key": "demo"}, "choices.data": {},
        "session-id.data": "s1", "decision-rationale.value": "forged"}, "record-decision.n_clicks")
    answer = client.post("/_dash-update-component", json=payload)
    assert answer.status_code == 200 and "cannot record decisions" in answer.get_data(True)
    assert not db.exists()


def test_serve_needs_logins_off_loopback(tmp_path, capsys):
    assert main(["serve", "--host", "0.0.0.0", "--db", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "needs logins" in err and err.count("\n") == 1
    assert main(["serve", "--host", "0.0.0.0", "--users", str(tmp_path / "none.csv")]) == 2
    assert "no user yet" in capsys.readouterr().err


# ---------------------------------------------------------------- browser


PREPARE_TIMEOUT_S = 1200


def _login(dash_duo, base: str, user: str) -> None:
    from selenium.webdriver.common.by import By

    driver = dash_duo.driver
    driver.get(base + "/logout")
    dash_duo.wait_for_element("#login-username", timeout=30)
    driver.find_element(By.ID, "login-username").send_keys(user)
    driver.find_element(By.ID, "login-password").send_keys(PASSWORDS[user])
    driver.find_element(By.ID, "login-submit").click()
    dash_duo.wait_for_element("#react-entry-point", timeout=60)


def _click(dash_duo, selector: str) -> None:
    # a click by script: the page below the composite tables still shifts while it renders
    element = dash_duo.find_element(selector)
    assert element.is_enabled()
    dash_duo.driver.execute_script("arguments[0].click()", element)


def _record(dash_duo, rationale: str) -> str:
    dash_duo.find_element("#decision-rationale").send_keys(rationale)
    dash_duo.find_element("#decision-attendees").send_keys("Dr B, physicist")
    _click(dash_duo, "#record-decision")
    done = dash_duo.wait_for_element("#record-done", timeout=120)
    return re.search(r"record ([0-9a-f-]{36})", done.text).group(1)


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils (pdftotext)")
def test_record_decision_in_the_browser(dash_duo, app_cache, tmp_path):
    from rtplan_assist.app import create_app
    from test_app_browser import _choose  # picks an option of a Dash 4 dcc.Dropdown

    db = tmp_path / "records.sqlite"
    app = create_app(None, cache_dir=app_cache, records_db=str(db), users=_users(tmp_path))
    dash_duo.start_server(app, navigate=False)
    base = dash_duo.server.url.rstrip("/")
    driver = dash_duo.driver

    # a viewer sees the form but cannot record
    _login(dash_duo, base, "vera")
    driver.get(base + "/composite")
    dash_duo.wait_for_element("#decision-readonly", timeout=60)
    assert not dash_duo.find_element("#record-decision").is_enabled()

    # a clinician records the shown choice (the recommendation) in session 1
    _login(dash_duo, base, "carl")
    driver.get(base + "/composite")
    dash_duo.wait_for_element("#chosen-table", timeout=PREPARE_TIMEOUT_S)
    dash_duo.wait_for_element("#history-empty", timeout=60)
    recommended_l2 = dash_duo.find_element("#composite-chosen-L2").text
    first = _record(dash_duo, "consensus: as recommended")
    item = dash_duo.wait_for_element(f"#record-{first}", timeout=60)
    assert "Dr Carl Clinician (clinician)" in item.text and "consensus" in item.text
    session_1 = driver.current_window_handle

    # its PDF carries the record id (the shown choice is the recorded one)
    _click(dash_duo, "#export-pdf")
    downloads = Path(dash_duo.download_path)
    deadline = time.monotonic() + 180
    while not list(downloads.glob("*.pdf")) and time.monotonic() < deadline:
        time.sleep(0.5)
    (pdf,) = downloads.glob("*.pdf")
    time.sleep(0.5)  # let Chromium finish writing it
    text = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout
    flat = re.sub(r"\s+", "", text)
    assert f"MDTdecisionrecord{first}" in flat and "exportedbyDrCarlClinician" in flat

    # session 2 (a new tab: its own session): an unrecorded choice of its own, then a record
    driver.switch_to.new_window("tab")
    driver.get(base + "/lesion/L2")
    dash_duo.wait_for_element("#comparison-table", timeout=PREPARE_TIMEOUT_S)
    other = "50 Gy/10" if recommended_l2 != "50 Gy/10" else "60 Gy/15"
    _choose(dash_duo, "lesion-choice", other)
    dash_duo.wait_for_element(f"th.col-chosen[data-regimen='{other}']", timeout=60)
    driver.get(base + "/composite")
    dash_duo.wait_for_text_to_equal("#composite-chosen-L2", other, timeout=120)
    dash_duo.wait_for_element(f"#record-{first}", timeout=60)  # session 1's record
    second = _record(dash_duo, "session two: L2 de-escalated")
    dash_duo.wait_for_element(f"#record-{second}", timeout=60)

    # session 1 sees session 2's record, but not its unrecorded choice
    driver.switch_to.window(session_1)
    driver.get(base + "/composite")
    dash_duo.wait_for_element(f"#record-{second}", timeout=120)
    dash_duo.wait_for_element(f"#record-{first}", timeout=10)
    dash_duo.wait_for_text_to_equal("#composite-chosen-L2", recommended_l2, timeout=60)
    assert main(["verify-records", "--db", str(db)]) == 0
