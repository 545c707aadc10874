"""``rtplan-assist`` command line.

Every command reports bad input as one line on stderr (``rtplan-assist: error: ...``) and a
non-zero exit code, never a traceback (set ``RTPLAN_ASSIST_DEBUG=1`` to see one). Commands
live in small modules that expose ``register(subparsers)``; their handlers return the
process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from . import __version__
from .errors import RtplanAssistError

# Modules that add sub-commands, in the order they are listed in --help.
COMMAND_MODULES = (
    "rtplan_assist.cli_dvh",
    "rtplan_assist.cli_evaluate",
    "rtplan_assist.cli_batch",
    "rtplan_assist.cli_app",
    "rtplan_assist.cli_records",
)

EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug, not the user's input


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtplan-assist",
        description="Radiotherapy planning assistant: DVHs, BED/EQD2 per lesion, OAR constraints.",
    )
    parser.add_argument("--version", action="version", version=f"rtplan-assist {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    if not os.environ.get("RTPLAN_ASSIST_DEBUG"):
        # pydicom warns about each odd value on stderr; the loader reports what matters as
        # warnings of its own (without patient identifiers) or as one typed error line
        warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args) or 0)
    except RtplanAssistError as exc:
        print(f"rtplan-assist: error: {_message(args, exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("rtplan-assist: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if os.environ.get("RTPLAN_ASSIST_DEBUG"):
            raise
        print(
            f"rtplan-assist: internal error: {type(exc).__name__}: {_message(args, exc)} "
            "(a bug: please report it; RTPLAN_ASSIST_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _message(args, exc: BaseException) -> str:
    """The error on one line; with ``--deidentify``, the input folder (often named after the
    patient) is replaced by ``<patient folder>`` (the message then names files inside it)."""
    text = _one_line(str(exc))
    if getattr(args, "deidentify", False):
        from .deidentify import redact_paths

        text = redact_paths(text, [getattr(args, "path", None), getattr(args, "root", None)])
    return text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
