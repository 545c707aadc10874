"""The decision database: where it lives, its schema (Alembic), appending and reading records.

SQLite by default (a file in the user's data directory), PostgreSQL for a shared deployment
(``--db postgresql://user@host/dbname`` or ``RTPLAN_ASSIST_DB``). Appends are serialised by a
database lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction-level advisory lock), so
records written at the same time by several processes or app workers keep one valid chain.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .chain import GENESIS, ChainReport, canonical_text, check_chain, record_hash
from .models import LESION_FIELDS, RECORD_FIELDS, DecisionLesion, DecisionRecord
from .snapshot import RecordError

__all__ = ["DB_ENV", "RecordStore", "default_db_path", "open_store", "resolve_url"]

DB_ENV = "RTPLAN_ASSIST_DB"
#: Key of the PostgreSQL advisory lock that serialises appends ("rtpa").
PG_LOCK_KEY = 0x72747061
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def default_db_path() -> Path:
    """``records.sqlite`` in the user's data directory: ``$XDG_DATA_HOME/rtplan-assist`` (else
    ``~/.local/share/rtplan-assist``) on Linux, ``~/Library/Application Support/rtplan-assist``
    on macOS, ``%LOCALAPPDATA%\\rtplan-assist`` on Windows."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "rtplan-assist" / "records.sqlite"


def resolve_url(url: str | None = None) -> str:
    """The SQLAlchemy URL: ``url``, else ``$RTPLAN_ASSIST_DB``, else the default SQLite file.

    A plain path means a SQLite file; ``postgresql://`` uses the psycopg (3) driver.
    """
    url = url or os.environ.get(DB_ENV) or str(default_db_path())
    if "://" not in url:
        return "sqlite:///" + str(Path(url).expanduser().absolute())
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - any unparsable URL: say so without echoing it
        return "the database URL"


@dataclass
class Appended:
    """What :meth:`RecordStore.append` stored."""

    record_id: str
    seq: int
    record_hash: str
    created_at: str


