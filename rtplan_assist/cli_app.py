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
                   help="Dash debug mode (reloader, dev tools); never on a shared network")
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
    print(f"rtplan-assist: serving {what} on http://{shown}:{args.port}/ (Ctrl+C stops)",
          file=sys.stderr)
    try:
        app.run(host=args.host, port=args.port, debug=bool(args.debug),
                use_reloader=bool(args.debug))
    except OSError as exc:  # port in use, no permission for a port below 1024, bad address
        raise RtplanAssistError(
            f"cannot listen on {shown}:{args.port} ({exc.strerror or exc}); choose another "
            "--port or --host") from None
    return 0
