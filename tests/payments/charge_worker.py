"""One engine process of the crash test: recover what a previous process left, then
charge every ``created`` intent with bounded concurrency. Prints ``done`` at the end.

Usage: python -m tests.payments.charge_worker DB_URL SANDBOX_URL CONCURRENCY
"""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy import select

from ivr.clock import SystemClock
from ivr.domain.states import PaymentIntentStatus
from ivr.payments.charger import ChargePolicy, Charger
from ivr.store.db import Database
from ivr.store.tables import PaymentIntent
from tests.gateways.support import connector


async def main(url: str, sandbox: str, concurrency: int) -> None:
    db = Database(url, pool_size=concurrency)
    async with connector(sandbox, timeout_s=1.0) as pg:
        charger = Charger(db, SystemClock(), pg, ChargePolicy(blind_backoff_s=0.05))
        await charger.reconcile(older_than_s=0)  # what the killed process left behind
        print("recovered", flush=True)
        gate = asyncio.Semaphore(concurrency)

        async def one(intent_id: str) -> None:
            async with gate:
                await charger.drive(intent_id)

        while True:
            async with db.sessions() as s:
                ids = list(
                    await s.scalars(
                        select(PaymentIntent.id)
                        .where(PaymentIntent.status == PaymentIntentStatus.created.value)
                        .order_by(PaymentIntent.id)
                        .limit(200)
                    )
                )
            if not ids:
                break
            await asyncio.gather(*(one(i) for i in ids))
        await charger.reconcile(older_than_s=0)
    await db.close()
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
