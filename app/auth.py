"""Logins for a shared deployment: a login page, a guard on every request, the current user.

``serve`` on an address other than loopback requires logins (``--users FILE|db``); on
loopback they are optional. With logins on, every request but the login page needs a signed
session cookie (Flask session: HttpOnly, SameSite=Lax); Dash callback requests without one get
401, pages a redirect to ``/login``. The user's name and role come from the users file or the
database (:mod:`rtplan_assist.records.users`): viewer (read), clinician (record decisions),
admin. Failed and successful logins are logged with the user name and address, never the
password. Set ``RTPLAN_ASSIST_SECRET_KEY`` to the same value on every worker behind one proxy
(otherwise each process signs cookies with its own random key).
"""

from __future__ import annotations

import html
import logging
import os
import secrets
from datetime import timedelta
from urllib.parse import urlparse

from rtplan_assist.records.users import User

__all__ = ["LOCAL_USER_ROLE", "current_user", "install_auth"]

log = logging.getLogger("rtplan_assist.app.auth")
SECRET_ENV = "RTPLAN_ASSIST_SECRET_KEY"
#: Role of the single local user of a login-free (loopback) app.
LOCAL_USER_ROLE = "clinician"
_OPEN_PATHS = ("/login", "/logout")

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>rtplan-assist: sign in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto}}
label,input,button{{display:block;width:100%;margin:.3rem 0}}input{{padding:.4rem}}
.error{{color:#a00}}</style></head><body>
<h1>rtplan-assist</h1><p>Sign in to see patients and record MDT decisions.</p>
{error}<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label for="login-username">User name</label>
<input id="login-username" name="username" autocomplete="username" required autofocus>
<label for="login-password">Password</label>
<input id="login-password" name="password" type="password" autocomplete="current-password"
 required>
<button id="login-submit" type="submit">Sign in</button></form></body></html>"""


def current_user() -> User | None:
    """The signed-in user of this request (None: logins off, or outside a request)."""
    from flask import has_request_context, session

    if not has_request_context():
        return None
    data = session.get("user")
    if not data:
        return None
    return User(data["username"], data["display_name"], data["role"])


def _safe_next(target: str | None) -> str:
    """Only local paths after login (no open redirect)."""
    parsed = urlparse(target or "/")
    if parsed.scheme or parsed.netloc or not (target or "/").startswith("/"):
        return "/"
    return target or "/"


def install_auth(app, users) -> None:
    """Require a login for every request of ``app`` (a Dash app) against ``users`` (a
    :class:`~rtplan_assist.records.users.FileUsers` or ``DbUsers``)."""
    from flask import Response, redirect, request, session

    server = app.server
    server.secret_key = os.environ.get(SECRET_ENV) or secrets.token_bytes(32)
    server.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="rtplan_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    server.config["RTPLAN_AUTH"] = True

    def page(error: str = "", next_path: str = "/", status: int = 200):
        body = _PAGE.format(
            error=f'<p class="error" id="login-error">{html.escape(error)}</p>' if error else "",
            next=html.escape(next_path, quote=True))
        return Response(body, status=status, mimetype="text/html")

    @server.route("/login", methods=["GET", "POST"])
    def login():
        if request.method == "GET":
            return page(next_path=_safe_next(request.args.get("next")))
        username = (request.form.get("username") or "").strip()
        password = request.form.get("password") or ""
        next_path = _safe_next(request.form.get("next"))
        user = users.authenticate(username, password) if username and password else None
        if user is None:
            log.warning("login failed for %r from %s", username[:64], request.remote_addr)
            return page("Wrong user name or password.", next_path, status=401)
        session.clear()
        session.permanent = True
        session["user"] = {"username": user.username, "display_name": user.display_name,
                           "role": user.role}
        log.info("login %s (%s) from %s", user.username, user.role, request.remote_addr)
        return redirect(next_path)

    @server.route("/logout")
    def logout():
        user = current_user()
        session.clear()
        if user is not None:
            log.info("logout %s", user.username)
        return redirect("/login")

    @server.before_request
    def guard():
        if request.path in _OPEN_PATHS or current_user() is not None:
            return None
        if request.path.startswith("/_dash-update-component") or request.method != "GET":
            return Response("sign in first", status=401, mimetype="text/plain")
        return redirect("/login?next=" + request.full_path.rstrip("?"))
