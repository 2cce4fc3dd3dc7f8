"""The circuit breaker of a PG account and the gateway it guards (issue #27, failover):
it opens after N consecutive failures, refuses without calling the PG while open, lets
exactly one probe through once ``open_s`` passed, and counts only the account's silence
as failure — an answer, a decline or a refusal included, is a success. Fake time only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from ivr.clock import FakeClock
from ivr.errors import InvalidInput
from ivr.gateways import (
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    GatewayUnavailable,
    GuardedGateway,
)
from ivr.gateways.breaker import verdict
from ivr.gateways.config import GatewaySettings
from ivr.gateways.contract import (
    BillingKeyRequest,
    CancelRequest,
    ChargeRequest,
    ChargeStatus,
    GatewayCharge,
    KeyedCard,
)
from ivr.gateways.errors import (
    AuthenticationFailed,
    CancelRefusal,
    CancelRefused,
    CardDeclined,
    DuplicateOrder,
    GatewayRejected,
    OutcomeUnknown,
)
from ivr.gateways.fake import FakeGateway, Outcome

pytestmark = pytest.mark.anyio

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
POLICY = BreakerPolicy(failures=3, open_s=30.0)
CARD = KeyedCard("4111111111111111", "2030-12", "800101", "12")


class HeldPg(FakeGateway):
    """FakeGateway whose charges wait for ``hold`` (when set) after reaching the PG."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.hold: asyncio.Event | None = None
        self.reached = 0  # charges that reached the PG, held or not

    async def charge_billing_key(self, req: ChargeRequest) -> GatewayCharge:
        self.reached += 1
        if self.hold is not None:
            await self.hold.wait()
        return await super().charge_billing_key(req)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def pg(clock: FakeClock) -> HeldPg:
    return HeldPg(clock)


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker.on_clock("primary", POLICY, clock)


@pytest.fixture
def guarded(pg: HeldPg, breaker: CircuitBreaker) -> GuardedGateway:
    return GuardedGateway(pg, breaker)


def charge(order_id: str = "o_1") -> ChargeRequest:
    return ChargeRequest("cus_1", order_id, 1_000, "test")


async def fail(guarded: GuardedGateway, times: int, outcome: Outcome = Outcome.timeout) -> None:
    for i in range(times):
        guarded.gateway.script("charge_billing_key", outcome)  # type: ignore[attr-defined]
        with pytest.raises((OutcomeUnknown, GatewayUnavailable)):
            await guarded.charge_billing_key(charge(f"o_fail{i}"))


async def open_breaker(guarded: GuardedGateway) -> None:
    await fail(guarded, POLICY.failures)
    assert guarded.breaker.state is BreakerState.open


# --- closed -> open ---------------------------------------------------------------------


async def test_n_consecutive_failures_open_it_and_then_nothing_reaches_the_pg(
    guarded: GuardedGateway, pg: HeldPg, clock: FakeClock
) -> None:
    await fail(guarded, POLICY.failures - 1)
    assert guarded.breaker.state is BreakerState.closed
    assert guarded.breaker.consecutive_failures == POLICY.failures - 1
    await fail(guarded, 1)
    assert guarded.breaker.state is BreakerState.open
    assert pg.reached == POLICY.failures
    calls = len(pg.calls)
    for op in (
        guarded.charge_billing_key(charge()),
        guarded.find("o_1"),
        guarded.register_billing_key(BillingKeyRequest("cus_2", CARD)),
        guarded.cancel(CancelRequest("o_1", "test", 1_000)),
        guarded.delete_billing_key("cus_1", reason="test"),
    ):
        with pytest.raises(CircuitOpen) as refused:
            await op
    assert len(pg.calls) == calls  # the PG was never called
    assert pg.reached == POLICY.failures
    err = refused.value
    assert isinstance(err, GatewayUnavailable)
    assert err.retry_safe is True
    assert (err.error_id, err.http_status, err.account) == ("pg-circuit-open", 503, "primary")
    assert err.retry_at == START + timedelta(seconds=30)
    assert "primary" in err.message
    assert "circuit breaker is open" in err.message


