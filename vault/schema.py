"""The vault database's tables, created on open (no Alembic).

The vault keeps its own small database, separate from the engine's: the engine's
migration chain can never reach card records (a downgrade cannot drop them, a DBA
migrating the engine never touches them), and the vault can live on another host or
disk. Four tables and no foreign keys do not need a migration framework: ``vault_meta``
records ``schema_version`` and :func:`create` refuses a database written by another
version; a change ships its own upgrade step keyed on that number (:func:`_upgrade`).

``vault_audit`` is append-only: triggers refuse UPDATE and DELETE (and TRUNCATE on
PostgreSQL), as for the engine's consent records, and — since schema version 2 — an
INSERT without the chain's ``seq`` and ``mac`` (:mod:`vault.audit_chain`). Version 2
added those two columns to the existing table; its older rows keep them NULL until the
vault seals them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    select,
    text,
)

from vault.columns import BigIntPK, UtcDateTime
from vault.errors import VaultConfigError

SCHEMA_VERSION = "2"

metadata = MetaData()

vault_meta = Table(
    "vault_meta",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("value", String(64), nullable=False),
)

vault_keks = Table(
    "vault_keks",
    metadata,
    Column("kek_id", String(24), primary_key=True),
    Column("provider", String(16), nullable=False),
    Column("state", String(12), nullable=False),  # current | retiring | retired
    Column("created_at", UtcDateTime(), nullable=False),
    Column("retired_at", UtcDateTime(), nullable=True),
)

vault_records = Table(
    "vault_records",
    metadata,
    Column("token", String(32), primary_key=True),
    Column("merchant_id", String(64), nullable=False),
    Column("version", SmallInteger, nullable=False),
    Column("kek_id", String(24), nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("bin6", String(6), nullable=False),
    Column("last4", String(4), nullable=False),
    Column("brand", String(16), nullable=False),
    Column("issuer", String(40), nullable=True),
    Column("card_type", String(10), nullable=True),
    Column("owner_type", String(10), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_vault_records_kek_id", "kek_id"),
    Index("ix_vault_records_merchant_fingerprint", "merchant_id", "fingerprint"),
)

vault_audit = Table(
    "vault_audit",
    metadata,
    Column("id", BigIntPK, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("who", String(128), nullable=False),
    Column("peer", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("why", String(200), nullable=False),
    Column("token", String(32), nullable=True),
    Column("merchant_id", String(64), nullable=True),
    # The chain (schema version 2): NULL on rows written before it began.
    Column("seq", BigInteger, nullable=True),
    Column("mac", String(64), nullable=True),
    Index("ix_vault_audit_token", "token"),
    Index("ix_vault_audit_seq", "seq", unique=True),
)

_SQLITE_TRIGGERS = [
    *(
        f"CREATE TRIGGER IF NOT EXISTS vault_audit_no_{verb.lower()} BEFORE {verb} ON "
        "vault_audit BEGIN SELECT RAISE(ABORT, 'vault_audit is append-only'); END"
        for verb in ("UPDATE", "DELETE")
    ),
    "CREATE TRIGGER IF NOT EXISTS vault_audit_chained BEFORE INSERT ON vault_audit "
    "WHEN NEW.seq IS NULL OR NEW.mac IS NULL "
    "BEGIN SELECT RAISE(ABORT, 'vault_audit rows must be chained (seq and mac)'); END",
]

_PG_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION vault_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'vault_audit is append-only'; END $$",
    "CREATE OR REPLACE TRIGGER vault_audit_no_change BEFORE UPDATE OR DELETE ON vault_audit "
    "FOR EACH ROW EXECUTE FUNCTION vault_audit_append_only()",
    "CREATE OR REPLACE TRIGGER vault_audit_no_truncate BEFORE TRUNCATE ON vault_audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION vault_audit_append_only()",
    "CREATE OR REPLACE FUNCTION vault_audit_unchained() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'vault_audit rows must be chained (seq and mac)'; END $$",
    "CREATE OR REPLACE TRIGGER vault_audit_chained BEFORE INSERT ON vault_audit "
    "FOR EACH ROW WHEN (NEW.seq IS NULL OR NEW.mac IS NULL) "
    "EXECUTE FUNCTION vault_audit_unchained()",
]

# Upgrade steps, by the version they start from (each in the opening transaction).
_UPGRADES = {
    "1": [
        "ALTER TABLE vault_audit ADD COLUMN seq BIGINT",
        "ALTER TABLE vault_audit ADD COLUMN mac VARCHAR(64)",
        "CREATE UNIQUE INDEX ix_vault_audit_seq ON vault_audit (seq)",
    ],
}


def create(conn: Connection) -> None:
    """Create what is missing and check the schema version (inside one transaction)."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:  # two processes opening a new database at once
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('arspay-vault-schema'))"))
    metadata.create_all(conn)
    found = conn.execute(
        select(vault_meta.c.value).where(vault_meta.c.key == "schema_version")
    ).scalar()
    if found is None:
        conn.execute(vault_meta.insert().values(key="schema_version", value=SCHEMA_VERSION))
    elif found != SCHEMA_VERSION:
        _upgrade(conn, found)
    for statement in _PG_TRIGGERS if postgres else _SQLITE_TRIGGERS:
        conn.execute(text(statement))


def _upgrade(conn: Connection, found: str) -> None:
    version = found
    while version in _UPGRADES:
        for statement in _UPGRADES[version]:
            conn.execute(text(statement))
        version = str(int(version) + 1)
    if version != SCHEMA_VERSION:
        raise VaultConfigError(
            f"vault database has schema version {found}; this release reads {SCHEMA_VERSION}"
        )
    conn.execute(
        vault_meta.update().where(vault_meta.c.key == "schema_version").values(value=version)
    )
