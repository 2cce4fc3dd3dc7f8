"""The sandbox PG plays every ordering a real PG produces, per endpoint, by deterministic
trigger and by probability (issue #25; ivr/gateways/sandbox/faults.py): what reaches
the ledger, when, and what the client sees."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr.errors import ConfigError, InvalidInput
from ivr.gateways.contract import (
    BillingKeyRequest,
    CancelRequest,
    ChargeRequest,
    KeyedChargeRequest,
    PgState,
)
from ivr.gateways.errors import (
    CancelRefused,
    DuplicateOrder,
    GatewayUnavailable,
    OutcomeUnknown,
)
from ivr.gateways.portone import PortOneGateway
from ivr.gateways.sandbox.config import SandboxConfig, parse_faults
from ivr.gateways.sandbox.faults import Endpoint, FaultPlan, FaultSpec, Ordering
from tests.gateways.support import KEY, SECRET, Sandbox, card, connector, order

pytestmark = pytest.mark.anyio

SLOW = 600  # ms: past the client's 0.3 s patience


@pytest.fixture
async def pg(sandbox: Sandbox) -> AsyncIterator[PortOneGateway]:
    async with connector(sandbox.url, timeout_s=0.3, total_timeout_s=0.3) as gateway:
        await gateway.register_billing_key(BillingKeyRequest("cus_f", card()))
        yield gateway


def charge(oid: str) -> ChargeRequest:
    return ChargeRequest("cus_f", oid, 1_000, "x")


async def unanswered(pg: PortOneGateway, sandbox: Sandbox, ordering: str) -> str:
    """The order id of a charge the sandbox handles with ``ordering`` (slowly), whose
    answer the client never gets."""
    oid = order()
    await sandbox.fault("charge", ordering, delay_ms=SLOW)
    with pytest.raises(OutcomeUnknown):
        await pg.charge_billing_key(charge(oid))
    return oid


async def paid(pg: PortOneGateway, oid: str) -> bool:
    found = await pg.find(oid)
    return found is not None and found.state is PgState.paid


ORDERINGS_THAT_LOSE_THE_ANSWER = [
    ("late", True, True),  # (ordering, recorded in the end, recorded before the answer)
    ("slow_answer", True, True),
    ("record_then_drop", True, True),
    ("error_after", True, True),
    ("drop_before_record", False, False),
    ("error_before", False, False),
]


@pytest.mark.parametrize(("ordering", "records", "_"), ORDERINGS_THAT_LOSE_THE_ANSWER)
async def test_charge_orderings(
    pg: PortOneGateway, sandbox: Sandbox, ordering: str, records: bool, _: bool
) -> None:
    oid = await unanswered(pg, sandbox, ordering)
    if ordering == "late":
        assert not await paid(pg, oid)  # looked up right away: not recorded *yet*
    await sandbox.settled()
    assert await paid(pg, oid) is records
    assert (await sandbox.ledger(oid))["charge_requests"] == 1


async def test_slow_processing_shows_a_payment_in_progress(
    pg: PortOneGateway, sandbox: Sandbox
) -> None:
    oid = await unanswered(pg, sandbox, "slow_processing")
    found = await pg.find(oid)
    assert found is not None
    assert found.state is PgState.ready
    with pytest.raises(DuplicateOrder):  # in progress: refused, nothing recorded
        await pg.charge_billing_key(charge(oid))
    await sandbox.settled()
    assert await paid(pg, oid)
    assert len((await sandbox.ledger(oid))["payments"]) == 1


async def test_a_late_original_after_a_resend_is_refused(
    pg: PortOneGateway, sandbox: Sandbox
) -> None:
    oid = await unanswered(pg, sandbox, "late")
    resent = await pg.charge_billing_key(charge(oid))
    assert resent.succeeded
    await sandbox.settled()  # the original lands now: a duplicate, refused
    ledger = await sandbox.ledger(oid)
    assert (ledger["paid"], len(ledger["payments"]), ledger["charge_requests"]) == (1, 1, 2)


async def test_keyed_charges_play_orderings_too(pg: PortOneGateway, sandbox: Sandbox) -> None:
    oid = order()
    await sandbox.fault("keyed", "record_then_drop")
    with pytest.raises(OutcomeUnknown):
        await pg.keyed_charge(KeyedChargeRequest(card(), oid, 3_000, "x"))
    assert await paid(pg, oid)
    with pytest.raises(DuplicateOrder):
        await pg.keyed_charge(KeyedChargeRequest(card(), oid, 3_000, "x"))


@pytest.mark.parametrize(("ordering", "records"), [("late", True), ("record_then_drop", True),
                                                   ("drop_before_record", False),
                                                   ("error_before", False)])  # fmt: skip
async def test_billing_key_orderings(
    pg: PortOneGateway, sandbox: Sandbox, ordering: str, records: bool
) -> None:
    await sandbox.fault("billing_key", ordering, delay_ms=SLOW)
    with pytest.raises((OutcomeUnknown, GatewayUnavailable)):
        await pg.register_billing_key(BillingKeyRequest("cus_k", card()))
    await sandbox.settled()
    assert (await sandbox.state.ledger.customer("cus_k") is not None) is records


@pytest.mark.parametrize(("ordering", "applies"), [("late", True), ("record_then_drop", True),
                                                   ("error_after", True),
                                                   ("drop_before_record", False),
                                                   ("error_before", False)])  # fmt: skip
async def test_cancel_orderings_and_the_checksum(
    pg: PortOneGateway, sandbox: Sandbox, ordering: str, applies: bool
) -> None:
    oid = order()
    assert (await pg.charge_billing_key(ChargeRequest("cus_f", oid, 9_000, "x"))).succeeded
    await sandbox.fault("cancel", ordering, delay_ms=SLOW)
    with pytest.raises(OutcomeUnknown):
        await pg.cancel(CancelRequest(oid, "r", checksum=9_000, amount=4_000))
    await sandbox.settled()
    found = await pg.find(oid)
    assert found is not None
    assert found.cancelled_amount == (4_000 if applies else 0)
    if applies:  # the same cancel again: its checksum is stale now, so it is refused
        with pytest.raises(CancelRefused):
            await pg.cancel(CancelRequest(oid, "r", checksum=9_000, amount=4_000))
    else:
        await pg.cancel(CancelRequest(oid, "r", checksum=9_000, amount=4_000))
    found = await pg.find(oid)
    assert found is not None
    assert found.cancelled_amount == 4_000  # applied exactly once either way


async def test_a_trigger_matches_its_order_counts_down_and_is_listed(
    pg: PortOneGateway, sandbox: Sandbox
) -> None:
    target, other = order(), order()
    await sandbox.fault("charge", "error_before", count=2, match=target)
    async with sandbox.http.get(f"{sandbox.url}/sandbox/faults") as r:
        [listed] = await r.json()
    assert (listed["match"], listed["count"]) == (target, 2)
    assert (await pg.charge_billing_key(charge(other))).succeeded
    for _ in range(2):
        with pytest.raises(OutcomeUnknown):
            await pg.charge_billing_key(charge(target))
    assert (await pg.charge_billing_key(charge(target))).succeeded
    async with sandbox.http.get(f"{sandbox.url}/sandbox/faults") as r:
        assert await r.json() == []
    summary = await sandbox.summary()
    assert summary["injected_charge_error_before"] == 2


async def test_a_bad_trigger_is_refused_with_a_reason(sandbox: Sandbox) -> None:
    for body in ({"endpoint": "charge", "ordering": "sideways"}, {"endpoint": "refund"},
                 {"endpoint": "charge", "ordering": "late", "count": 0},
                 {"endpoint": "charge", "ordering": "late", "delay_ms": -1}, [1, 2]):  # fmt: skip
        async with sandbox.http.post(f"{sandbox.url}/sandbox/faults", json=body) as r:
            assert r.status == 400
            assert (await r.json())["error"]


async def test_a_late_request_is_recorded_even_when_its_client_hung_up(
    sandbox: Sandbox,
) -> None:
    oid = order()
    await sandbox.fault("charge", "late", delay_ms=SLOW)
    async with connector(sandbox.url, timeout_s=0.1, total_timeout_s=0.1) as impatient:
        await impatient.register_billing_key(BillingKeyRequest("cus_h", card()))
        started = time.monotonic()
        with pytest.raises(OutcomeUnknown):
            await impatient.charge_billing_key(ChargeRequest("cus_h", oid, 1_000, "x"))
        assert time.monotonic() - started < 0.5
    await sandbox.settled()
    ledger = await sandbox.ledger(oid)
    assert ledger["paid"] == 1


# ---------------------------------------------------------------------- by probability


def test_specs_parse_and_bad_ones_name_the_problem() -> None:
    [spec] = parse_faults("charge:late:0.1:3000")
    assert (spec.endpoints, spec.ordering, spec.probability, spec.delay_ms) == (
        (Endpoint.charge,), Ordering.late, 0.1, 3000)  # fmt: skip
    assert parse_faults(" payments:error_before:0.5 , ")[0].endpoints == (
        Endpoint.charge, Endpoint.keyed)  # fmt: skip
    assert parse_faults("*:late:1")[0].endpoints == tuple(Endpoint)
    [ranged] = parse_faults("cancel:slow_answer:1:300-2500")
    delays = {ranged.delay(random.Random(n)) for n in range(50)}
    assert min(delays) >= 300
    assert max(delays) <= 2500
    assert len(delays) > 10  # drawn per request, around a client's timeout
    bad_specs = [
        ("charge:late", "expected"), ("refund:late:0.1", "unknown endpoint"),
        ("charge:sideways:0.1", "unknown ordering"), ("charge:late:x", "numbers"),
        ("charge:late:1.5", "between 0 and 1"), ("charge:late:0.1:-5", "not numbers"),
        ("charge:late:0.1:900-300", "low <= high"),
    ]  # fmt: skip
    for bad, why in bad_specs:
        with pytest.raises(ConfigError, match=why):
            parse_faults(bad)


def test_probabilities_are_drawn_reproducibly_per_endpoint() -> None:
    specs = (FaultSpec((Endpoint.charge,), Ordering.late, 0.3, 10),
             FaultSpec((Endpoint.cancel,), Ordering.error_after, 0.5))  # fmt: skip
    plans = [FaultPlan(specs, random.Random(5)) for _ in range(2)]
    draws = [[plan.draw(Endpoint.charge).ordering for _ in range(200)] for plan in plans]
    assert draws[0] == draws[1]  # same seed, same plays
    share = draws[0].count(Ordering.late) / 200
    assert 0.2 < share < 0.4
    plan = FaultPlan(specs, random.Random(5))
    assert {plan.draw(Endpoint.billing_key).ordering for _ in range(50)} == {Ordering.normal}


def test_the_old_rates_are_shorthands_for_orderings() -> None:
    config = SandboxConfig(imp_key=KEY, imp_secret=SECRET, error_rate=0.1, timeout_rate=0.2,
                           hang_ms=700)  # fmt: skip
    error, drop = config.fault_specs()
    assert (error.ordering, error.probability) == (Ordering.error_before, 0.1)
    assert Endpoint.cancel in error.endpoints
    assert (drop.ordering, drop.probability, drop.delay_ms) == (Ordering.record_then_drop, 0.2, 700)


def test_a_trigger_body_is_checked() -> None:
    plan = FaultPlan((), random.Random(1))
    with pytest.raises(InvalidInput):
        plan.add({"endpoint": "charge", "ordering": "late", "match": 5})
    trigger = plan.add({"endpoint": "cancel", "ordering": "late", "delay_ms": 5})
    assert trigger.view()["endpoint"] == "cancel"


async def test_the_cli_takes_faults(tmp_path: Path) -> None:
    """``arspay sandbox-pg --faults`` (the process the money-chaos test runs)."""
    from tests.payments.support import start_sandbox

    proc, url = start_sandbox(tmp_path / "l.db", faults="charge:error_before:1")
    try:
        async with connector(url) as pg:
            await pg.register_billing_key(BillingKeyRequest("cus_cli", card()))
            with pytest.raises(OutcomeUnknown):
                await pg.charge_billing_key(ChargeRequest("cus_cli", order(), 1_000, "x"))
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.communicate, timeout=30)
