"""Serving the app (issue 15): preparation progress as percentage and step count."""

from __future__ import annotations

from rtplan_assist.app.callbacks.patient import progress_text


def test_progress_text_says_percent_and_step():
    assert progress_text(4, 10, "L1 at 54 Gy/3: DVHs and constraints") == (
        "40 % · step 4 of 10 · L1 at 54 Gy/3: DVHs and constraints")
    assert progress_text(0, 0, "reading the DICOM files").startswith("0 % · step 0 of 1 ·")
    assert progress_text(53, 53, "done").startswith("100 % · step 53 of 53")


# -- the production server: sessions keep working whichever worker answers ------------------
def test_an_upload_stored_by_one_worker_is_seen_by_another(tmp_path):
    """Two Uploads on one folder stand for two worker processes (no shared memory)."""
    from rtplan_assist.app.services.uploads import Uploads
    from rtplan_assist.app.upload import UploadLimits

    contents, names = _upload_of_demo_l1()
    a = Uploads(tmp_path, UploadLimits())
    b = Uploads(tmp_path, UploadLimits())
    entry, replaced = a.store("session-1", contents, names)
    assert replaced is None
    seen = b.of("session-1")
    assert seen == entry and b.find("session-1", entry.key) == entry
    assert b.of("session-2") is None and b.find("session-2", entry.key) is None
    b.seen("session-1")
    assert b.discard("session-1", idle_s=3600.0) is None  # active: another worker keeps it
    assert a.of("session-1") == entry
    newer, replaced = b.store("session-1", contents, names)  # replaced through the other one
    assert replaced == entry and not entry.upload_dir.exists()
    assert a.of("session-1") == newer
    assert a.discard("session-1") == newer and b.of("session-1") is None
    assert not newer.upload_dir.exists()


def _upload_of_demo_l1():
    """The browser's upload of the demo's structure set, plan and dose of L1 (data URLs)."""
    import base64

    from rtplan_assist.demo import demo_case_folder

    folder = demo_case_folder()
    names = ["RS.dcm", "RP.L1.dcm", "RD.L1.dcm"]
    contents = ["data:application/dicom;base64," + base64.b64encode(
        (folder / n).read_bytes()).decode() for n in names]
    return contents, names


def test_two_requests_of_one_session_answered_by_different_workers_see_the_same_state(
        app_cache, tmp_path):
    """`serve` with 2 worker processes: a session uploads a patient (answered by one worker);
    then it picks that patient in concurrent requests until another worker has answered too
    (the access log names the worker of each request by its X-Request-Id). Every answer must
    select the upload and list it in the picker: the upload is the session's server-side state.
    Also the demo's regimen change with an added regimen of this session, through both."""
    import json as _json
    import time
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from app_http import CALLBACK_PATH, callback_payload, regimen_change_payload, serve_process

    from rtplan_assist.app import create_app

    app = create_app(None, cache_dir=app_cache)  # builds the request bodies; prepares the demo
    app.rtplan_state.prepare(app.rtplan_state.entries[0])
    demo_key = app.rtplan_state.entries[0].key
    log = tmp_path / "access.log"
    url = ""

    def post(payload, rid):
        request = urllib.request.Request(
            url + CALLBACK_PATH, data=_json.dumps(payload).encode(), method="POST",
            headers={"Content-Type": "application/json", "X-Request-Id": rid})
        with urllib.request.urlopen(request, timeout=300) as answer:
            return _json.loads(answer.read())["response"]

    def worker_of() -> dict[str, str]:
        found = {}
        for line in log.read_text().splitlines() if log.exists() else []:
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if "request-id" in fields:
                found[fields["request-id"]] = fields["pid"]
        return found

    try:
        with serve_process(app_cache, workers=2, threads=1, access_log=log) as served:
            url = served.url
            session = "cross-worker-1"
            contents, names = _upload_of_demo_l1()
            answer = post(callback_payload(app, "patient.data", {
                "session-id.data": session, "upload.contents": contents, "upload.filename": names,
                "patient.data": None}, "upload.contents"), "upload")
            key = answer["patient"]["data"]["key"]
            assert key.startswith("u-")

            def pick(rid):
                return rid, post(callback_payload(app, "patient.data", {
                    "session-id.data": session, "patient-picker.value": key,
                    "patient.data": {"key": demo_key}}, "patient-picker.value"), rid)

            answers = []
            for round_ in range(10):
                with ThreadPoolExecutor(6) as pool:
                    answers += list(pool.map(pick, [f"pick-{round_}-{i}" for i in range(6)]))
                time.sleep(0.3)  # the access log is written after the answer
                pids = worker_of()
                if len({pids.get(rid) for rid, _ in answers} - {None, pids.get("upload")}) >= 1:
                    break
            pids = worker_of()
            assert pids.get("upload"), log.read_text()
            others = [rid for rid, _ in answers if pids.get(rid) not in (None, pids["upload"])]
            assert others, f"every request went to one worker: {pids}"
            for rid, out in answers:
                assert out["patient"]["data"] == {"key": key}, (rid, out)
                assert key in [o["value"] for o in out["patient-picker"]["options"]], (rid, out)
            # the session's choices (an added regimen) through both workers
            own = "41 Gy/11"
            for i in range(6):
                change = post(regimen_change_payload(app, session=session, patient_key=demo_key,
                                                     lesion_id="L2", regimen=own), f"regimen-{i}")
                assert change["lesion-choice"]["value"] == own
                assert own in [o["value"] for o in change["lesion-choice"]["options"]]
    finally:
        app.rtplan_state.close()
