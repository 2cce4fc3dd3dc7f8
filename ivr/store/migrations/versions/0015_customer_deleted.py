"""customers.deleted_at: a deleted customer's row stays (payments, cards and consent
evidence reference it) with its personal data removed (#31 item 4)"""

import sqlalchemy as sa
from alembic import op

import ivr.store.types

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deleted_at", ivr.store.types.UtcDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
