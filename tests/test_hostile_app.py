"""The app against hostile files and failures (issue 18): output names from a PatientID,
Markdown/HTML/plotly escaping of ROI names, callbacks that fail, the preparation's pipes, the
global upload-storage cap."""

from __future__ import annotations

import base64
import io
import logging
import sys
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from app_http import callback_payload
from test_app_unit import Row, _dvh
from test_dicom_synthetic import square, write_struct

from rtplan_assist.app import create_app
from rtplan_assist.app.figures import dvh_figure
from rtplan_assist.app.lesion_view import comparison_table
from rtplan_assist.errors import UploadError

ESCAPE_NAME = "PTV\n\n![x](http://evil.example/x.png) [click](http://evil.example)"


def test_roi_name_cannot_break_out_of_the_comparison_table():
    # On main a blank line in a name ended the HTML block: the rest became Markdown (an
    # image fetched from another host, clickable links) and the table collapsed.
    row = Row(ESCAPE_NAME, "D0.03cc[Gy]", 30.0, "pass", limit=32.0)
    table = comparison_table({"50 Gy/5": [row]}, chosen=None, recommended=None).children[1]
    assert "\n" not in table.children and "&#10;&#10;" in table.children


def test_plotly_legends_show_names_as_text():
    # On main plotly drew <a href> in a legend entry as a link.
    name = "<a href='http://evil.example'>Cord</a> %{x}"
    fig = dvh_figure([(name, "50 Gy/5", _dvh())], kind="physical")
    assert "<a" not in fig.data[0].name and "%{x}" not in fig.data[0].hovertemplate
    assert fig.data[0].name.startswith("&lt;a href='http://evil.example'&gt;Cord&lt;/a&gt;")


def _patient(folder: Path, pid: str) -> Path:
    write_struct(folder / "RS.dcm", [(1, "PTV", "PTV", [("CLOSED_PLANAR", square(0.0))])],
                 patient_id=pid)
    return folder


@pytest.fixture(scope="module")
def odd_app(tmp_path_factory):
    folder = _patient(tmp_path_factory.mktemp("data") / "DOE_JANE", "../../../../tmp/evil")
    app = create_app(folder, cache_dir=tmp_path_factory.mktemp("cache"), deidentify=True)
    yield app
    app.rtplan_state.close()


def _callback(app, output):
    key = next(k for k in app.callback_map if output in k)
    return app.callback_map[key]["callback"].__wrapped__


def test_pdf_name_from_a_patient_id_stays_in_its_folder(odd_app, monkeypatch):
    # On main the PDF export named the file after the PatientID: '../..' wrote anywhere.
    from rtplan_assist.app.callbacks import composite

    written = []
    result = SimpleNamespace(patient_id="../../../../tmp/evil")
    loaded = SimpleNamespace(entry=SimpleNamespace(key="k"), evaluator=None,
                             lock=threading.Lock(), result=lambda _prefs: (result, {}))
    monkeypatch.setattr(composite, "loaded_patient", lambda *a: loaded)
    monkeypatch.setattr(composite, "pdf_attribution", lambda *a: None)

    def render(_result, _evaluator, path, **_kw):
        written.append(Path(path))
        Path(path).write_bytes(b"%PDF-")

    monkeypatch.setattr(composite, "render_report_pdf", render)
    answer, _ = _callback(odd_app, "download-pdf.data")(1, {"key": "k"}, {}, "s1")
    workdir = Path(odd_app.rtplan_state.workdir).resolve()
    assert workdir in written[0].resolve().parents
    assert "/" not in answer["filename"] and not answer["filename"].startswith(".")


