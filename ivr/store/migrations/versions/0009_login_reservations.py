"""console login reservations (console_users.logins_pending[_until]); webhook secrets
scrubbed from stored idempotent replays

A login attempt now takes a place (``logins_pending``) in the same locked transaction
that checks the lockout, before its password is hashed (ivr/console/users.py).

Replays of answers that carried a webhook signing secret are now stored without it
(ivr/api/idempotency.py); the replays stored before this revision are scrubbed the same
way here, so no secret outlives its first answer in ``idempotency_keys``.
"""

import json

import sqlalchemy as sa
from alembic import op

import ivr.store.types

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    with op.batch_alter_table("console_users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("logins_pending", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "logins_pending_until", ivr.store.types.UtcDateTime(timezone=True), nullable=True
            )
        )
    _scrub_replayed_secrets()


def _scrub_replayed_secrets() -> None:
    keys = sa.table(
        "idempotency_keys",
        sa.column("merchant_id", sa.String),
        sa.column("key", sa.String),
        sa.column("response_body", sa.Text),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(keys.c.merchant_id, keys.c.key, keys.c.response_body).where(
            keys.c.response_body.like('%"secret"%')
        )
    ).all()
    for merchant_id, key, body in rows:
        try:
            answer = json.loads(body)
        except ValueError:
            continue
        if not isinstance(answer, dict) or not answer.get("secret"):
            continue
        answer["secret"] = None
        answer["secret_withheld"] = True
        conn.execute(
            keys.update()
            .where(keys.c.merchant_id == merchant_id, keys.c.key == key)
            .values(response_body=json.dumps(answer, ensure_ascii=False))
        )


def downgrade() -> None:
    with op.batch_alter_table("console_users", schema=None) as batch_op:
        batch_op.drop_column("logins_pending_until")
        batch_op.drop_column("logins_pending")
