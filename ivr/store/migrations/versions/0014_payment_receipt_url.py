"""payment_attempts.receipt_url: the PG's receipt (매출전표) page of a paid attempt (#31
item 1), kept only when on an allowed host (ivr/gateways/receipts.py)"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("receipt_url", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.drop_column("receipt_url")
