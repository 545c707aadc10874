"""Every callback failure becomes a message on the page, never an HTTP 500 (issue 18).

Dash calls :func:`callback_error_handler`'s handler (``dash.Dash(on_error=...)``) for an
exception in any callback, background ones included. The handler writes a one-line message
into the page's ``app-error`` area (``set_props``), leaves the callback's own outputs as they
were, and logs the traceback; with ``serve --deidentify`` the message and the logged
traceback are scrubbed of every identifier the app knows (IDs, names, folder paths), like
every other answer.
"""

from __future__ import annotations

import logging
import traceback

__all__ = ["ERROR_AREA_ID", "callback_error_handler", "message_for"]

#: id of the ``html.Div`` (in the root layout) that shows a failed callback's message
ERROR_AREA_ID = "app-error"

log = logging.getLogger("rtplan_assist.app")


def message_for(exc: BaseException) -> str:
    """One line for the user: a typed error's own message; what the server could not do for
    a file system problem or a lack of memory; otherwise that it is a bug (details logged)."""
    from rtplan_assist.errors import RtplanAssistError

    if isinstance(exc, RtplanAssistError):
        text = str(exc)
    elif isinstance(exc, OSError):
        text = (f"the server could not read or write a file ({exc.strerror or type(exc).__name__});"
                " the disk may be full or the data unreadable. Try again later or tell the "
                "administrator.")
    elif isinstance(exc, MemoryError):
        text = "the server ran out of memory for this request; try a smaller selection."
    else:
        text = (f"internal error ({type(exc).__name__}); this screen could not be updated. "
                "The details are in the server log (a bug: please report it).")
    return " ".join(text.split())


def callback_error_handler(services):
    """The ``on_error`` handler of an app whose services are ``services`` (their ``scrub``
    withholds identifiers in de-identified mode)."""

    def handle(exc: Exception):
        from dash import set_props
        import dash_bootstrap_components as dbc

        text = services.scrub(message_for(exc))
        details = services.scrub("".join(traceback.format_exception(exc)))
        log.error("a callback failed: %s\n%s", text, details)
        set_props(ERROR_AREA_ID, {"children": dbc.Alert(
            text, color="danger", dismissable=True, className="mb-2")})
        return None  # the callback's own outputs stay as they were

    return handle
