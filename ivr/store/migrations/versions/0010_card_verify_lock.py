"""cards.verify_*: the durable per-card limit on knowledge-factor failures (phone payments)"""

import sqlalchemy as sa
from alembic import op

import ivr.store.types

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("verify_failures", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "verify_failed_since", ivr.store.types.UtcDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "verify_locked_until", ivr.store.types.UtcDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.drop_column("verify_locked_until")
        batch_op.drop_column("verify_failed_since")
        batch_op.drop_column("verify_failures")
