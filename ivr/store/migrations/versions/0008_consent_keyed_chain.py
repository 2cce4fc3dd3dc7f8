"""consent evidence a database admin cannot rewrite: consent_records.mac, consent_seals,
TRUNCATE refused, INSERT without a MAC refused

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 09:00:00

The MACs themselves are computed by the engine (the key never reaches the database):
the first engine of this release seals the existing records (``consent_seals``) and
MACs every record after them; see docs/consent.md.
"""

import sqlalchemy as sa
from alembic import op

import ivr.store.types

revision = "0008"
down_revision = "0007"

_SQLITE_TRIGGERS = [
    "CREATE TRIGGER consent_records_mac_required BEFORE INSERT ON consent_records "
    "WHEN NEW.mac IS NULL "
    "BEGIN SELECT RAISE(ABORT, 'consent_records: a record needs its chain MAC'); END",
    *(
        f"CREATE TRIGGER consent_seals_no_{verb.lower()} BEFORE {verb} ON consent_seals "
        "BEGIN SELECT RAISE(ABORT, 'consent_seals is append-only'); END"
        for verb in ("UPDATE", "DELETE")
    ),
]
_SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS consent_records_mac_required",
    "DROP TRIGGER IF EXISTS consent_seals_no_update",
    "DROP TRIGGER IF EXISTS consent_seals_no_delete",
]
# 0001's triggers, which SQLite drops with the table when a batch rebuilds it.
_SQLITE_0001 = [
    f"CREATE TRIGGER IF NOT EXISTS consent_records_no_{verb.lower()} BEFORE {verb} ON "
    "consent_records BEGIN SELECT RAISE(ABORT, 'consent_records is append-only'); END"
    for verb in ("UPDATE", "DELETE")
]

_PG_TRIGGERS = [
    # 0001's function raises 'consent_records is append-only' whatever the event.
    "CREATE TRIGGER consent_records_no_truncate BEFORE TRUNCATE ON consent_records "
    "FOR EACH STATEMENT EXECUTE FUNCTION consent_records_append_only()",
    "CREATE FUNCTION consent_records_mac_required() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'consent_records: a record needs its chain MAC'; END $$",
    "CREATE TRIGGER consent_records_mac_required BEFORE INSERT ON consent_records "
    "FOR EACH ROW WHEN (NEW.mac IS NULL) EXECUTE FUNCTION consent_records_mac_required()",
    "CREATE FUNCTION consent_seals_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'consent_seals is append-only'; END $$",
    "CREATE TRIGGER consent_seals_no_change BEFORE UPDATE OR DELETE ON consent_seals "
    "FOR EACH ROW EXECUTE FUNCTION consent_seals_append_only()",
    "CREATE TRIGGER consent_seals_no_truncate BEFORE TRUNCATE ON consent_seals "
    "FOR EACH STATEMENT EXECUTE FUNCTION consent_seals_append_only()",
]
_PG_DROP = [
    "DROP TRIGGER IF EXISTS consent_records_no_truncate ON consent_records",
    "DROP TRIGGER IF EXISTS consent_records_mac_required ON consent_records",
    "DROP FUNCTION IF EXISTS consent_records_mac_required()",
    "DROP TRIGGER IF EXISTS consent_seals_no_change ON consent_seals",
    "DROP TRIGGER IF EXISTS consent_seals_no_truncate ON consent_seals",
    "DROP FUNCTION IF EXISTS consent_seals_append_only()",
]


def _sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def upgrade() -> None:
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mac", sa.String(length=64), nullable=True))
    op.create_table(
        "consent_seals",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sealed_through", sa.BigInteger(), nullable=False),
        sa.Column("legacy_digest", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.Column("created_at", ivr.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_seals")),
    )
    for statement in _SQLITE_TRIGGERS if _sqlite() else _PG_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    sealed = op.get_bind().execute(sa.text("SELECT count(*) FROM consent_seals")).scalar()
    if sealed:
        raise RuntimeError(
            "refusing to downgrade below 0007: the consent records are sealed with keyed "
            "MACs, and the downgrade would drop them (the evidence would lose its protection)"
        )
    for statement in _SQLITE_DROP if _sqlite() else _PG_DROP:
        op.execute(statement)
    op.drop_table("consent_seals")
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.drop_column("mac")
    if _sqlite():
        for statement in _SQLITE_0001:
            op.execute(statement)