async def test_an_answer_in_between_resets_the_count(guarded: GuardedGateway) -> None:
    for _ in range(3):
        await fail(guarded, POLICY.failures - 1)
        assert (await guarded.charge_billing_key(charge())).succeeded
        assert guarded.breaker.consecutive_failures == 0
    assert guarded.breaker.state is BreakerState.closed


@pytest.mark.parametrize(
    "error",
    [
        GatewayUnavailable("connect refused", retry_safe=True),
        GatewayUnavailable("bad URL", retry_safe=False),  # the operator's fault: still down
        OutcomeUnknown("HTTP 502", order_id="o_1"),
        TimeoutError(),  # asyncio.TimeoutError
        AuthenticationFailed("keys refused", pg_status=401),
    ],
    ids=["unavailable", "unavailable-config", "outcome-unknown", "timeout", "auth"],
)
async def test_what_counts_as_a_failure_and_is_re_raised_unchanged(
    guarded: GuardedGateway, pg: HeldPg, error: BaseException
) -> None:
    for _ in range(POLICY.failures):
        pg.script("charge_billing_key", error)
        with pytest.raises(type(error)) as raised:
            await guarded.charge_billing_key(charge())
        assert raised.value is error
    assert guarded.breaker.state is BreakerState.open


@pytest.mark.parametrize(
    ("op", "outcome"),
    [
        ("charge_billing_key", Outcome.soft_decline),
        ("charge_billing_key", Outcome.hard_decline),
        ("register_billing_key", Outcome.hard_decline),  # CardDeclined
        ("charge_billing_key", GatewayRejected("HTTP 400", pg_status=400)),
        ("cancel", CancelRefused("no", reason=CancelRefusal.not_paid, pg_code="x")),
        ("charge_billing_key", DuplicateOrder("already paid", order_id="o_1")),
    ],
    ids=["soft-decline", "hard-decline", "card-declined", "rejected", "cancel-refused", "dup"],
)
async def test_every_answer_of_the_pg_is_a_success(
    guarded: GuardedGateway, pg: HeldPg, clock: FakeClock, op: str, outcome: Outcome | Exception
) -> None:
    """Declines and refusals are the PG answering: they reset the count (closed) and
    close the breaker (as the half-open probe); DuplicateOrder never opens it."""
    calls = {
        "charge_billing_key": lambda: guarded.charge_billing_key(charge()),
        "register_billing_key": lambda: guarded.register_billing_key(
            BillingKeyRequest("cus_1", CARD)
        ),
        "cancel": lambda: guarded.cancel(CancelRequest("o_1", "test", 1_000)),
    }

    async def answered() -> None:
        pg.script(op, outcome)  # type: ignore[arg-type]
        if isinstance(outcome, Exception):
            with pytest.raises(type(outcome)):
                await calls[op]()
        elif op == "register_billing_key":
            with pytest.raises(CardDeclined):
                await calls[op]()
        else:
            result = await calls[op]()
            assert isinstance(result, GatewayCharge)
            assert result.status is ChargeStatus.failed

    for _ in range(POLICY.failures + 2):  # never opens by itself
        await answered()
    assert guarded.breaker.state is BreakerState.closed
    await fail(guarded, POLICY.failures - 1)
    await answered()
    assert guarded.breaker.consecutive_failures == 0
    await open_breaker(guarded)
    clock.advance(POLICY.open_s)
    await answered()  # the probe
    assert guarded.breaker.state is BreakerState.closed


