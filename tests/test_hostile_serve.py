"""``serve`` against hostile requests and arguments (issue 18): Host header, bad port."""

from __future__ import annotations

import dash
import pytest

from rtplan_assist.cli import main


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app as `serve` builds it (demo patient), captured instead of listening."""
    captured = {}

    def run(self, **kwargs):
        captured["app"], captured["kwargs"] = self, kwargs

    def run_server(app, sock, **kwargs):  # the production server (gunicorn), not started
        captured["app"], captured["kwargs"] = app, kwargs

    mp = pytest.MonkeyPatch()
    mp.setattr(dash.Dash, "run", run)
    mp.setattr("rtplan_assist.app.server.bind_socket", lambda host, port: None)
    mp.setattr("rtplan_assist.app.server.run_server", run_server)
    mp.setattr("signal.signal", lambda *a: None)
    try:
        code = main(["serve", "--cache-dir", str(tmp_path_factory.mktemp("cache"))])
    finally:
        mp.undo()
    assert code == 0
    return captured["app"]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8050", "127.0.0.1.nip.io"])
def test_foreign_host_header_is_refused(served, host):
    # On main any Host was served: a DNS-rebinding page could drive the loopback app.
    client = served.server.test_client()
    answer = client.get("/_dash-layout", headers={"Host": host})
    assert answer.status_code == 421
    assert client.get("/_dash-layout", headers={"Host": "127.0.0.1:8050"}).status_code == 200
    assert client.get("/_dash-layout", headers={"Host": "localhost:8050"}).status_code == 200


@pytest.mark.parametrize("port", ["70000", "0", "-1"])
def test_bad_port_is_one_line_exit_2(port, capsys):
    # On main: exit 70 "internal error OverflowError" after the app was built.
    assert main(["serve", "--port", port]) == 2
    err = capsys.readouterr().err
    assert "internal error" not in err and "--port" in err