class RecordStore:
    """A decision database opened through SQLAlchemy.

    Parameters
    ----------
    url : str
        SQLAlchemy URL (see :func:`resolve_url`).
    create : bool
        Create the database and bring its schema to the newest revision (``alembic upgrade
        head``); when False, a database that does not exist or has no schema is an error.
    """

    def __init__(self, url: str, *, create: bool = True):
        from sqlalchemy import create_engine, event

        self.url = url
        self.shown = _safe(url)
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        if self.dialect == "sqlite":
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if path and path != ":memory:":
                if not create and not Path(path).is_file():
                    raise RecordError(f"{path}: no decision database there")
                if create:
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(url, connect_args={"timeout": 60})

            @event.listens_for(self.engine, "connect")
            def _connect(dbapi_connection, _record):
                # let SQLAlchemy's begin() below emit BEGIN itself (pysqlite defers it)
                dbapi_connection.isolation_level = None

            @event.listens_for(self.engine, "begin")
            def _begin(connection):
                write = connection.get_execution_options().get("rtplan_write")
                connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
        else:
            try:
                self.engine = create_engine(url, pool_pre_ping=True)
            except Exception as exc:  # unknown dialect, missing driver
                raise RecordError(f"{self.shown}: cannot open the database: {exc}") from exc
        try:
            if create:
                self.upgrade()
            else:
                self._require_schema()
        except RecordError:
            self.engine.dispose()
            raise
        except Exception as exc:
            self.engine.dispose()
            raise RecordError(f"{self.shown}: cannot read the database: {_first_line(exc)}") \
                from exc

    # ---------------------------------------------------------------- schema and locking
    def _write(self):
        """A connection whose transaction holds the append lock until it ends."""
        return _Locked(self)

    def upgrade(self, revision: str = "head") -> None:
        """``alembic upgrade`` to ``revision`` under the append lock (two processes may start
        on an empty database at once)."""
        from alembic import command

        with self._write() as conn:
            command.upgrade(alembic_config(conn), revision)

    def revision(self) -> str | None:
        """The schema revision the database is at (None: no schema)."""
        from alembic.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def _require_schema(self) -> None:
        from sqlalchemy import inspect

        if not inspect(self.engine).has_table(DecisionRecord.__tablename__):
            raise RecordError(f"{self.shown}: not a decision database (no decision_record table)")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------------- append
    def append(self, record: dict, lesions: list[dict]) -> Appended:
        """Append a decision at the head of the chain.

        Parameters
        ----------
        record, lesions
            From :func:`~rtplan_assist.records.snapshot.decision_content`.

        Raises
        ------
        RecordError
            ``supersedes`` names no record of the same patient.
        """
        from sqlalchemy import insert, select

        table, lesion_table = DecisionRecord.__table__, DecisionLesion.__table__
        with self._write() as conn:
            head = conn.execute(
                select(table.c.seq, table.c.record_hash).order_by(table.c.seq.desc()).limit(1)
            ).first()
            if record.get("supersedes"):
                old = conn.execute(
                    select(table.c.patient_key).where(table.c.record_id == record["supersedes"])
                ).first()
                if old is None:
                    raise RecordError(f"--supersedes {record['supersedes']}: no such record")
                if old.patient_key != record["patient_key"]:
                    raise RecordError(
                        f"--supersedes {record['supersedes']}: a record of another patient"
                    )
            row = dict(record)
            row.update(
                seq=(head.seq + 1) if head else 1,
                record_id=str(uuid.uuid4()),
                created_at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                attendees=canonical_text(record["attendees"]),
                evidence=canonical_text(record["evidence"]),
                prev_hash=head.record_hash if head else GENESIS,
            )
            lesion_rows = [
                {**lesion, "record_id": row["record_id"],
                 "failures": canonical_text(lesion["failures"])}
                for lesion in lesions
            ]
            row["record_hash"] = record_hash(row, lesion_rows)
            conn.execute(insert(table), [{k: row[k] for k in (*RECORD_FIELDS, "record_hash")}])
            if lesion_rows:
                conn.execute(insert(lesion_table),
                             [{k: r[k] for k in LESION_FIELDS} for r in lesion_rows])
        return Appended(row["record_id"], row["seq"], row["record_hash"], row["created_at"])

    # ---------------------------------------------------------------- read
    def _rows(self, patient: str | None = None) -> tuple[list[dict], list[dict]]:
        from sqlalchemy import select

        table, lesion_table = DecisionRecord.__table__, DecisionLesion.__table__
        records_q = select(table).order_by(table.c.seq)
        lesions_q = select(lesion_table)
        if patient:
            key = patient_key_of(patient)
            records_q = records_q.where(table.c.patient_key == key)
            lesions_q = lesions_q.where(lesion_table.c.record_id.in_(
                select(table.c.record_id).where(table.c.patient_key == key)))
        # one snapshot for both queries: a record appended in between would otherwise show
        # up as lesion rows without their record (PostgreSQL: REPEATABLE READ; SQLite: the
        # read transaction's shared lock keeps writers out until both are read)
        conn = self.engine.connect()
        if self.dialect == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn, conn.begin():
            records = [dict(r._mapping) for r in conn.execute(records_q)]
            lesions = [dict(r._mapping) for r in conn.execute(lesions_q)]
        return records, lesions

    def records(self, patient: str | None = None) -> list[dict]:
        """Every record (oldest first), optionally of one patient (key ``p-…`` or PatientID),
        with ``attendees``/``evidence`` parsed, its ``lesions`` (by lesion id) and
        ``superseded_by`` (the record ids that correct it)."""
        import json

        records, lesions = self._rows(patient)
        by_record: dict[str, list[dict]] = {}
        for row in sorted(lesions, key=lambda r: r["lesion_id"]):
            out = {k: row[k] for k in LESION_FIELDS if k != "record_id"}
            out["failures"] = json.loads(row["failures"])
            by_record.setdefault(row["record_id"], []).append(out)
        corrected: dict[str, list[str]] = {}
        for row in records:
            if row["supersedes"]:
                corrected.setdefault(row["supersedes"], []).append(row["record_id"])
        out = []
        for row in records:
            item = {k: row[k] for k in (*RECORD_FIELDS, "record_hash")}
            item["attendees"] = json.loads(row["attendees"])
            item["evidence"] = json.loads(row["evidence"])
            item["lesions"] = by_record.get(row["record_id"], [])
            item["superseded_by"] = corrected.get(row["record_id"], [])
            out.append(item)
        return out

    def matching(self, patient: str, chosen: dict[str, str]) -> dict | None:
        """The newest record of ``patient`` (key or PatientID), not superseded, whose chosen
        regimens are ``chosen`` (lesion id -> regimen label such as ``"54 Gy/3"``), or None."""
        return matching_record(self.records(patient), chosen)

    def record(self, record_id: str) -> dict:
        """One record by id (a unique prefix of at least 8 characters is enough)."""
        matches = [r for r in self.records() if r["record_id"].startswith(record_id)]
        if len(record_id) < 8 or len(matches) != 1:
            raise RecordError(
                f"record '{record_id}': " + ("no such record" if not matches
                                              else "not unique: give more characters")
            )
        return matches[0]

    def verify(self) -> ChainReport:
        """Check the whole chain (:func:`~rtplan_assist.records.chain.check_chain`)."""
        records, lesions = self._rows()
        return check_chain(records, lesions)


