"""The app over loopback HTTP, driven the way a browser drives it (tests and benches/bench_load.py).

* :func:`serve` runs the real app (``create_app``) in a threaded werkzeug server on
  127.0.0.1 and records every warning or error the server logs; :func:`serve_process` runs
  ``rtplan-assist serve`` (the production server, gunicorn workers) in its own process.
* :func:`callback_payload` builds the JSON body the Dash renderer POSTs to
  ``/_dash-update-component`` for one callback, from the app's own ``callback_map`` (output
  key, outputs, inputs, state, changed property), so it follows the callbacks in
  ``app/callbacks/`` as they are.
* :func:`regimen_change_payload` is the request of a regimen change on the lesion screen: the
  ``render_lesion`` callback fired by the new ``choices`` store.
* :func:`post_callback` sends one body and returns the status, the decoded response and the
  latency (s).
* :func:`concurrent_regimen_changes` sends one regimen change per session, all at once, and
  :func:`regimen_change_problems` checks each answer (the load test and
  ``benches/bench_load.py``).
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RegimenChange", "ServerLog", "callback_payload", "concurrent_regimen_changes",
           "post_callback", "regimen_change_payload", "regimen_change_problems",
           "screen_payloads", "serve", "serve_process", "session_regimen"]

CALLBACK_PATH = "/_dash-update-component"


class ServerLog(logging.Handler):
    """Log records at WARNING and above from the server (werkzeug and the Flask app)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [f"{r.name} {r.levelname}: {r.getMessage()}" for r in self.records]


@contextmanager
def serve(app):
    """Serve ``app`` (a Dash app) on 127.0.0.1 at a free port, in a thread.

    Yields
    ------
    (url, log) : (str, ServerLog)
        The base URL (``http://127.0.0.1:<port>``) and the server's warnings and errors.
    """
    from werkzeug.serving import make_server

    log = ServerLog()
    loggers = [logging.getLogger("werkzeug"), app.server.logger]
    for logger in loggers:
        logger.addHandler(log)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="app-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", log
    finally:
        server.shutdown()
        thread.join(timeout=10)
        for logger in loggers:
            logger.removeHandler(log)


@dataclass
class ServedProcess:
    """A running ``rtplan-assist serve`` (:func:`serve_process`)."""

    url: str
    proc: subprocess.Popen
    log_path: Path
    output: str = ""  # everything it wrote to stdout and stderr, filled once it has stopped


