"""The hash chain: canonical serialisation of a record, its SHA-256, and the check of a chain.

Canonical form: JSON with keys sorted, no insignificant white space, UTF-8, no NaN; every
hashed value is a string, an integer or null, so the form agrees with RFC 8785 (JCS) for
these records. A record's hash covers its ``prev_hash`` (the hash of the record before it),
so editing, deleting or reordering any stored row breaks the chain at that row or the next.
Deleting the *last* records cannot be seen from inside the database: compare the head hash
(``verify-records`` prints it; reports print the record hash) with a copy kept elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .models import LESION_FIELDS, RECORD_FIELDS

__all__ = ["GENESIS", "ChainReport", "canonical", "check_chain", "record_hash"]

GENESIS = "0" * 64


def canonical(value) -> bytes:
    """Canonical UTF-8 JSON bytes of ``value`` (dicts, lists, str, int, bool, None)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical_text(value) -> str:
    """:func:`canonical` as text (what the JSON columns hold)."""
    return canonical(value).decode("utf-8")


def record_hash(record: dict, lesions: list[dict]) -> str:
    """SHA-256 (hex) of a record's hashed columns and its lesion rows.

    Parameters
    ----------
    record : dict
        At least the keys of :data:`~rtplan_assist.records.models.RECORD_FIELDS`.
    lesions : list of dict
        The record's lesion rows, each with the keys of ``LESION_FIELDS``; their order does
        not matter (sorted by lesion id here).
    """
    body = {
        "record": {k: record[k] for k in RECORD_FIELDS},
        "lesions": sorted(
            ({k: row[k] for k in LESION_FIELDS} for row in lesions),
            key=lambda row: row["lesion_id"],
        ),
    }
    return hashlib.sha256(canonical(body)).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """Outcome of :func:`check_chain`.

    Attributes
    ----------
    count : int
        Records read.
    head_hash : str
        Hash of the last record (``GENESIS`` for an empty database).
    broken_record : str or None
        ``record_id`` of the first record that fails (None: intact).
    broken_seq : int or None
    problem : str
        What is wrong with it (empty when intact).
    """

    count: int
    head_hash: str
    broken_record: str | None = None
    broken_seq: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_record is None


def check_chain(records: list[dict], lesions: list[dict]) -> ChainReport:
    """Check a chain read from the database.

    Parameters
    ----------
    records : list of dict
        Every ``decision_record`` row (any order; sorted by ``seq`` here), with ``record_hash``.
    lesions : list of dict
        Every ``decision_lesion`` row.

    Returns
    -------
    ChainReport
        The first record (by ``seq``) whose position, link or content does not match, or
        intact. Lesion rows of no record count as a break of the record they name.
    """
    by_record: dict[str, list[dict]] = {}
    for row in lesions:
        by_record.setdefault(row["record_id"], []).append(row)
    ordered = sorted(records, key=lambda r: r["seq"])
    known = {r["record_id"] for r in ordered}
    earlier: set[str] = set()
    prev = GENESIS
    for position, row in enumerate(ordered, start=1):

        def broken(problem: str, row=row, prev=prev) -> ChainReport:
            return ChainReport(len(ordered), prev, row["record_id"], row["seq"], problem)

        if row["seq"] != position:
            return broken(
                f"is number {row['seq']} in the chain but number {position} was expected: "
                "a record before it was deleted or renumbered"
            )
        if row["prev_hash"] != prev:
            return broken(
                "does not link to the record before it (prev_hash differs): a record was "
                "deleted, inserted, reordered or edited"
            )
        if row["supersedes"] is not None and row["supersedes"] not in earlier:
            return broken(f"supersedes {row['supersedes']}, which is not an earlier record")
        if record_hash(row, by_record.get(row["record_id"], [])) != row["record_hash"]:
            return broken("content differs from what was recorded (hash mismatch)")
        prev = row["record_hash"]
        earlier.add(row["record_id"])
    orphans = sorted(set(by_record) - known)
    if orphans:
        return ChainReport(
            len(ordered), prev, orphans[0], None,
            "has lesion rows but no record row: the record was deleted",
        )
    return ChainReport(len(ordered), prev)