def matching_record(records: list[dict], chosen: dict[str, str]) -> dict | None:
    """The newest of ``records`` (oldest first, as :meth:`RecordStore.records` gives them), not
    superseded, whose chosen regimens are ``chosen`` (lesion id -> regimen label), or None."""
    for rec in reversed(records):
        if not rec["superseded_by"] and (
                {x["lesion_id"]: x["chosen"] for x in rec["lesions"]} == dict(chosen)):
            return rec
    return None


def attribution_lines(record: dict | None, what: str, who: str) -> list[str]:
    """Lines that attribute an export: the matching decision record (id, hash, who, when) or
    that the choice shown was not recorded, and who exported ``what``, now (UTC)."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if record is not None:
        first = (f"MDT decision record {record['record_id']} (#{record['seq']}), hash "
                 f"{record['record_hash']}, recorded by {record['recorded_by']} "
                 f"({record['role']}) at {record['created_at']}")
    else:
        first = "MDT decision: the choice shown has not been recorded"
    return [first, f"{what} exported by {who} at {now}"]


def cli_attribution(patient: str, chosen: dict[str, str], what: str,
                    db: str | None = None) -> list[str]:
    """:func:`attribution_lines` of a command-line export: the newest matching record of the
    decision database (``db``, default ``RTPLAN_ASSIST_DB`` or the user's file; never created
    here) and the operating-system user who ran the command."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"
    record = None
    try:
        with RecordStore(resolve_url(db), create=False) as store:
            record = store.matching(patient, chosen)
    except RecordError:  # no database yet, or unreadable: the export says it was not recorded
        record = None
    return attribution_lines(record, what, f"the command line (OS user '{user}')")


def patient_key_of(patient: str) -> str:
    """``p-…`` keys as given; a PatientID becomes its key."""
    from ..deidentify import patient_key

    return patient if patient.startswith("p-") and len(patient) == 10 else patient_key(patient)


class _Locked:
    """Context manager: a connection in a transaction that holds the append lock."""

    def __init__(self, store: RecordStore):
        self.store = store

    def __enter__(self):
        from sqlalchemy import text

        self.conn = self.store.engine.connect().execution_options(rtplan_write=True)
        self.tx = self.conn.begin()
        if self.store.dialect == "postgresql":
            self.conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
        return self.conn

    def __exit__(self, exc_type, *_):
        try:
            if exc_type is None:
                self.tx.commit()
            else:
                self.tx.rollback()
        finally:
            self.conn.close()


def alembic_config(connection=None):
    """An Alembic config for the migrations shipped in this package (``connection``: run on
    it, inside its transaction)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def open_store(url: str | None = None, *, create: bool = True) -> RecordStore:
    """:class:`RecordStore` on :func:`resolve_url` ``(url)``."""
    return RecordStore(resolve_url(url), create=create)
