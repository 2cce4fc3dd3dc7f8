"""What the charger and the refunder share about a request to the PG still open (a
charge's attempt, a refund): its next send is claimed by a guarded update committed
before the request goes, so two processes never send it at once, and a lookup of it
ends in a :class:`Verdict`."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from ivr.clock import Clock
from ivr.domain.states import AttemptStatus
from ivr.store.db import Database
from ivr.store.tables import PaymentAttempt, Refund

OPEN = (AttemptStatus.pending.value, AttemptStatus.unknown.value)

Sent = TypeVar("Sent", PaymentAttempt, Refund)


class Verdict(Enum):
    """What a lookup of an open request decided."""

    settled = "settled"  # succeeded or failed now
    wait = "wait"  # still unknown: look again later
    resend = "resend"  # the PG positively does not know it, long after the last send


async def claim_send(
    db: Database, clock: Clock, table: type[Sent], row_id: str, sends: int
) -> bool:
    """Claim the next send of an open request whose ``sends`` is still ``sends``
    (committed before the request goes). False: another process claimed it."""
    async with db.transaction() as s:
        row = await s.get(table, row_id, with_for_update=True)
        if row is None or row.status not in OPEN or row.sends != sends:
            return False
        row.sends = sends + 1
        row.sent_at = clock.now()
        return True
