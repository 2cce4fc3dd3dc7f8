"""exactly once under every PG timing: attempt sends, refund checksums, billing-key requests

payment_attempts.sends (how many times the order id may have gone to the PG; 1 for rows
already sent), refunds.checksum/sent_at/sends/error_code (a refund is re-sendable and
reconcilable; open refunds get the checksum they were sent with: the intent's
refundable balance, which no other refund can have moved while one is open), and
billing_key_requests (a billing key named before it is requested).
"""

import sqlalchemy as sa
from alembic import op

import ivr.store.types

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sends", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
    op.execute("UPDATE payment_attempts SET sends = 1 WHERE sent_at IS NOT NULL")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checksum", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("sent_at", ivr.store.types.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("sends", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(sa.Column("error_code", sa.String(length=60), nullable=True))
        batch_op.create_index(batch_op.f("ix_refunds_status"), ["status"], unique=False)
    op.execute(
        "UPDATE refunds SET sends = 1, sent_at = created_at, checksum = ("
        " SELECT i.amount - i.refunded_amount FROM payment_intents i"
        " WHERE i.id = refunds.intent_id) WHERE status IN ('pending', 'unknown')"
    )
    op.create_table(
        "billing_key_requests",
        sa.Column("customer_uid", sa.String(length=80), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("created_at", ivr.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", ivr.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_billing_key_requests_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("customer_uid", name=op.f("pk_billing_key_requests")),
    )
    with op.batch_alter_table("billing_key_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_billing_key_requests_status"), ["status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("billing_key_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_key_requests_status"))
    op.drop_table("billing_key_requests")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refunds_status"))
        batch_op.drop_column("error_code")
        batch_op.drop_column("sends")
        batch_op.drop_column("sent_at")
        batch_op.drop_column("checksum")
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.drop_column("sends")
