"""MDT decision records: what was decided, by whom, on what evidence.

A record holds, per lesion, the planned, recommended and chosen regimen with its verdict and
binding constraint, the composite verdict, who recorded it (name, role), the attendees, when,
the rationale and dissent, and an evidence snapshot (SHA-256 of every input file and constraint
table, software version, models and α/β). Records are append-only (a correction is a new record
that supersedes one) and hash-chained (:mod:`.chain`). Storage: SQLAlchemy on SQLite or
PostgreSQL with Alembic migrations shipped in this package (:mod:`.store`).

Typical use::

    from rtplan_assist.records import open_store, decision_content
    record, lesions = decision_content(evaluator, result, recorded_by="Dr A", role="clinician",
                                       rationale="...")
    with open_store() as store:
        stored = store.append(record, lesions)
"""

from .chain import GENESIS, ChainReport, canonical, check_chain, record_hash
from .reevaluate import Reevaluation, reevaluate
from .snapshot import ROLES, RecordError, decision_content, evidence_of, file_sha256
from .store import DB_ENV, RecordStore, default_db_path, open_store, resolve_url

__all__ = [
    "DB_ENV",
    "GENESIS",
    "ROLES",
    "ChainReport",
    "RecordError",
    "RecordStore",
    "Reevaluation",
    "canonical",
    "check_chain",
    "decision_content",
    "default_db_path",
    "evidence_of",
    "file_sha256",
    "open_store",
    "record_hash",
    "reevaluate",
    "resolve_url",
]