@contextmanager
def serve_process(cache_dir, *, workers: int = 2, threads: int = 4, access_log=None,
                  start_timeout_s: float = 120.0):
    """``rtplan-assist serve`` (gunicorn, ``workers`` x ``threads``) on a free loopback port, in
    its own process, on the demo patient with ``--cache-dir cache_dir``; yields a
    :class:`ServedProcess` once it answers, and stops it (SIGTERM) afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tempfile.NamedTemporaryFile("w+", prefix="serve-", suffix=".log")
    cmd = [sys.executable, "-m", "rtplan_assist.cli", "serve", "--port", str(port),
           "--cache-dir", str(cache_dir), "--workers", str(workers), "--threads", str(threads)]
    if access_log:
        cmd += ["--access-log", str(access_log)]
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    served = ServedProcess(f"http://127.0.0.1:{port}", proc, Path(out.name))
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                urllib.request.urlopen(served.url + "/_dash-layout", timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start: " + served.log_path.read_text())
                time.sleep(0.3)
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        served.output = served.log_path.read_text()
        out.close()


def _output_key(app, output: str) -> str:
    """The ``callback_map`` key of the callback that has ``output`` (``"id.property"``)."""
    keys = [k for k in app.callback_map if output in k.strip(".").split("...")]
    if len(keys) != 1:
        raise KeyError(f"{len(keys)} callbacks output {output}")
    return keys[0]


def callback_payload(app, output: str, values: dict[str, object], changed: str) -> dict:
    """The JSON body the renderer POSTs for the callback with ``output``.

    Parameters
    ----------
    app : dash.Dash
    output : str
        One output of the callback, ``"id.property"``.
    values : dict
        ``"id.property"`` -> value for every input and state of the callback (missing ones are
        sent as None, as the renderer does for props never set).
    changed : str
        The input that fired, ``"id.property"``.
    """
    key = _output_key(app, output)
    spec = app.callback_map[key]

    def entries(kind):
        return [{**d, "value": values.get(f"{d['id']}.{d['property']}")} for d in spec[kind]]

    outputs = [dict(zip(("id", "property"), part.rsplit(".", 1)))
               for part in key.strip(".").split("...")]
    if not key.startswith(".."):  # one output: the renderer sends it alone, not in a list
        outputs = outputs[0]
    return {"output": key, "outputs": outputs, "inputs": entries("inputs"),
            "changedPropIds": [changed], "state": entries("state")}


def regimen_change_payload(app, *, session: str, patient_key: str, lesion_id: str,
                           regimen: str) -> dict:
    """The lesion screen's request after the user chose ``regimen`` for ``lesion_id``.

    The ``choices`` store then holds ``{patient_key: {"choice": {lesion_id: regimen}}}``
    (``change_choice``), which fires ``render_lesion`` with the session's id and the page's
    lesion as state.
    """
    return callback_payload(app, "lesion-table.children", {
        "loaded.data": {"key": patient_key},
        "choices.data": {patient_key: {"choice": {lesion_id: regimen}}},
        "page-lesion.data": lesion_id,
        "session-id.data": session,
    }, changed="choices.data")


def screen_payloads(app, *, key: str, session: str, choices: dict) -> dict[str, dict]:
    """The request of every screen of one patient, as a browser sends them: overview, a
    regimen change (L1 → 48 Gy/4), the lesion screen with ``choices`` (L2), the DVH and the
    dose view of L2 (49 Gy/7), the composite dose, the composite/MDT screen, and the CSV
    and PDF exports (``choices`` is the ``choices`` store, e.g. with an added 49 Gy/7)."""
    loaded = {"key": key}
    return {
        "overview": callback_payload(app, "overview-content.children", {
            "loaded.data": loaded, "choices.data": {}, "session-id.data": session}, "loaded.data"),
        "regimen change": regimen_change_payload(app, session=session, patient_key=key,
                                                 lesion_id="L1", regimen="48 Gy/4"),
        "added regimen": callback_payload(app, "lesion-table.children", {
            "loaded.data": loaded, "choices.data": choices, "page-lesion.data": "L2",
            "session-id.data": session}, "choices.data"),
        "DVH": callback_payload(app, "dvh-graph.figure", {
            "dvh-regimens.value": ["49 Gy/7", "60 Gy/8"], "dvh-kind.value": "EQD2",
            "loaded.data": loaded, "page-dvh.data": "L2", "session-id.data": session},
            "dvh-kind.value"),
        "dose view": callback_payload(app, "dose-graph.figure", {
            "dose-slider.value": 7.5, "dose-regimen.value": "49 Gy/7",
            "dose-plane.value": "axial", "loaded.data": loaded, "choices.data": choices,
            "page-dose.data": "L2", "session-id.data": session}, "dose-slider.value"),
        "composite dose": callback_payload(app, "dose-graph.figure", {
            "dose-slider.value": 7.5, "dose-regimen.value": "3.0", "dose-plane.value": "axial",
            "loaded.data": loaded, "choices.data": choices, "page-dose.data": "composite",
            "session-id.data": session}, "dose-regimen.value"),
        "composite": callback_payload(app, "composite-content.children", {
            "loaded.data": loaded, "choices.data": choices, "session-id.data": session},
            "choices.data"),
        "CSV": callback_payload(app, "download-csv.data", {
            "export-csv.n_clicks": 1, "loaded.data": loaded, "choices.data": choices,
            "session-id.data": session}, "export-csv.n_clicks"),
        "PDF": callback_payload(app, "download-pdf.data", {
            "export-pdf.n_clicks": 1, "loaded.data": loaded, "choices.data": choices,
            "session-id.data": session}, "export-pdf.n_clicks"),
    }


def post_callback(url: str, payload: dict, *, timeout_s: float = 300.0):
    """POST one callback body; returns ``(status, response JSON or text, latency in s)``."""
    request = urllib.request.Request(
        url + CALLBACK_PATH, data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body, status = response.read(), response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    latency = time.perf_counter() - t0
    try:
        return status, json.loads(body), latency
    except ValueError:
        return status, body.decode(errors="replace"), latency


def session_regimen(i: int) -> str:
    """A regimen of session ``i``'s own (``40+i Gy/11``): in no regimen table, so it appears in
    an answer only if that session added it."""
    return f"{40 + i} Gy/11"


@dataclass
class RegimenChange:
    """One regimen-change request of the load test and its answer."""

    session: str
    regimen: str
    status: int = 0
    response: object = None
    latency_s: float = float("nan")

    def outputs(self) -> dict:
        """``{component id: {property: value}}`` of a 200 answer, else ``{}``."""
        if self.status == 200 and isinstance(self.response, dict):
            return self.response.get("response") or {}
        return {}

    def options(self) -> list[str]:
        return [o["value"] for o in self.outputs().get("lesion-choice", {}).get("options", [])]


def concurrent_regimen_changes(app, url: str, requests: list[tuple[str, str]], *,
                               patient_key: str, lesion_id: str) -> tuple[list, float]:
    """Send one regimen change per ``(session, regimen)`` pair, all released at once.

    Returns
    -------
    (changes, wall_s) : (list of RegimenChange, float)
        In the order of ``requests``; ``wall_s`` from the release to the last answer (s).
    """
    changes = [RegimenChange(session, regimen) for session, regimen in requests]
    start = threading.Barrier(len(changes) + 1)

    def send(change: RegimenChange) -> None:
        payload = regimen_change_payload(app, session=change.session, patient_key=patient_key,
                                         lesion_id=lesion_id, regimen=change.regimen)
        start.wait()
        change.status, change.response, change.latency_s = post_callback(url, payload)

    with ThreadPoolExecutor(len(changes)) as pool:
        futures = [pool.submit(send, change) for change in changes]
        start.wait()
        t0 = time.perf_counter()
        for future in futures:
            future.result()
        wall_s = time.perf_counter() - t0
    return changes, wall_s


def regimen_change_problems(change: RegimenChange, *, lesion_id: str,
                            foreign: set[str] = frozenset()) -> list[str]:
    """What is wrong with one answer (empty when it is right).

    Right: HTTP 200; the lesion's title; the dropdown's value is the chosen regimen and its
    options hold it; none of ``foreign`` (regimens only other sessions added) is offered; the
    comparison table marks the chosen column (``data-regimen`` of ``th.col-chosen``).
    """
    if change.status != 200:
        return [f"{change.session}: HTTP {change.status}: {str(change.response)[:300]}"]
    out = change.outputs()
    problems = []
    title = out.get("lesion-title", {}).get("children", "")
    if not str(title).startswith(f"Lesion {lesion_id}:"):
        problems.append(f"{change.session}: title {title!r}")
    if out.get("lesion-choice", {}).get("value") != change.regimen:
        problems.append(f"{change.session}: chosen {out.get('lesion-choice', {}).get('value')!r}"
                        f" instead of {change.regimen!r}")
    options = change.options()
    if change.regimen not in options:
        problems.append(f"{change.session}: {change.regimen} not among the options {options}")
    leaked = sorted(foreign & set(options))
    if leaked:
        problems.append(f"{change.session}: other sessions' regimens offered: {leaked}")
    chosen = _chosen_columns(out.get("lesion-table"))
    if chosen != [change.regimen]:
        problems.append(f"{change.session}: the table's chosen column is {chosen}")
    return problems


def _chosen_columns(tree) -> list[str]:
    """``data-regimen`` of the header cells marked ``col-chosen``: the comparison table is one
    HTML text (``app/views.comparison_table_html``) inside a ``dcc.Markdown``."""
    import html
    import re

    found = []
    for props in _component_props(tree):
        text = props.get("children")
        if isinstance(text, str) and 'id="comparison-table"' in text:
            for classes, label in re.findall(r'<th class="([^"]*)" data-regimen="([^"]*)"', text):
                if "col-chosen" in classes.split():
                    found.append(html.unescape(label))
    return found


def _component_props(node):
    """The props of every component in a callback answer (a JSON tree of components)."""
    if isinstance(node, dict):
        if "props" in node and "type" in node:
            yield node["props"]
        for value in node.values():
            yield from _component_props(value)
    elif isinstance(node, list):
        for value in node:
            yield from _component_props(value)
