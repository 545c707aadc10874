"""``rtplan-assist serve [PATH] [--port N] [--host 127.0.0.1] [--debug]``: the Dash app."""

from __future__ import annotations

import ipaddress
import signal
import sys

__all__ = ["register"]

LOOPBACK_NAMES = {"localhost"}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="open the planning assistant in a browser (demo patient without PATH)",
        description=(
            "Start the web app on a patient folder, on a data root holding several patients "
            "(a patient picker), or on the built-in demo patient when PATH is omitted. It "
            "listens on 127.0.0.1 unless --host says otherwise."
        ),
    )
    p.add_argument("path", nargs="?", metavar="PATH",
                   help="patient folder or data root (default: the demo patient)")
    p.add_argument("--port", type=int, default=8050, help="TCP port (default 8050)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="keep prepared evaluations here between runs (default: a temporary "
                        "folder removed at exit)")
    p.add_argument("--debug", action="store_true",
                   help="Dash's development server in debug mode (reloader, dev tools, one "
                        "process); never on a shared network")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes of the production server (gunicorn; default: one "
                        "per core, at least 2); sessions keep working whichever answers")
    p.add_argument("--threads", type=int, default=4, metavar="N",
                   help="threads per worker process (default 4)")
    p.add_argument("--access-log", metavar="FILE",
                   help="one line per request (time, worker pid, status, path, duration) to "
                        "FILE ('-' for stderr); none by default")
    p.add_argument("--deidentify", action="store_true",
                   help="show and export patients by their key (p- + 8 hex digits of the "
                        "SHA-256 of the PatientID) and withhold names and folder names on "
                        "every screen, in the CSV and PDF exports and in messages (e.g. an "
                        "MDT screen shared outside the care team); pseudonymisation, not "
                        "anonymisation: dates, UIDs and structure names stay")
    p.add_argument("--users", metavar="FILE|db",
                   help="require logins: a users file, or 'db' for the users of the decision "
                        "database (rtplan-assist users add ...); required on any address but "
                        "loopback")
    p.add_argument("--db", metavar="URL",
                   help="decision database (default: $RTPLAN_ASSIST_DB, else records.sqlite "
                        "in the user's data directory); PostgreSQL for several workers")
    p.set_defaults(handler=_serve)


def _serve(args) -> int:
    from rtplan_assist.app import create_app
    from rtplan_assist.app.hostcheck import install_host_check
    from rtplan_assist.errors import RtplanAssistError

    if not 1 <= args.port <= 65535:
        raise RtplanAssistError(f"--port {args.port}: a TCP port is 1 to 65535")
    if args.workers is not None and not 1 <= args.workers <= 64:
        raise RtplanAssistError(f"--workers {args.workers}: give 1 to 64 worker processes")
    if not 1 <= args.threads <= 64:
        raise RtplanAssistError(f"--threads {args.threads}: give 1 to 64 threads per worker")

    users = None
    if args.users:
        from rtplan_assist.records.users import open_users

        users = open_users(args.users, args.db)
        if not users.list():
            raise RtplanAssistError(f"--users {args.users}: no user yet; add one with "
                                    "'rtplan-assist users add NAME --role admin ...'")
    elif not is_loopback(args.host):
        raise RtplanAssistError(
            f"listening on {args.host} needs logins: give --users FILE|db (create users with "
            "'rtplan-assist users add NAME --role clinician --file FILE'), or use 127.0.0.1")
    if not is_loopback(args.host):
        print(f"rtplan-assist: warning: listening on {args.host} over plain HTTP: put a TLS "
              "reverse proxy in front so that passwords and patient data are encrypted.",
              file=sys.stderr)
    app = create_app(args.path, cache_dir=args.cache_dir, deidentify=args.deidentify,
                     records_db=args.db, users=users)
    install_host_check(app.server, args.host)
    # SIGTERM (service stop, timeout) exits through atexit, which removes uploads and the
    # temporary work folder; the default handler would leave them behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    state = app.rtplan_state
    where = "the given folder" if args.deidentify else args.path
    what = {"demo": "the demo patient", "folder": f"patient folder {where}",
            "root": f"{len(state.entries)} patients under {where}"}[state.mode]
    if args.deidentify:
        what += ", de-identified"
    shown = f"[{args.host}]" if ":" in args.host else args.host
    from rtplan_assist.app.server import default_workers

    workers = args.workers or default_workers()
    how = ("Dash development server, debug mode" if args.debug
           else f"gunicorn, {workers} worker processes x {args.threads} threads")
    print(f"rtplan-assist: serving {what} on http://{shown}:{args.port}/ ({how}; Ctrl+C stops)",
          file=sys.stderr)
    if args.debug:  # Dash's (Flask's) development server: one process, reloader, dev tools
        try:
            app.run(host=args.host, port=args.port, debug=True, use_reloader=True)
        except OSError as exc:  # port in use, no permission for a port below 1024, bad address
            raise _cannot_listen(shown, args.port, exc) from None
        return 0
    # production: gunicorn worker processes forked from this one (rtplan_assist.app.server)
    from rtplan_assist.app.server import bind_socket, run_server

    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        raise _cannot_listen(shown, args.port, exc) from None
    run_server(app, sock, workers=workers, threads=args.threads,
               access_log=args.access_log)
    return 0


def _cannot_listen(shown: str, port: int, exc: OSError):
    from rtplan_assist.errors import RtplanAssistError

    return RtplanAssistError(f"cannot listen on {shown}:{port} ({exc.strerror or exc}); choose "
                             "another --port or --host")