async def test_errors_that_are_not_the_pgs_count_neither_way(
    guarded: GuardedGateway, pg: HeldPg
) -> None:
    await fail(guarded, POLICY.failures - 1)
    for error in (InvalidInput("invalid order_id"), RuntimeError("a bug")):
        pg.script("charge_billing_key", error)
        with pytest.raises(type(error)):
            await guarded.charge_billing_key(charge())
    assert guarded.breaker.consecutive_failures == POLICY.failures - 1
    assert verdict(CircuitOpen("x")) is None
    assert verdict(asyncio.CancelledError()) is None


# --- open -> half_open -> closed / open -------------------------------------------------


async def test_it_turns_half_open_after_open_s_and_a_probe_success_closes_it(
    guarded: GuardedGateway, pg: HeldPg, clock: FakeClock
) -> None:
    await open_breaker(guarded)
    clock.advance(POLICY.open_s - 0.001)
    assert guarded.breaker.state is BreakerState.open
    with pytest.raises(CircuitOpen):
        await guarded.charge_billing_key(charge())
    clock.advance(0.001)
    assert guarded.breaker.state is BreakerState.half_open
    assert await guarded.find("o_unknown") is None  # the probe: the PG answered
    snap = guarded.breaker.snapshot()
    assert (snap.state, snap.consecutive_failures, snap.opened_at, snap.retry_at) == (
        BreakerState.closed, 0, None, None,
    )  # fmt: skip
    assert (await guarded.charge_billing_key(charge())).succeeded


async def test_half_open_lets_exactly_one_probe_through(
    guarded: GuardedGateway, pg: HeldPg, clock: FakeClock
) -> None:
    await open_breaker(guarded)
    clock.advance(POLICY.open_s)
    reached = pg.reached
    pg.hold = asyncio.Event()
    probe = asyncio.create_task(guarded.charge_billing_key(charge("o_probe")))
    await asyncio.sleep(0)  # the probe is at the PG, waiting for its answer
    assert pg.reached == reached + 1
    snap = guarded.breaker.snapshot()
    assert (snap.state, snap.probing) == (BreakerState.half_open, True)
    with pytest.raises(CircuitOpen) as refused:  # concurrent: refused, never sent
        await guarded.charge_billing_key(charge("o_other"))
    assert refused.value.retry_at is None  # a probe is in flight
    assert pg.reached == reached + 1
    pg.hold.set()
    assert (await probe).succeeded
    assert guarded.breaker.state is BreakerState.closed
    assert (await guarded.charge_billing_key(charge("o_other"))).succeeded


async def test_a_failed_probe_opens_it_for_another_open_s(
    guarded: GuardedGateway, pg: HeldPg, clock: FakeClock
) -> None:
    await open_breaker(guarded)
    clock.advance(POLICY.open_s + 5)
    await fail(guarded, 1)  # the probe: no answer
    reopened = START + timedelta(seconds=POLICY.open_s + 5)
    snap = guarded.breaker.snapshot()
    assert (snap.state, snap.opened_at) == (BreakerState.open, reopened)
    assert snap.retry_at == reopened + timedelta(seconds=POLICY.open_s)
    assert snap.consecutive_failures == POLICY.failures + 1
    clock.advance(POLICY.open_s - 1)
    with pytest.raises(CircuitOpen) as refused:
        await guarded.charge_billing_key(charge())
    assert refused.value.retry_at == snap.retry_at
    clock.advance(1)
    assert (await guarded.charge_billing_key(charge())).succeeded
    assert guarded.breaker.state is BreakerState.closed


async def test_a_cancelled_probe_frees_the_slot(
    guarded: GuardedGateway, pg: HeldPg, clock: FakeClock
) -> None:
    await open_breaker(guarded)
    clock.advance(POLICY.open_s)
    pg.hold = asyncio.Event()
    probe = asyncio.create_task(guarded.charge_billing_key(charge("o_probe")))
    await asyncio.sleep(0)
    assert guarded.breaker.snapshot().probing
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    snap = guarded.breaker.snapshot()
    assert (snap.state, snap.probing) == (BreakerState.half_open, False)  # no verdict
    pg.hold = None
    assert (await guarded.charge_billing_key(charge("o_next"))).succeeded  # the new probe
    assert guarded.breaker.state is BreakerState.closed


