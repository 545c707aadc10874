"""SQLAlchemy models of the decision record (schema: the Alembic migrations in ``migrations/``).

Every value that enters the hash chain is stored as text or an integer, never as a float or a
database date type, so that SQLite and PostgreSQL give back exactly the bytes that were hashed.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["LESION_FIELDS", "RECORD_FIELDS", "Base", "DecisionLesion", "DecisionRecord", "User"]


class Base(DeclarativeBase):
    pass


class DecisionRecord(Base):
    """One MDT decision; append-only (database triggers refuse UPDATE and DELETE).

    ``seq`` is the position in the hash chain (1, 2, ...); ``prev_hash`` the ``record_hash`` of
    record ``seq - 1`` (64 zeros for the first); ``record_hash`` the SHA-256 of the canonical
    serialisation of every other column and of the record's lesion rows
    (:func:`rtplan_assist.records.chain.record_hash`).
    """

    __tablename__ = "decision_record"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True, nullable=False)
    record_id: Mapped[str] = mapped_column(String(36), unique=True, nullable=False)
    created_at: Mapped[str] = mapped_column(String(32), nullable=False)  # ISO 8601, UTC
    patient_key: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    patient_id: Mapped[str | None] = mapped_column(String(64))  # None when de-identified
    source: Mapped[str | None] = mapped_column(Text)  # folder, "demo", or None (withheld)
    recorded_by: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(64), nullable=False)
    attendees: Mapped[str] = mapped_column(Text, nullable=False)  # canonical JSON list
    rationale: Mapped[str] = mapped_column(Text, nullable=False)
    dissent: Mapped[str] = mapped_column(Text, nullable=False)
    supersedes: Mapped[str | None] = mapped_column(String(36))
    verdict: Mapped[str] = mapped_column(String(16), nullable=False)
    composite_verdict: Mapped[str] = mapped_column(String(16), nullable=False)
    evidence: Mapped[str] = mapped_column(Text, nullable=False)  # canonical JSON object
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    record_hash: Mapped[str] = mapped_column(String(64), nullable=False)

    lesions: Mapped[list[DecisionLesion]] = relationship(
        back_populates="record", order_by="DecisionLesion.lesion_id"
    )


class DecisionLesion(Base):
    """One lesion of a decision: planned, recommended and chosen regimen, verdict, binding."""

    __tablename__ = "decision_lesion"
    __table_args__ = (UniqueConstraint("record_id", "lesion_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("decision_record.record_id"), nullable=False, index=True
    )
    lesion_id: Mapped[str] = mapped_column(String(16), nullable=False)
    label: Mapped[str] = mapped_column(Text, nullable=False)
    site: Mapped[str] = mapped_column(String(16), nullable=False)
    planned: Mapped[str] = mapped_column(String(32), nullable=False)
    recommended: Mapped[str] = mapped_column(String(32), nullable=False)
    chosen: Mapped[str] = mapped_column(String(32), nullable=False)
    chosen_from: Mapped[str] = mapped_column(String(16), nullable=False)  # "mdt"|"recommendation"
    verdict: Mapped[str] = mapped_column(String(16), nullable=False)
    binding: Mapped[str] = mapped_column(Text, nullable=False)
    failures: Mapped[str] = mapped_column(Text, nullable=False)  # canonical JSON list

    record: Mapped[DecisionRecord] = relationship(back_populates="lesions")


class User(Base):
    """A login of the shared deployment (schema revision 0002)."""

    __tablename__ = "app_user"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[str] = mapped_column(String(32), nullable=False)


#: Columns of ``decision_record`` that the hash covers (all but ``id`` and ``record_hash``).
RECORD_FIELDS = (
    "seq", "record_id", "created_at", "patient_key", "patient_id", "source", "recorded_by",
    "role", "attendees", "rationale", "dissent", "supersedes", "verdict", "composite_verdict",
    "evidence", "prev_hash",
)
#: Columns of ``decision_lesion`` that the hash covers (all but ``id``).
LESION_FIELDS = (
    "record_id", "lesion_id", "label", "site", "planned", "recommended", "chosen",
    "chosen_from", "verdict", "binding", "failures",
)
