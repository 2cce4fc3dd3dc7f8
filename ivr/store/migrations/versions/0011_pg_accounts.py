"""PG accounts per merchant (#27): pg_accounts, merchants.pg_primary_id/pg_secondary_id,
the account of each card, attempt and billing-key request (NULL: the [gateway]
settings' ``default`` account, so existing rows keep meaning what they meant), and card
migrations between accounts."""

import sqlalchemy as sa
from alembic import op

import ivr.store.types

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.create_table(
        "pg_accounts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("base_url", sa.String(length=200), nullable=False),
        sa.Column("api_key", sa.String(length=100), nullable=False),
        sa.Column("secrets_sealed", sa.String(length=1000), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("created_at", ivr.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", ivr.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_pg_accounts_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pg_accounts")),
    )
    with op.batch_alter_table("pg_accounts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pg_accounts_merchant_id"), ["merchant_id"], unique=False
        )
    op.create_table(
        "card_migration_batches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("to_account_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_at", ivr.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", ivr.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", ivr.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_card_migration_batches_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_migration_batches")),
    )
    with op.batch_alter_table("card_migration_batches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_card_migration_batches_merchant_id"), ["merchant_id"], unique=False
        )

    op.create_table(
        "card_migrations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("card_id", sa.String(length=40), nullable=False),
        sa.Column("from_account_id", sa.String(length=40), nullable=True),
        sa.Column("to_account_id", sa.String(length=40), nullable=False),
        sa.Column("old_ref", sa.String(length=100), nullable=True),
        sa.Column("new_ref", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("error_code", sa.String(length=60), nullable=True),
        sa.Column("created_at", ivr.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", ivr.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["card_migration_batches.id"],
            name=op.f("fk_card_migrations_batch_id_card_migration_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["card_id"], ["cards.id"], name=op.f("fk_card_migrations_card_id_cards")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_card_migrations_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_migrations")),
    )
    with op.batch_alter_table("card_migrations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_card_migrations_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_card_migrations_status"), ["status"], unique=False)
        batch_op.create_index(
            "uq_card_migrations_open_card",
            ["card_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('pending', 'issued', 'switched')"),
            postgresql_where=sa.text("status IN ('pending', 'issued', 'switched')"),
        )

    with op.batch_alter_table("billing_key_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pg_account_id", sa.String(length=40), nullable=True))

    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pg_account_id", sa.String(length=40), nullable=True))

    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pg_primary_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("pg_secondary_id", sa.String(length=40), nullable=True))

    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pg_account_id", sa.String(length=40), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite >= 3.35 has it; the columns have no index
    # nor key): batch mode would rebuild merchants, which other tables' rows refer to.
    for table, column in (
        ("payment_attempts", "pg_account_id"),
        ("merchants", "pg_secondary_id"),
        ("merchants", "pg_primary_id"),
        ("cards", "pg_account_id"),
        ("billing_key_requests", "pg_account_id"),
    ):
        op.drop_column(table, column)

    with op.batch_alter_table("card_migrations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_card_migrations_open_card",
            sqlite_where=sa.text("status IN ('pending', 'issued', 'switched')"),
            postgresql_where=sa.text("status IN ('pending', 'issued', 'switched')"),
        )
        batch_op.drop_index(batch_op.f("ix_card_migrations_status"))
        batch_op.drop_index(batch_op.f("ix_card_migrations_batch_id"))

    op.drop_table("card_migrations")
    with op.batch_alter_table("card_migration_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_card_migration_batches_merchant_id"))

    op.drop_table("card_migration_batches")
    with op.batch_alter_table("pg_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pg_accounts_merchant_id"))
    op.drop_table("pg_accounts")