def test_allow_and_release_without_the_guard(clock: FakeClock) -> None:
    breaker = CircuitBreaker.on_clock("acct", BreakerPolicy(failures=1, open_s=10), clock)
    assert breaker.allow()
    breaker.record_failure()
    assert not breaker.allow()
    clock.advance(10)
    assert breaker.allow()  # the probe slot
    assert not breaker.allow()
    breaker.release()
    assert breaker.allow()
    breaker.record_success()
    assert breaker.snapshot().state is BreakerState.closed
    assert "acct" in repr(breaker)


async def test_late_answers_and_failures_of_calls_begun_while_closed(
    guarded: GuardedGateway, pg: HeldPg, clock: FakeClock
) -> None:
    """A call sent while closed that ends after the breaker opened: its answer closes
    it; its failure while half-open opens it again (the probe slot with it)."""
    hold = pg.hold = asyncio.Event()
    slow = asyncio.create_task(guarded.charge_billing_key(charge("o_slow")))
    await asyncio.sleep(0)
    pg.hold = None
    await open_breaker(guarded)
    hold.set()
    assert (await slow).succeeded  # the PG answered: closed
    assert guarded.breaker.state is BreakerState.closed

    hold = pg.hold = asyncio.Event()
    slow = asyncio.create_task(guarded.charge_billing_key(charge("o_slow2")))
    await asyncio.sleep(0)
    pg.hold = None
    await open_breaker(guarded)
    clock.advance(POLICY.open_s)
    assert guarded.breaker.allow()  # the probe slot is taken...
    pg.script("charge_billing_key", Outcome.timeout)
    hold.set()
    with pytest.raises(OutcomeUnknown):
        await slow  # ...and the late failure opens it again
    snap = guarded.breaker.snapshot()
    assert (snap.state, snap.probing) == (BreakerState.open, False)
    assert snap.opened_at == START + timedelta(seconds=POLICY.open_s)


def test_a_breaker_on_the_monotonic_clock() -> None:
    now = [100.0]
    breaker = CircuitBreaker("acct", BreakerPolicy(failures=2, open_s=5), now=lambda: now[0])
    breaker.record_failure()
    breaker.record_failure()
    snap = breaker.snapshot()
    assert snap.state is BreakerState.open
    assert snap.opened_at is not None
    assert snap.opened_at.tzinfo is not None  # wall clock, UTC
    assert snap.retry_at == snap.opened_at + timedelta(seconds=5)
    now[0] += 5
    assert breaker.state is BreakerState.half_open


# --- settings, connection ---------------------------------------------------------------


def test_policy_from_settings() -> None:
    assert BreakerPolicy.from_settings(GatewaySettings()) == BreakerPolicy(5, 30.0)
    gw = GatewaySettings(breaker_failures=2, breaker_open_s=7.5)
    assert BreakerPolicy.from_settings(gw) == BreakerPolicy(failures=2, open_s=7.5)
    with pytest.raises(ValidationError):
        GatewaySettings(breaker_failures=0)
    with pytest.raises(ValidationError):
        GatewaySettings(breaker_open_s=0)
    with pytest.raises(ValueError, match="failures"):
        BreakerPolicy(failures=0)


class Connected(FakeGateway):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    async def __aenter__(self) -> Connected:
        self.events.append("enter")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.events.append("exit")

    async def aclose(self) -> None:
        self.events.append("close")


async def test_the_connection_is_the_inner_gateways(breaker: CircuitBreaker) -> None:
    inner = Connected()
    async with GuardedGateway(inner, breaker) as guarded:
        assert isinstance(guarded, GuardedGateway)
    await guarded.aclose()
    assert inner.events == ["enter", "exit", "close"]
    async with GuardedGateway(FakeGateway(), breaker) as plain:  # nothing to delegate
        await plain.aclose()
