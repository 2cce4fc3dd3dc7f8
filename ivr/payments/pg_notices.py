"""What the engine does when the PG says an order changed (a verified PortOne V2
webhook, ``POST /v1/pg/portone-v2/webhooks``): it settles that order *now*, with the
same logic the sweep would run later — the charger drives the attempt's payment
(:meth:`~ivr.payments.charger.Charger.drive`, which asks the PG with ``find``), the
refunder settles its open refunds. The notice itself is never trusted for an amount or
a state: it only says which order to look at sooner. An attempt never sent, or already
settled, is left alone; an order id the engine does not know is ignored."""

from __future__ import annotations

from enum import StrEnum

from ivr.payments.charger import Charger
from ivr.payments.queries import attempt_by_order_id, open_refunds_of
from ivr.payments.refunds import Refunder
from ivr.payments.sends import OPEN
from ivr.store.db import Database


class Noticed(StrEnum):
    unknown_order = "unknown_order"  # not an order id of this engine
    settled = "settled"  # an open attempt or refund was looked up at the PG now
    nothing_open = "nothing_open"  # its attempt and refunds had ended already


async def order_noticed(
    db: Database, charger: Charger, refunder: Refunder, order_id: str
) -> Noticed:
    async with db.sessions() as s:
        attempt = await attempt_by_order_id(s, order_id)
        refunds = await open_refunds_of(s, attempt.id) if attempt is not None else []
    if attempt is None:
        return Noticed.unknown_order
    acted = False
    if attempt.status in OPEN and attempt.sends > 0:
        await charger.drive(attempt.intent_id)
        acted = True
    for refund in refunds:
        await refunder.settle(refund.id)
        acted = True
    return Noticed.settled if acted else Noticed.nothing_open
