"""KakaoTalk 알림톡 for payer notices (#28 item 2): the alimtalk_messages outbox (one per
notice; the provider's request id; the SMS/LMS fallback it queued, if any)."""

import sqlalchemy as sa
from alembic import op

import ivr.store.types

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    op.create_table(
        "alimtalk_messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("notice_id", sa.String(length=40), nullable=False),
        sa.Column("to", sa.String(length=16), nullable=False),
        sa.Column("template_code", sa.String(length=40), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("button_url", sa.String(length=500), nullable=True),
        sa.Column("fallback_text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.Column("recipient_seq", sa.Integer(), nullable=True),
        sa.Column("result_code", sa.String(length=40), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("fallback_sms_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", ivr.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("next_try_at", ivr.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", ivr.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("done_at", ivr.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_alimtalk_messages_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alimtalk_messages")),
        sa.UniqueConstraint("notice_id", name=op.f("uq_alimtalk_messages_notice_id")),
    )
    with op.batch_alter_table("alimtalk_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_alimtalk_messages_merchant_id_id", ["merchant_id", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_alimtalk_messages_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alimtalk_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alimtalk_messages_status"))
        batch_op.drop_index("ix_alimtalk_messages_merchant_id_id")
    op.drop_table("alimtalk_messages")
