"""Merchants, API keys, customers, call requests and the consent ledger, on both
databases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from ivr.clock import FakeClock
from ivr.consent.keys import ConsentKeys
from ivr.consent.ledger import ConsentInput, ConsentLedger, PlayedPrompt
from ivr.dids.pool import DidPool
from ivr.domain.states import CallRequestKind, CallRequestStatus, LeaseStatus, MerchantStatus
from ivr.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from ivr.merchants.service import CustomerService, MerchantService
from ivr.requests.service import CallRequestService, DevOutbox
from ivr.store.db import Database
from ivr.store.tables import ApiKey, AuditLog, Customer, Lease, Merchant, SmsMessage

pytestmark = pytest.mark.anyio


@dataclass
class World:
    pool: DidPool
    merchants: MerchantService
    customers: CustomerService
    requests: CallRequestService
    merchant: Merchant
    customer: Customer


@pytest.fixture
async def world(db: Database, clock: FakeClock) -> World:
    pool = DidPool(db, clock)
    await pool.import_numbers([f"0505000000{i}" for i in range(3)])
    merchants = MerchantService(db, clock)
    customers = CustomerService(db, clock)
    requests = CallRequestService(db, clock, pool, sms_sender="1588-0000", sms_adapter="outbox")
    m = await merchants.create("행복치과")
    c = await customers.create(m.id, mobile="+82 10-1234-5678", name="홍길동", external_ref="p-1")
    return World(pool, merchants, customers, requests, m, c)


async def test_api_key_is_shown_once_stored_hashed_and_revocable(
    db: Database, world: World
) -> None:
    merchants = world.merchants
    m = world.merchant
    new = await merchants.create_api_key(m.id, "server", actor="test")
    assert new.key not in repr(new)
    async with db.sessions() as s:
        row = await s.get(ApiKey, new.id)
        assert row is not None
        assert new.key not in (row.secret_sha256, row.prefix)
    principal = await merchants.authenticate(new.key)
    assert principal is not None
    assert principal.merchant_id == m.id
    assert await merchants.authenticate(new.key[:-1] + "x") is None
    assert await merchants.authenticate("garbage") is None
    await merchants.revoke_api_key(m.id, new.id, actor="test")
    assert await merchants.authenticate(new.key) is None
    with pytest.raises(InvalidTransition):
        await merchants.revoke_api_key(m.id, new.id, actor="test")


async def test_suspended_merchant_keys_stop_working(world: World) -> None:
    merchants = world.merchants
    m = world.merchant
    new = await merchants.create_api_key(m.id, "k", actor="t")
    await merchants.set_status(m.id, MerchantStatus.suspended, actor="t")
    assert await merchants.authenticate(new.key) is None
    with pytest.raises(InvalidTransition):
        await merchants.set_status(m.id, MerchantStatus.suspended, actor="t")


async def test_customers_are_normalized_and_merchant_scoped(world: World) -> None:
    customers = world.customers
    merchants = world.merchants
    m, c = world.merchant, world.customer
    assert c.mobile == "01012345678"
    other = await merchants.create("다른상점")
    with pytest.raises(NotFound):
        await customers.get(other.id, c.id)
    with pytest.raises(Conflict):
        await customers.create(m.id, mobile="010-9999-0000", external_ref="p-1")
    with pytest.raises(InvalidInput, match="mobile"):
        await customers.create(m.id, mobile="anonymous")


async def test_request_leases_a_did_and_queues_the_sms(
    db: Database, clock: FakeClock, world: World
) -> None:
    requests = world.requests
    m, c = world.merchant, world.customer
    new = await requests.create(
        m.id, c.id, CallRequestKind.payment, product_name="임플란트", amount=53_000
    )
    req = new.request
    assert req.status == "created"
    assert req.expires_at == clock.now() + timedelta(minutes=30)
    assert "53,000원" in new.sms.body
    assert "0505-000-000" in new.sms.body  # dialable, hyphenated
    async with db.sessions() as s:
        lease = await s.get(Lease, req.lease_id)
        assert lease is not None
        assert (lease.did, lease.mobile, lease.status) == (req.did, "01012345678", "active")
    # the dev outbox "sends" it and the request moves on
    assert await DevOutbox(db, clock, requests).deliver_pending() == 1
    assert (await requests.get(m.id, req.id)).status == "sms_sent"
    async with db.sessions() as s:
        sms = await s.scalar(select(SmsMessage).where(SmsMessage.call_request_id == req.id))
        assert sms is not None
        assert sms.status == "sent"


async def test_request_life_cycle_and_lease_ending(
    db: Database, clock: FakeClock, world: World
) -> None:
    requests = world.requests
    m, c = world.merchant, world.customer
    a = (
        await requests.create(m.id, c.id, CallRequestKind.registration, product_name="정기권")
    ).request
    await requests.transition(a.id, CallRequestStatus.in_call, actor="t")
    await requests.transition(a.id, CallRequestStatus.sms_sent, actor="t")  # hung up: wait again
    await requests.transition(a.id, CallRequestStatus.in_call, actor="t")
    done = await requests.transition(a.id, CallRequestStatus.completed, actor="t")
    assert done.calls == 2
    with pytest.raises(InvalidTransition):
        await requests.transition(a.id, CallRequestStatus.cancelled, actor="t")
    async with db.sessions() as s:
        assert (await s.get(Lease, a.lease_id)).status == LeaseStatus.released
        actions = list(await s.scalars(select(AuditLog.action).where(AuditLog.object_id == a.id)))
    assert actions[0] == "call_request.create"
    assert actions[-1] == "call_request.completed"

    b = (
        await requests.create(m.id, c.id, CallRequestKind.registration, product_name="정기권")
    ).request
    clock.advance(timedelta(minutes=31))
    assert await requests.expire_due() == 1
    assert (await requests.get(None, b.id)).status == "expired"
    async with db.sessions() as s:
        assert (await s.get(Lease, b.lease_id)).status == LeaseStatus.expired


async def test_bad_requests_change_nothing(db: Database, world: World) -> None:
    requests = world.requests
    merchants = world.merchants
    m, c = world.merchant, world.customer
    other = await merchants.create("다른상점")
    cases = [
        (m.id, c.id, CallRequestKind.payment, "x", None, InvalidInput),
        (m.id, c.id, CallRequestKind.payment, "x", 99, InvalidInput),
        (m.id, c.id, CallRequestKind.registration, "x", 1000, InvalidInput),
        (m.id, c.id, CallRequestKind.registration, "  ", None, InvalidInput),
        (other.id, c.id, CallRequestKind.registration, "x", None, NotFound),
    ]
    for mid, cid, kind, product, amount, error in cases:
        with pytest.raises(error):
            await requests.create(mid, cid, kind, product_name=product, amount=amount)
    async with db.sessions() as s:
        for table in ("call_requests", "leases", "sms_messages"):
            assert (await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar() == 0


async def test_consent_chain_detects_tampering(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    m = await MerchantService(db, clock).create("행복치과")
    ledger = ConsentLedger(db, clock, ConsentKeys(tmp_path / "evidence.key"))
    for i in range(5):
        clock.advance(1)
        now = clock.now()
        await ledger.append(
            ConsentInput(
                m.id,
                f"creq_{i}",
                "payment_confirmation",
                "05050000000",
                "01012345678",
                f"chan-{i}",
                now,
                now,
                (PlayedPrompt("pay.confirm", f"{i:064x}"),),
                "1",
                {"amount": 53000 + i},
            )
        )
    ok = await ledger.verify(batch=2)
    assert ok.ok
    assert ok.records == 5
    # tamper underneath the triggers, as an attacker with database access would
    async with db.transaction() as s:
        if db.is_postgres:
            await s.execute(text("ALTER TABLE consent_records DISABLE TRIGGER USER"))
        else:
            await s.execute(text("DROP TRIGGER consent_records_no_update"))
        await s.execute(
            text("UPDATE consent_records SET details = '{\"amount\": 1}' WHERE seq = 3")
        )
    bad = await ledger.verify()
    assert not bad.ok
    assert bad.first_bad_seq == 3
    assert bad.problem == "hash does not match content"
    with pytest.raises(InvalidInput):
        await ledger.append(
            ConsentInput(
                m.id,
                "creq_x",
                "payment_confirmation",
                "0",
                "0",
                "c",
                clock.now(),
                clock.now(),
                (),
                "12",
                {},
            )
        )
