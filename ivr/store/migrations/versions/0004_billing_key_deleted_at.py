"""cards.billing_key_deleted_at: when the PG's billing key of a deleted card was deleted"""

import sqlalchemy as sa
from alembic import op

import ivr.store.types

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "billing_key_deleted_at", ivr.store.types.UtcDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.drop_column("billing_key_deleted_at")
