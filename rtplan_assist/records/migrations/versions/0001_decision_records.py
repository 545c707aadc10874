"""Decision records and their lesions; append-only triggers.

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ("decision_record", "decision_lesion")
MESSAGE = "decision records are append-only: record a correction that supersedes it"


def upgrade() -> None:
    op.create_table(
        "decision_record",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.Integer, nullable=False, unique=True),
        sa.Column("record_id", sa.String(36), nullable=False, unique=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("patient_key", sa.String(16), nullable=False, index=True),
        sa.Column("patient_id", sa.String(64)),
        sa.Column("source", sa.Text),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("attendees", sa.Text, nullable=False),
        sa.Column("rationale", sa.Text, nullable=False),
        sa.Column("dissent", sa.Text, nullable=False),
        sa.Column("supersedes", sa.String(36)),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("composite_verdict", sa.String(16), nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("record_hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "decision_lesion",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("record_id", sa.String(36), sa.ForeignKey("decision_record.record_id"),
                  nullable=False, index=True),
        sa.Column("lesion_id", sa.String(16), nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("site", sa.String(16), nullable=False),
        sa.Column("planned", sa.String(32), nullable=False),
        sa.Column("recommended", sa.String(32), nullable=False),
        sa.Column("chosen", sa.String(32), nullable=False),
        sa.Column("chosen_from", sa.String(16), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("binding", sa.Text, nullable=False),
        sa.Column("failures", sa.Text, nullable=False),
        sa.UniqueConstraint("record_id", "lesion_id"),
    )
    # Append-only in the database itself; the hash chain catches whoever drops the triggers.
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION rtplan_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{MESSAGE}'; END $$"
        )
        for table in TABLES:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION rtplan_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION rtplan_append_only()")
    else:
        for table in TABLES:
            for action in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON "
                           f"{table} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS rtplan_append_only()")
    op.drop_table("decision_lesion")
    op.drop_table("decision_record")
