"""The money-chaos test (issue #25), on PostgreSQL: thousands of payment intents from
every way money moves — API charges, bulk rows, scheduled charges and phone payments
(FastAGI calls) — some refunded in part or in full, against the sandbox PG as a
separate process whose charge and cancel endpoints play every bad ordering at random
(late recording, lost answers, lost requests, answers after the client gave up,
payments in progress, 5xx before and after recording), with delays drawn around the
engine's client timeout. The engine runs as its own process (``arspay engine run``)
and is SIGKILLed twice.

After recovery, the sandbox's own ledger is the judge: no intent paid more than once
(across all its order ids), every intent and refund terminal, each paid amount equal to
its intent's, each cancelled amount equal to what the engine says it refunded and never
above the payment, and no payment at the PG the engine does not know.

Sized to prove the point in a few minutes; ``MONEY_CHAOS_SCALE`` multiplies it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ivr.billing.schedules import ScheduleService
from ivr.clock import SEOUL, FakeClock
from ivr.domain.states import CallRequestKind
from ivr.gateways.contract import BillingKeyRequest
from ivr.gateways.portone import PortOneGateway
from ivr.runtime import build
from ivr.settings import load_settings
from ivr.store import migrate
from ivr.store.db import Database
from ivr.store.tables import Card, PaymentAttempt, PaymentIntent, Refund
from ivr.testing.engine import AgiPayer, EngineProcess
from tests.conftest import PgFactory
from tests.gateways.support import card, connector, luhn_complete
from tests.payments.support import start_sandbox
from tests.stack import engine_env
from vault.factory import init_keys

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
SCALE = float(os.environ.get("MONEY_CHAOS_SCALE", "1"))
API_CHARGES = int(2_300 * SCALE)
BULK_ROWS = int(1_500 * SCALE)
SCHEDULES = int(1_250 * SCALE)
PHONE = int(60 * SCALE)
CARDS = 150
TIMEOUT_S = 1.0  # the engine's patience with the PG (read), 1.5 s in all
SLOW_MS = "300-2500"  # the slow orderings' delays, drawn around the client's 1 s timeout
# (some answers beat it, most do not) and all inside the settle window (4 s)
FAULTS = ",".join(
    [f"charge:{o}:0.04:{SLOW_MS}" for o in ("late", "slow_answer", "slow_processing")]
    + [f"charge:{o}:0.03" for o in ("record_then_drop", "drop_before_record")]
    + [f"charge:{o}:0.02" for o in ("error_before", "error_after")]
    + [f"cancel:{o}:0.06:{SLOW_MS}" for o in ("late", "slow_answer")]
    + [f"cancel:{o}:0.05" for o in ("record_then_drop", "drop_before_record")]
    + [f"cancel:{o}:0.04" for o in ("error_before", "error_after")]
)
ENDED = ("succeeded", "failed", "partially_refunded", "refunded")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def sandbox_process(ledger: Path, faults: str) -> AsyncIterator[str]:
    proc, url = start_sandbox(ledger, faults=faults, seed=25)
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.communicate, timeout=30)


class Chaos:
    """The engine's stack in a work directory, and the load that runs against it."""

    def __init__(self, workdir: Path, pg_url: str, database_url: str) -> None:
        self.api_port, self.agi_port = free_port(), free_port()
        self.agi_secret = secrets.token_urlsafe(24)
        self.env = engine_env(workdir, pg_url) | {
            "ARSPAY_DATABASE_URL": database_url,
            "ARSPAY_GATEWAY_TIMEOUT_S": str(TIMEOUT_S),
            "ARSPAY_GATEWAY_TOTAL_TIMEOUT_S": str(TIMEOUT_S + 0.5),
            "ARSPAY_GATEWAY_CONNECT_TIMEOUT_S": "1",
            "ARSPAY_GATEWAY_SETTLE_S": "4",  # > the sandbox's slowest recording (1.5 s)
            "ARSPAY_API_ENABLED": "true",
            "ARSPAY_API_PORT": str(self.api_port),
            "ARSPAY_API_RATE_LIMIT_PER_MINUTE": "1000000",
            "ARSPAY_ASTERISK_AGI_PORT": str(self.agi_port),
            "ARSPAY_ASTERISK_AGI_SECRET": self.agi_secret,
            "ARSPAY_ASTERISK_ARI_ENABLED": "false",
            "ARSPAY_ENGINE_SWEEP_INTERVAL_S": "1",
            "ARSPAY_ENGINE_JOB_LEASE_S": "6",
            "ARSPAY_PROMPTS_SOUNDS_DIR": str(workdir / "sounds"),
            "ARSPAY_LOG_LEVEL": "warning",
        }
        self.settings = load_settings(env=self.env)
        self.db = Database(self.settings.database_url)
        self.engine = EngineProcess(self.env, workdir / "engine.log")
        self.api_key = ""
        self.merchant_id = ""
        self.cards: list[str] = []
        self.phone: list[tuple[str, str, str]] = []  # (request id, DID, mobile)
        self.stats: Counter[str] = Counter()
        self.rng = random.Random(25)

    # ------------------------------------------------------------------ set-up
    async def prepare(self, pg: PortOneGateway) -> None:
        init_keys(self.settings)
        await migrate.upgrade(self.db)
        services = build(self.settings, db=self.db)
        merchant = await services.merchants.create("행복치과")
        self.merchant_id = merchant.id
        # The cards here exist at the PG only (no vault record to check a birth date
        # against): the knowledge factor has its own tests (tests/flows/test_flow_verify.py).
        await services.merchants.set_policy(
            merchant.id, {"verify_registered_card": False}, actor="test"
        )
        self.api_key = (await services.merchants.create_api_key(merchant.id, "chaos",
                                                                 actor="test")).key  # fmt: skip
        await services.dids.import_numbers([f"0505111{i:04d}" for i in range(20)])
        for i in range(CARDS):
            customer = await services.customers.create(merchant.id, mobile=f"0109{i:07d}")
            number = luhn_complete(f"411111{i:09d}")
            uid = f"bk_chaos_{i}"
            await pg.register_billing_key(BillingKeyRequest(uid, card(number)))
            async with self.db.transaction() as s:
                row = Card(id=f"card_chaos_{i:04d}", merchant_id=merchant.id,
                           customer_id=customer.id, vault_token=f"tok_chaos_{i}",
                           fingerprint=None, bin6=number[:6], last4=number[-4:],
                           issuer="테스트카드", card_type="credit", owner_type="personal",
                           billing_key_ref=uid, status="active",
                           created_at=datetime.now(UTC))  # fmt: skip
                s.add(row)
            self.cards.append(row.id)
            if i < PHONE:
                new = await services.requests.create(
                    merchant.id, customer.id, CallRequestKind.payment, product_name="정기 진료비",
                    amount=30_000 + i,
                )  # fmt: skip
                self.phone.append((new.request.id, new.request.did, customer.mobile))
        # Schedules whose first charge fell due a minute ago: made on a clock 5 min back.
        past = FakeClock(datetime.now(UTC) - timedelta(minutes=5))
        at = (datetime.now(SEOUL) - timedelta(minutes=1)).strftime("%H:%M")
        today = datetime.now(SEOUL).date().isoformat()
        schedules = ScheduleService(self.db, past)
        async with self.db.sessions() as s:
            owners = {c.id: c.customer_id for c in await s.scalars(select(Card))}
        for i in range(SCHEDULES):
            card_id = self.cards[i % CARDS]
            plan = {"rule": {"dates": [today]}, "start": today, "at": at}
            await schedules.create(merchant.id, owners[card_id], plan=plan, amount=10_000 + i,
                                   order_name="헬스 정기권", card_id=card_id)  # fmt: skip

    # ------------------------------------------------------------------ load
    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.api_port}",
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=30,
        )

    async def post(
        self, http: httpx.AsyncClient, path: str, body: Any, key: str, *, busy_s: float = 0
    ) -> httpx.Response:
        """POST as a careful merchant: the same Idempotency-Key until an answer comes
        (the engine may be down or restarting); a 409 "still running" (the request was
        in flight when the engine died: its key is locked for a while) is asked again
        for ``busy_s``."""
        deadline = time.monotonic() + 300
        busy_until = time.monotonic() + busy_s
        while time.monotonic() < deadline:
            try:
                r = await http.post(path, json=body, headers={"Idempotency-Key": key})
            except httpx.TransportError:
                self.stats["api_retried"] += 1
                await asyncio.sleep(0.25)
                continue
            if r.status_code >= 500:
                self.stats["api_5xx"] += 1
                await asyncio.sleep(0.25)
                continue
            if r.status_code == 409 and time.monotonic() < busy_until:
                self.stats["api_busy"] += 1
                await asyncio.sleep(3)
                continue
            return r
        raise AssertionError(f"{path}: no answer")

    async def api_charges(self) -> None:
        gate = asyncio.Semaphore(24)
        async with self.client() as http:

            async def one(i: int) -> None:
                async with gate:
                    body = {"card_id": self.cards[i % CARDS], "amount": 1_000 + i,
                            "order_name": f"진료비 {i}"}  # fmt: skip
                    r = await self.post(http, "/v1/charges", body, f"charge-{i}", busy_s=10)
                    self.stats[f"charge_{r.status_code}"] += 1
                    paid = r.status_code == 201 and r.json()["status"] == "succeeded"
                    if paid and self.rng.random() < 0.3:
                        await self.refund(http, r.json()["id"], r.json()["amount"], i)

            await asyncio.gather(*(one(i) for i in range(API_CHARGES)))

    async def refund(self, http: httpx.AsyncClient, pid: str, amount: int, i: int) -> None:
        """A full refund, or one or two partial ones."""
        parts = [amount] if i % 3 == 0 else [amount // 3, amount // 4]
        for n, value in enumerate(parts):
            for k in range(30):  # "a refund is in progress": wait, then ask anew (a new key)
                body = {"amount": value, "reason": "환불"}
                path = f"/v1/payments/{pid}/refunds"
                r = await self.post(http, path, body, f"rf-{pid}-{n}-{k}")
                if r.status_code != 409:
                    break
                await asyncio.sleep(0.5)
            self.stats[f"refund_{r.status_code}"] += 1

    async def bulk(self) -> None:
        rows = [
            {"ref": f"row-{i}", "card_id": self.cards[i % CARDS], "amount": 2_000 + i,
             "order_name": f"회비 {i}", "installment_months": 0}
            for i in range(BULK_ROWS)
        ]  # fmt: skip
        async with self.client() as http:
            r = await self.post(http, "/v1/bulk-jobs", {"kind": "charges", "rows": rows}, "bulk-1")
            assert r.status_code == 201, r.text

    async def phone_payments(self) -> None:
        gate = asyncio.Semaphore(6)

        async def one(request_id: str, did: str, mobile: str) -> None:
            async with gate:
                for _ in range(4):  # a call cut by a dead engine is called again
                    payer = AgiPayer(self.agi_port, did, mobile,
                                     keys={"pay.card_choice": "1", "pay.confirm.lump_sum": "1",
                                           "pay.retry": "3"},
                                     env={"agi_arg_1": self.agi_secret})  # fmt: skip
                    try:
                        played = await payer.call(timeout_s=60)
                    except OSError:  # the engine is restarting
                        await asyncio.sleep(1)
                        continue
                    if {"pay.done", "pay.done_plain", "pay.pending"} & set(played):
                        self.stats["phone_heard_result"] += 1
                        return
                    self.stats["phone_cut"] += 1
                    await asyncio.sleep(1)

        await asyncio.gather(*(one(*p) for p in self.phone))

    async def refund_others(self, stop: asyncio.Event) -> None:
        """Refunds of bulk, scheduled and phone payments while the chaos goes on."""
        done: set[str] = set()
        async with self.client() as http:
            while not stop.is_set():
                async with self.db.sessions() as s:
                    rows = (await s.execute(
                        select(PaymentIntent.id, PaymentIntent.amount).where(
                            PaymentIntent.status == "succeeded",
                            PaymentIntent.source.in_(["bulk", "schedule", "call"]))
                        .limit(400))).all()  # fmt: skip
                for pid, amount in rows:
                    if pid not in done and self.rng.random() < 0.1:
                        done.add(pid)
                        await self.refund(http, pid, amount, len(done))
                await asyncio.sleep(1)

    # ------------------------------------------------------------------ chaos
    async def ended(self) -> int:
        async with self.db.sessions() as s:
            n = await s.scalar(select(func.count()).select_from(PaymentIntent)
                               .where(PaymentIntent.status.in_(ENDED)))  # fmt: skip
        return int(n or 0)

    async def progress(self, total: int) -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(10)
            async with self.db.sessions() as s:
                made = await s.scalar(select(func.count()).select_from(PaymentIntent))
            print(
                f"  {time.monotonic() - started:4.0f} s: {made} made, "
                f"{await self.ended()} ended of {total}; {dict(self.stats)}",
                flush=True,
            )

    async def killer(self, total: int) -> list[int]:
        kills = []
        for share in (0.25, 0.55):
            while await self.ended() < total * share:  # noqa: ASYNC110 - polling a database
                await asyncio.sleep(0.2)
            await self.engine.kill()
            kills.append(await self.ended())
            await self.engine.start(timeout_s=60)
        return kills

    async def all_made(self, deadline_s: float) -> None:
        """Until every bulk row, schedule cycle and phone payment has its intent (an API
        charge whose request died with the engine and was not asked again in time has
        none: the merchant was told 409 and nothing was charged)."""
        wanted = {"bulk": BULK_ROWS, "schedule": SCHEDULES, "call": PHONE}
        deadline = time.monotonic() + deadline_s
        while True:
            async with self.db.sessions() as s:
                q = select(PaymentIntent.source, func.count()).group_by(PaymentIntent.source)
                made: dict[str, int] = {k: v for k, v in (await s.execute(q)).all()}
            if all(made.get(k, 0) >= n for k, n in wanted.items()):
                return
            assert time.monotonic() < deadline, f"intents made: {made}"
            await asyncio.sleep(1)

    async def drain(self, deadline_s: float) -> None:
        """Until every intent and refund has ended (the engine's sweeper at work)."""
        deadline = time.monotonic() + deadline_s
        while True:
            async with self.db.sessions() as s:
                open_intents = await s.scalar(
                    select(func.count()).select_from(PaymentIntent)
                    .where(PaymentIntent.status.not_in(ENDED)))  # fmt: skip
                open_refunds = await s.scalar(
                    select(func.count()).select_from(Refund)
                    .where(Refund.status.in_(["pending", "unknown"])))  # fmt: skip
            if not open_intents and not open_refunds:
                return
            if time.monotonic() > deadline:  # verify() reports them with the rest
                print(f"drain: {open_intents} intents and {open_refunds} refunds still open")
                return
            await asyncio.sleep(1)


async def gather_cancelling(*works: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in works]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.postgres
async def test_money_chaos_charges_each_intent_once_and_ends_everything(
    tmp_path: Path, pg_factory: PgFactory
) -> None:
    """On PostgreSQL, the scale-out store (row locks, SKIP LOCKED job claims); the
    charger's rules are proven on SQLite too by test_orderings and the model."""
    ledger = tmp_path / "ledger.db"
    database_url = await pg_factory.new()
    started = time.monotonic()
    async with sandbox_process(ledger, FAULTS) as pg_url:
        chaos = Chaos(tmp_path, pg_url, database_url)
        async with connector(pg_url) as pg:
            await chaos.prepare(pg)
        total = API_CHARGES + BULK_ROWS + SCHEDULES + PHONE
        await chaos.engine.start(timeout_s=60)
        try:
            stop_refunds = asyncio.Event()
            refunds = asyncio.ensure_future(chaos.refund_others(stop_refunds))
            progress = asyncio.ensure_future(chaos.progress(total))
            kills: list[int] = []

            async def kill() -> None:
                kills.extend(await chaos.killer(total))

            await gather_cancelling(chaos.api_charges(), chaos.bulk(), chaos.phone_payments(),
                                    kill())  # fmt: skip
            await chaos.all_made(deadline_s=240)  # bulk rows and cycles still starting
            stop_refunds.set()
            await refunds
            progress.cancel()
            await chaos.drain(deadline_s=240)
            async with httpx.AsyncClient() as http:
                summary = (await http.get(f"{pg_url}/sandbox/ledger/summary")).json()
        finally:
            await chaos.engine.stop()
        played = {k for k, v in summary.items() if k.startswith("injected_") and v}
        wanted = {
            f"injected_{spec.split(':')[0]}_{spec.split(':')[1]}" for spec in FAULTS.split(",")
        }
        assert played == wanted, f"orderings never played: {sorted(wanted - played)}"
        print(f"\nmoney chaos: {total} intents asked in {time.monotonic() - started:.0f} s, "
              f"killed at {kills} ended, {dict(chaos.stats)}")  # fmt: skip
    await verify(chaos, ledger, total)
    await chaos.db.close()


async def verify(chaos: Chaos, ledger: Path, total: int) -> None:
    """Every promise checked; all broken ones reported together."""
    async with chaos.db.sessions() as s:
        intents = {i.id: i for i in await s.scalars(select(PaymentIntent))}
        attempts = list(await s.scalars(select(PaymentAttempt)))
        refunds = list(await s.scalars(select(Refund)))
    conn = sqlite3.connect(ledger)
    conn.row_factory = sqlite3.Row
    pg_rows = list(conn.execute("SELECT merchant_uid, status, amount, cancel_amount FROM payments"))
    conn.close()

    problems: list[str] = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    check(len(intents) >= min(total - 100, 5_000 * SCALE), f"only {len(intents)} intents")
    check({i.source for i in intents.values()} == {"api", "bulk", "schedule", "call"},
          "not every source made intents")  # fmt: skip
    open_intents = [i for i in intents.values() if i.status not in ENDED]
    check(not open_intents, f"{len(open_intents)} intents did not end")
    check(all(a.status in ("succeeded", "failed") for a in attempts), "an attempt did not end")
    open_refunds = [r for r in refunds if r.status not in ("succeeded", "failed")]
    check(not open_refunds, f"{len(open_refunds)} refunds did not end")

    order_of = {a.order_id: a for a in attempts}
    paid_by_intent: dict[str, list[sqlite3.Row]] = {}
    for row in pg_rows:
        attempt = order_of.get(row["merchant_uid"])
        check(attempt is not None, f"the PG holds order {row['merchant_uid']} the engine lost")
        if attempt is not None and row["status"] in ("paid", "cancelled"):
            paid_by_intent.setdefault(attempt.intent_id, []).append(row)
    doubles = {i: rows for i, rows in paid_by_intent.items() if len(rows) > 1}
    check(not doubles, f"{len(doubles)} intents paid more than once, "
          f"{sum(len(r) - 1 for r in doubles.values())} extra payments of "
          f"{sum(x['amount'] for r in doubles.values() for x in r[1:]):,} KRW")  # fmt: skip
    wrong = [
        i.id
        for i in intents.values()
        if i.status in ENDED and bool(paid_by_intent.get(i.id)) != (i.status != "failed")
    ]
    check(not wrong, f"{len(wrong)} intents whose status disagrees with the PG's ledger")
    refunded_wrong = []
    for intent in intents.values():
        paid = paid_by_intent.get(intent.id, [])
        if len(paid) == 1:
            [row] = paid
            check(row["amount"] == intent.amount, f"{intent.id}: paid another amount")
            check(row["cancel_amount"] <= row["amount"], f"{intent.id}: refunded above the payment")
            if row["cancel_amount"] != intent.refunded_amount:
                refunded_wrong.append(intent.id)
    check(not refunded_wrong,
          f"{len(refunded_wrong)} intents whose refunded amount differs from the PG's")  # fmt: skip
    by_intent: Counter[str] = Counter()
    for r in refunds:
        if r.status == "succeeded":
            by_intent[r.intent_id] += r.amount
    sums_wrong = [i.id for i in intents.values() if by_intent[i.id] != i.refunded_amount]
    check(not sums_wrong, f"{len(sums_wrong)} intents whose refunds do not add up")
    refunded = sum(1 for i in intents.values() if i.refunded_amount)
    check(refunded >= 100, "the chaos refunded too little to prove anything")
    succeeded = sum(1 for i in intents.values() if i.status != "failed")
    check(succeeded >= len(intents) * 0.98, "faults must be recovered, not turned into failures")
    print(f"ledger: {len(pg_rows)} PG payments, {succeeded} intents charged, "
          f"{len(intents) - succeeded} failed uncharged, {refunded} refunded, "
          f"{len(refunds)} refunds")  # fmt: skip
    assert not problems, "money chaos: " + "; ".join(problems)