def test_failing_callback_answers_a_message_not_500(odd_app, monkeypatch, caplog):
    # On main an untyped exception in a callback was an HTTP 500 with nothing on screen, and
    # the logged traceback named the patient folder even with --deidentify.
    services = odd_app.rtplan_state
    folder = str(services.patients.entries[0].folder)
    assert folder.endswith("DOE_JANE")

    def broken(*_a, **_k):
        raise FileNotFoundError(2, "No such file or directory", f"{folder}/CT.1.dcm")

    monkeypatch.setattr(services, "patient", broken)
    payload = callback_payload(odd_app, "composite-content.children", {
        "loaded.data": {"key": "k"}, "choices.data": {}, "session-id.data": "s1"},
        "loaded.data")
    client = odd_app.server.test_client()
    with caplog.at_level(logging.ERROR):
        answer = client.post("/_dash-update-component", json=payload)
    assert answer.status_code in (200, 204)
    body = answer.get_data(as_text=True)
    assert "app-error" in body and "could not read or write a file" in body
    assert "DOE_JANE" not in body and "DOE_JANE" not in caplog.text
    assert "FileNotFoundError" in caplog.text  # the details are logged, scrubbed


def test_preparation_output_on_stderr_cannot_deadlock(tmp_path, monkeypatch):
    # On main stderr was a pipe read only after stdout ended: a job writing more than the
    # pipe holds blocked both processes (and the per-patient lock) forever.
    from rtplan_assist.app.services import prepared

    chatter = ("import sys\nsys.stderr.write('w' * 1_000_000)\nsys.stderr.flush()\n"
               "print('PROGRESS 1 1 done', flush=True)\nprint('ERROR refused: test')\n"
               "sys.exit(3)\n")
    real = prepared.subprocess.Popen
    monkeypatch.setattr(prepared.subprocess, "Popen",
                        lambda cmd, **kw: real([sys.executable, "-c", chatter], **kw))
    cache = prepared.PreparedCache(tmp_path)
    entry = SimpleNamespace(folder=_patient(tmp_path / "p", "P1"), key="k")
    outcome = {}

    def run():
        try:
            cache.prepare(entry)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the preparation deadlocked on its stderr pipe"
    assert "refused: test" in str(outcome["error"])


def _zip_url(members: dict[str, bytes]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return "data:application/zip;base64," + base64.b64encode(buf.getvalue()).decode()


def test_upload_storage_has_a_global_cap(tmp_path, monkeypatch):
    # On main every session could store up to its own cap, with no bound over all sessions.
    from rtplan_assist.app.services import AppServices
    from rtplan_assist.app.upload import UploadLimits

    limits = UploadLimits(max_stored_bytes=3 * 2**20)
    st = AppServices(None, cache_dir=tmp_path / "cache", limits=limits)
    monkeypatch.setattr("rtplan_assist.dicom.find_patient_folders", lambda f: [f])
    two_mb = {"RS.dcm": bytes(2 * 2**20)}
    st.store_upload("s1", [_zip_url(two_mb)], ["a.zip"])
    with pytest.raises(UploadError, match="uploads from other sessions"):
        st.store_upload("s2", [_zip_url(two_mb)], ["b.zip"])
    assert len(list(st.upload_root.iterdir())) == 1  # the refused upload left nothing
    st.store_upload("s1", [_zip_url(two_mb)], ["c.zip"])  # a session may replace its own
    st.close()


def test_preparation_crash_shows_no_traceback_in_the_page(tmp_path, monkeypatch, caplog):
    # On main the last three stderr lines of a crashed preparation (a traceback fragment
    # naming files) were the page's message.
    from rtplan_assist.app.services import prepared

    crash = ("import sys\nsys.stderr.write('Traceback (most recent call last):\\n  File "
             "\"/data/DOE_JANE/RD.dcm\"\\nOSError: [Errno 28] No space left on device\\n')\n"
             "sys.exit(1)\n")
    real = prepared.subprocess.Popen
    monkeypatch.setattr(prepared.subprocess, "Popen",
                        lambda cmd, **kw: real([sys.executable, "-c", crash], **kw))
    cache = prepared.PreparedCache(tmp_path, scrub=lambda t: t.replace("DOE_JANE", "(withheld)"))
    entry = SimpleNamespace(folder=_patient(tmp_path / "p", "P1"), key="k")
    with caplog.at_level(logging.ERROR), pytest.raises(Exception) as info:
        cache.prepare(entry)
    message = str(info.value)
    assert "Traceback" not in message and "DOE_JANE" not in message
    assert "server log" in message
    assert "No space left" in caplog.text and "DOE_JANE" not in caplog.text
