"""What a schedule cycle does at its deadline, for every end state of the payment call
request × every schedule mode (issue #26, docs/product.md §8): ``consent_then_auto`` charges
only a payer who did not pay by call and did not say no; a "no" (key 3) or a cancelled
request ends the cycle ``schedule.cycle_declined`` with no charge at the PG; ``consent``
never charges; ``auto`` charges whatever the payer's requests say.

Real store (SQLite and PostgreSQL), the sandbox PG over HTTP, a FakeClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from ivr.billing.scheduler import pending_requests_for
from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.store.tables import AuditLog, CallRequest, PaymentAttempt, WebhookEvent
from tests.billing.conftest import Billing

pytestmark = pytest.mark.anyio

S = CallRequestStatus
END_STATES = [S.created, S.sms_sent, S.in_call, S.completed, S.declined, S.failed, S.expired,
              S.cancelled]  # fmt: skip
MODES = ["auto", "consent", "consent_then_auto"]

# The cycle falls due on 2026-12-10 10:00 KST (01:00 UTC); the payer has 48 hours.
DUE = datetime(2026, 12, 10, 1, 0, tzinfo=UTC)
PLAN = {"rule": {"every": "month", "day": 10}, "start": "2026-12-01", "count": 1,
        "at": "10:00", "consent_hours": 48}  # fmt: skip
AFTER_DEADLINE = DUE + timedelta(hours=60)

# (mode, state at the deadline) -> (PG charges, schedule.cycle_declined reason or None)
CHARGE, NO_CHARGE = 1, 0
EXPECTED: dict[tuple[str, S], tuple[int, str | None]] = {
    **{("auto", st): (CHARGE, None) for st in END_STATES},
    **{("consent", st): (NO_CHARGE, None) for st in END_STATES},
    ("consent", S.declined): (NO_CHARGE, "payer_declined"),
    ("consent", S.cancelled): (NO_CHARGE, "request_cancelled"),
    ("consent_then_auto", S.created): (CHARGE, None),  # the SMS never went out: no call
    ("consent_then_auto", S.sms_sent): (CHARGE, None),  # no call by the deadline
    ("consent_then_auto", S.in_call): (NO_CHARGE, None),  # not while the payer is talking
    ("consent_then_auto", S.completed): (NO_CHARGE, None),  # paid in the call
    ("consent_then_auto", S.declined): (NO_CHARGE, "payer_declined"),  # pressed 3
    ("consent_then_auto", S.failed): (CHARGE, None),  # called, never finished, never said no
    ("consent_then_auto", S.expired): (CHARGE, None),
    ("consent_then_auto", S.cancelled): (NO_CHARGE, "request_cancelled"),
}
assert len(EXPECTED) == len(MODES) * len(END_STATES)

# How a request reaches each state (the call request state machine's own paths).
PATHS: dict[S, list[S]] = {
    S.created: [],
    S.sms_sent: [S.sms_sent],
    S.in_call: [S.sms_sent, S.in_call],
    S.completed: [S.sms_sent, S.in_call, S.completed],
    S.declined: [S.sms_sent, S.in_call, S.declined],
    S.failed: [S.sms_sent, S.in_call, S.failed],
    S.expired: [S.sms_sent, S.expired],
    S.cancelled: [S.sms_sent, S.cancelled],
}


async def _drive(b: Billing, request_id: str, state: S) -> None:
    for step in PATHS[state]:
        actor = "api:key_merchant" if step is S.cancelled else "call"
        await b.services.requests.transition(request_id, step, actor=actor)


async def _events(b: Billing, type_: str) -> list[dict[str, Any]]:
    async with b.db.sessions() as s:
        rows = await s.scalars(
            select(WebhookEvent).where(WebhookEvent.type == type_).order_by(WebhookEvent.id)
        )
        return [e.payload["data"] for e in rows]


async def _to_due(b: Billing) -> None:
    """Run the scheduler to just past the due time (hours apart near it)."""
    await b.run_until(DUE - timedelta(hours=12), step=timedelta(hours=12))
    await b.run_until(DUE + timedelta(hours=1), step=timedelta(hours=1))


async def _attempts(b: Billing) -> int:
    async with b.db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(PaymentAttempt)) or 0)


async def _the_request(b: Billing, mode: str, schedule_id: str) -> CallRequest:
    """The request whose state the test sets: the cycle's own in the consent modes; in
    ``auto`` (which sends none) a payment request the merchant made for the payer."""
    if mode == "auto":
        made = await b.services.requests.create(
            b.merchant_id, b.customer_id, CallRequestKind.payment, product_name="관리비",
            amount=20_000, lease_minutes=48 * 60, actor="api:key_merchant",
        )  # fmt: skip
        return made.request
    [req] = await pending_requests_for(b.db, schedule_id)
    return req


@pytest.mark.parametrize("state", END_STATES, ids=[s.value for s in END_STATES])
@pytest.mark.parametrize("mode", MODES)
async def test_what_a_cycle_does_at_the_deadline(billing: Billing, mode: str, state: S) -> None:
    b = billing
    charges, declined = EXPECTED[(mode, state)]
    sched = await b.schedule(PLAN, 20_000, "관리비", mode=mode, with_card=mode != "consent")
    req = None
    if mode == "auto":
        req = await _the_request(b, mode, sched.id)
        await _drive(b, req.id, state)
    await _to_due(b)
    if mode != "auto":
        charged = b.pg.count("charge_billing_key")
        assert (charged, await _attempts(b)) == (0, 0)  # nothing before the deadline
        req = await _the_request(b, mode, sched.id)
        assert req.status == S.created.value  # (the test's outbox sends no SMS)
        await _drive(b, req.id, state)
    assert req is not None

    await b.run_until(AFTER_DEADLINE)

    assert b.pg.count("charge_billing_key") == charges  # requests that reached the PG
    assert await _attempts(b) == charges
    assert [i.status for i in await b.intents()] == ["succeeded"] * charges
    got = [e["reason"] for e in await _events(b, "schedule.cycle_declined")]
    assert got == ([declined] if declined else [])
    if declined:
        [event] = await _events(b, "schedule.cycle_declined")
        assert event == {
            "schedule_id": sched.id, "cycle": 0, "mode": mode, "reason": declined,
            "call_request_id": req.id, "customer_id": b.customer_id, "amount": 20_000,
        }  # fmt: skip
    after = (await b.services.requests.get(None, req.id)).status
    if (mode, state) in (("consent_then_auto", S.created), ("consent_then_auto", S.sms_sent)):
        assert after == S.cancelled.value  # closed before the charge: no late call pays
    else:
        assert after == state.value  # the scheduler left it alone

    # later passes change nothing: once charged, once told
    await b.run_until(AFTER_DEADLINE + timedelta(days=40))
    assert b.pg.count("charge_billing_key") == charges
    assert len(await _events(b, "schedule.cycle_declined")) == (1 if declined else 0)


@pytest.mark.parametrize(
    ("ends_as", "charges"),
    [(S.expired, 1), (S.declined, 0), (S.completed, 0)],
    ids=["hung-up-late", "said-no", "paid"],
)
async def test_a_call_running_at_the_deadline_is_waited_for(
    billing: Billing, ends_as: S, charges: int
) -> None:
    """``consent_then_auto`` with the payer in a call at the deadline: nothing until
    the call ends; then its outcome decides (a call that ends without one, past the
    deadline, leaves the request ``expired``: charged)."""
    b = billing
    sched = await b.schedule(PLAN, 20_000, "관리비", mode="consent_then_auto")
    await _to_due(b)
    [req] = await pending_requests_for(b.db, sched.id)
    await _drive(b, req.id, S.in_call)
    await b.run_until(AFTER_DEADLINE, step=timedelta(minutes=30))
    assert b.pg.count("charge_billing_key") == 0
    if ends_as is S.expired:
        assert await b.services.requests.release_call(req.id, max_calls=5) is S.expired
    else:
        await b.services.requests.transition(req.id, ends_as, actor="call")
    await b.run_until(AFTER_DEADLINE + timedelta(hours=1), step=timedelta(minutes=15))
    assert b.pg.count("charge_billing_key") == charges
    declined = [e["reason"] for e in await _events(b, "schedule.cycle_declined")]
    assert declined == (["payer_declined"] if ends_as is S.declined else [])


async def test_a_worker_dying_after_cancelling_the_request_still_charges_once(
    billing: Billing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler's own cancellation at the deadline is noted in the job in the same
    transaction: the worker that takes over after a crash charges (the payer agreed to
    the automatic charge) instead of reading "cancelled" as the merchant's."""
    b = billing
    sched = await b.schedule(PLAN, 20_000, "관리비", mode="consent_then_auto")
    new_intent = b.scheduler._new_intent
    crashes = [1]

    async def die_first(*args: Any, **kwargs: Any) -> str:
        if crashes:
            crashes.pop()
            raise RuntimeError("the worker died here")
        return await new_intent(*args, **kwargs)

    monkeypatch.setattr(b.scheduler, "_new_intent", die_first)
    await b.run_until(AFTER_DEADLINE, step=timedelta(hours=1))
    assert not crashes  # it did die, after cancelling the request
    [req] = await pending_requests_for(b.db, sched.id)
    assert req.status == S.cancelled.value
    await b.run_until(AFTER_DEADLINE + timedelta(hours=2), step=timedelta(minutes=10))
    assert b.pg.count("charge_billing_key") == 1
    assert await _events(b, "schedule.cycle_declined") == []


async def test_a_declined_cycle_is_in_the_audit_log(billing: Billing) -> None:
    b = billing
    sched = await b.schedule(PLAN, 20_000, "관리비", mode="consent_then_auto")
    await _to_due(b)
    [req] = await pending_requests_for(b.db, sched.id)
    await _drive(b, req.id, S.declined)
    await b.run_until(AFTER_DEADLINE)
    async with b.db.sessions() as s:
        rows = list(
            await s.scalars(select(AuditLog).where(AuditLog.action == "schedule.cycle_declined"))
        )
    assert [(r.object_id, r.details["reason"], r.details["call_request_id"]) for r in rows] == [
        (sched.id, "payer_declined", req.id)
    ]
