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
import types
import warnings

from . import __version__
from .errors import RtplanAssistError

# NumPy's OpenBLAS starts a thread per core when NumPy is imported (0.05-0.1 s more of every
# command on a busy 2-core machine) for matrix products this tool does not do at scale (its own
# parallelism is the kernels' threads and the batch's workers): one BLAS thread, unless the user
# or the environment chose otherwise. Set before anything imports NumPy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

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


class _DeferredModule(types.ModuleType):
    """A package registered in ``sys.modules`` whose code runs on its first missing attribute
    (``__path__`` too: importing a submodule runs the package's ``__init__`` first)."""

    def __getattr__(self, name: str):
        spec = self.__dict__.get("__spec__")
        if spec is None or self.__dict__.get("_rtplan_loading"):
            raise AttributeError(name)
        self._rtplan_loading = True
        if spec.submodule_search_locations is not None:
            self.__path__ = list(spec.submodule_search_locations)
        spec.loader.exec_module(self)  # the real module's code, into this module object
        self.__class__ = types.ModuleType  # from now on an ordinary module
        return getattr(self, name)


def _defer_requests() -> None:
    """Load ``requests`` only when something uses it.

    ``import pydicom`` runs ``pydicom.data.download``, which imports ``requests`` (with
    urllib3 and charset_normalizer: 0.1-0.3 s) for downloading pydicom's test files, which no
    command does. The module is registered with its spec and package path and executed on its
    first attribute access, so whatever uses it gets the real module. (importlib's LazyLoader
    does not help here on Python 3.11: the import statement itself reads ``__spec__`` of a
    module found in ``sys.modules``, which runs it.) Not for ``serve``: the web stack may use
    it, and start-up does not matter there.
    """
    if "requests" in sys.modules:
        return
    import importlib.util

    try:
        spec = importlib.util.find_spec("requests")
    except (ImportError, ValueError):
        return
    if spec is None or spec.loader is None:
        return
    module = _DeferredModule("requests")
    module.__spec__ = spec
    module.__loader__ = spec.loader
    module.__file__ = spec.origin
    module.__package__ = "requests"
    # no __path__ yet: importing a submodule asks for it, which runs the package first
    sys.modules["requests"] = module


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args_in = sys.argv[1:] if argv is None else argv
    if not args_in or args_in[0] != "serve":
        _defer_requests()
    if not os.environ.get("RTPLAN_ASSIST_DEBUG"):
        # pydicom warns about each odd value on stderr; the loader reports what matters as
        # warnings of its own (without patient identifiers) or as one typed error line
        warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
    parser = build_parser()
    args = parser.parse_args(args_in)
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


def console() -> int:
    """The ``rtplan-assist`` console script: :func:`main`, then the objects it made are left
    out of the interpreter's final garbage collection (``gc.freeze``; 0.03 s of an
    ``evaluate`` process spent walking objects the exit frees anyway). Only here, never in
    :func:`main`, which tests and other programs call in their own process."""
    import gc

    code = main()
    gc.freeze()
    return code


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
    sys.exit(console())
