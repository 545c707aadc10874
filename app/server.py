"""The production server of ``rtplan-assist serve``: gunicorn, several worker processes.

Why gunicorn and processes: a request of this app is CPU-bound Python (evaluator, figure
building, JSON) that holds the interpreter lock; threads of one process (waitress, or Flask's
development server) answer one such request at a time, so 20 sessions queue behind each
other. gunicorn's pre-fork workers are separate interpreters, each with a few threads for the
requests that wait (file reads, the background preparation's polling).

Sessions keep working whichever worker answers:

* the app is built once in the master (``preload_app``) and the workers are forked from it,
  so they share the work folder, the prepared-evaluation cache on disk, the background-job
  cache and the login secret (a session cookie signed by one worker is valid on the others);
* a session's choices and added regimens travel with every request (the browser's stores); a
  worker that has not seen the session yet unpickles the prepared patient from disk and makes
  its own session copy (``services.sessions``);
* an upload is registered on disk, not in one worker's memory (``services.uploads``).

The socket is bound here, before gunicorn starts, so a port in use or a bad address is the
usual one-line error (exit 2); gunicorn then serves on that descriptor.
"""

from __future__ import annotations

import os
import socket

__all__ = ["bind_socket", "default_workers", "run_server"]


def default_workers() -> int:
    """Worker processes when ``--workers`` is not given: one per core, at least 2, at most 8."""
    return max(2, min(8, os.cpu_count() or 2))


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when ``host`` is one); OSError if not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def run_server(app, sock: socket.socket, *, workers: int, threads: int,
               access_log: str | None = None, timeout_s: int = 300) -> None:
    """Serve the Dash ``app`` with gunicorn on the bound ``sock`` until stopped (SIGINT or
    SIGTERM: graceful stop of the workers, then the master exits through ``SystemExit``).

    ``access_log``: a file for one line per request (time, worker pid, status, method, path,
    bytes, duration in µs, the ``X-Request-Id`` header a proxy may set); none by default.
    Request paths of this app carry no patient data.
    """
    from gunicorn.app.base import BaseApplication

    options = {
        "bind": [f"fd://{sock.fileno()}"],
        "workers": workers,
        # one thread: plain pre-fork workers (each takes one connection at a time)
        "worker_class": "gthread" if threads > 1 else "sync",
        "threads": threads,
        "preload_app": True,  # the app (and its work folder, caches, secret) is built once
        "timeout": timeout_s,  # a first evaluation of a large patient can take minutes
        "graceful_timeout": 10,
        "loglevel": os.environ.get("RTPLAN_ASSIST_SERVER_LOG", "warning"),  # or info, debug
        "errorlog": "-",
        "accesslog": access_log,
        "access_log_format": '%(t)s pid=%(p)s %(s)s "%(m)s %(U)s" %(B)s %(D)sus '
                             'request-id=%({x-request-id}i)s',
        "proc_name": "rtplan-assist",
        "control_socket_disable": True,  # gunicorn >= 24 would write one under ~/.gunicorn
    }

    class _Gunicorn(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return app.server

    _Gunicorn().run()
