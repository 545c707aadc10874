"""Host header check: the app answers only to the names of the address it is bound to.

A page on another site can make a browser resolve its own host name to 127.0.0.1 (DNS
rebinding) and then drive a loopback-only app as if it were that site. Such requests carry
the attacker's name in the ``Host`` header; a request whose host is not a name of the bound
address is refused with 421 (Misdirected Request) before any callback runs (issue 18).

Bound to every interface (``0.0.0.0``, ``::``), the app cannot know its names and accepts any
(``serve`` warns that such an app is open to the network).
"""

from __future__ import annotations

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def allowed_host_names(host: str) -> frozenset[str] | None:
    """Host names (lower case, no port, IPv6 without brackets) accepted for an app bound to
    ``host``; ``None`` when bound to every interface (any name)."""
    host = host.strip().strip("[]").lower()
    if host in ("", "0.0.0.0", "::"):
        return None
    from rtplan_assist.cli_app import is_loopback

    names = {host}
    if is_loopback(host):
        names.update(LOOPBACK_NAMES)
    return frozenset(names)


def host_name(header: str) -> str:
    """The host name of a ``Host`` header (``[::1]:8050`` -> ``::1``, ``a.b:80`` -> ``a.b``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header[1:]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def install_host_check(server, host: str) -> None:
    """Refuse (421) every request to the Flask ``server`` whose Host header is not a name of
    ``host``, the address the app is bound to."""
    allowed = allowed_host_names(host)
    if allowed is None:
        return
    from flask import request

    shown = ", ".join(sorted(allowed))

    @server.before_request
    def _check_host():
        if host_name(request.headers.get("Host", "")) not in allowed:
            return (
                f"rtplan-assist answers only to {shown}; this request named another host "
                "(refused: DNS rebinding protection).",
                421,
                {"Content-Type": "text/plain; charset=utf-8"},
            )
        return None
