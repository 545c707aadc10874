"""Logins of a shared deployment: users, roles and password hashes, from a file or the database.

Roles: ``viewer`` (read), ``clinician`` (also record MDT decisions), ``admin`` (also manage
users). Passwords are hashed with scrypt (:func:`hashlib.scrypt`, RFC 7914; n = 2^15, r = 8,
p = 1, a 16-byte random salt), stored as ``scrypt$15$8$1$<salt>$<key>`` (base64), compared in
constant time, and never logged or echoed.

Users file: CSV with the header ``username,display_name,role,password_hash`` (``rtplan-assist
users add --file FILE`` writes it; keep it readable by the server only).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .snapshot import ROLES, RecordError

__all__ = ["USER_COLUMNS", "DbUsers", "FileUsers", "User", "hash_password", "open_users",
           "verify_password"]

USER_COLUMNS = ("username", "display_name", "role", "password_hash")
_LOG_N, _R, _P = 15, 8, 1
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 10


@dataclass(frozen=True)
class User:
    """A login: ``username``, the name shown and recorded, and a role of :data:`ROLES`."""

    username: str
    display_name: str
    role: str

    def can(self, action: str) -> bool:
        """``read`` (every role), ``record`` (clinician, admin), ``admin``."""
        need = {"read": ROLES, "record": ("clinician", "admin"), "admin": ("admin",)}[action]
        return self.role in need


def hash_password(password: str) -> str:
    """scrypt hash of ``password`` with a fresh salt (``scrypt$15$8$1$salt$key``)."""
    if len(password) < MIN_PASSWORD:
        raise RecordError(f"a password needs at least {MIN_PASSWORD} characters")
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2**_LOG_N, r=_R, p=_P,
                         maxmem=2**26, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_LOG_N}${_R}${_P}${b64(salt).decode()}${b64(key).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored`` (:func:`hash_password`); constant time."""
    try:
        kind, log_n, r, p, salt, key = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(key)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt),
                             n=2 ** int(log_n), r=int(r), p=int(p), maxmem=2**26,
                             dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def _check(username: str, role: str, display_name: str) -> None:
    if not _USERNAME.match(username):
        raise RecordError(f"user name '{username}': 1-64 letters, digits or _ . @ -")
    if role not in ROLES:
        raise RecordError(f"role '{role}': one of {', '.join(ROLES)}")
    if not display_name.strip():
        raise RecordError("a user needs a display name (recorded with each decision)")


class FileUsers:
    """Users in a CSV file (see the module docstring); written atomically."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _read(self) -> dict[str, dict]:
        if not self.path.is_file():
            return {}
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordError(f"{self.path}: cannot read the users file: {exc}") from exc
        reader = csv.DictReader(io.StringIO(text))
        if tuple(reader.fieldnames or ()) != USER_COLUMNS:
            raise RecordError(f"{self.path}: a users file starts with the header "
                              f"{','.join(USER_COLUMNS)}")
        out = {}
        for line, row in enumerate(reader, start=2):
            try:
                _check(row["username"] or "", row["role"] or "", row["display_name"] or "")
            except RecordError as exc:
                raise RecordError(f"{self.path}:{line}: {exc}") from exc
            out[row["username"]] = row
        return out

    def _write(self, rows: dict[str, dict]) -> None:
        from ..outputs import atomic_write_text

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(USER_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for name in sorted(rows):
            writer.writerow({k: rows[name][k] for k in USER_COLUMNS})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, buf.getvalue())
        os.chmod(self.path, 0o600)

    def authenticate(self, username: str, password: str) -> User | None:
        row = self._read().get(username)
        if row is None:
            verify_password(password, _DUMMY)  # same work whether or not the user exists
            return None
        if not verify_password(password, row["password_hash"]):
            return None
        return User(row["username"], row["display_name"], row["role"])

    def add(self, username: str, display_name: str, role: str, password: str) -> None:
        _check(username, role, display_name)
        rows = self._read()
        rows[username] = {"username": username, "display_name": display_name.strip(),
                          "role": role, "password_hash": hash_password(password)}
        self._write(rows)

    def remove(self, username: str) -> None:
        rows = self._read()
        if rows.pop(username, None) is None:
            raise RecordError(f"no user '{username}' in {self.path}")
        self._write(rows)

    def list(self) -> list[User]:
        return [User(r["username"], r["display_name"], r["role"])
                for r in self._read().values()]


class DbUsers:
    """Users in the ``app_user`` table of the decision database."""

    def __init__(self, store):
        self.store = store

    def _get(self, username: str):
        from sqlalchemy import select

        from .models import User as Row

        with self.store.engine.connect() as conn:
            return conn.execute(select(Row.__table__).where(
                Row.__table__.c.username == username)).first()

    def authenticate(self, username: str, password: str) -> User | None:
        row = self._get(username)
        if row is None:
            verify_password(password, _DUMMY)
            return None
        if not verify_password(password, row.password_hash):
            return None
        return User(row.username, row.display_name, row.role)

    def add(self, username: str, display_name: str, role: str, password: str) -> None:
        from sqlalchemy import delete, insert

        from .models import User as Row

        _check(username, role, display_name)
        table = Row.__table__
        with self.store.engine.begin() as conn:
            conn.execute(delete(table).where(table.c.username == username))
            conn.execute(insert(table).values(
                username=username, display_name=display_name.strip(), role=role,
                password_hash=hash_password(password),
                created_at=datetime.now(timezone.utc).isoformat(timespec="seconds")))

    def remove(self, username: str) -> None:
        from sqlalchemy import delete

        from .models import User as Row

        table = Row.__table__
        with self.store.engine.begin() as conn:
            if conn.execute(delete(table).where(table.c.username == username)).rowcount == 0:
                raise RecordError(f"no user '{username}' in the database")

    def list(self) -> list[User]:
        from sqlalchemy import select

        from .models import User as Row

        with self.store.engine.connect() as conn:
            return [User(r.username, r.display_name, r.role) for r in conn.execute(
                select(Row.__table__).order_by(Row.__table__.c.username))]


_DUMMY = "scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + base64.b64encode(bytes(32)).decode()


def open_users(source: str, db: str | None = None):
    """:class:`FileUsers` on a CSV path, or :class:`DbUsers` when ``source`` is ``db`` (the
    decision database ``db``, default ``$RTPLAN_ASSIST_DB`` or the user's SQLite file)."""
    if source == "db":
        from .store import open_store

        return DbUsers(open_store(db))
    return FileUsers(source)
