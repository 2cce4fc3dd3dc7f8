"""Per-merchant call policy, senior mode, call limits and stale-call recovery."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.errors import InvalidInput
from ivr.merchants.policy import CallTiming, MerchantPolicy
from ivr.settings import CallSettings
from ivr.telephony.fake import HangUp, Press

from .conftest import Stack

pytestmark = pytest.mark.anyio


def test_senior_mode_doubles_the_timeouts_and_merchants_override() -> None:
    base = CallTiming.effective(CallSettings(), MerchantPolicy())
    assert (base.first_digit_timeout_s, base.inter_digit_timeout_s) == (8.0, 5.0)
    senior = CallTiming.effective(CallSettings(), MerchantPolicy(senior_mode=True))
    assert (senior.first_digit_timeout_s, senior.inter_digit_timeout_s) == (16.0, 10.0)
    operator_senior = CallTiming.effective(CallSettings(senior_mode=True), MerchantPolicy())
    assert operator_senior.senior_mode
    custom = CallTiming.effective(CallSettings(), MerchantPolicy(first_digit_timeout_s=12))
    assert custom.first_digit_timeout_s == 12.0


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"installment": True}, "installment"),  # typo: unknown key
        ({"max_installment_months": 40}, "max_installment_months"),
        ({"agent_destination": "nowhere"}, "destination"),
        ({"interest_free": [{"issuer": "신한", "min_months": 5, "max_months": 3}]}, "min_months"),
    ],
)
def test_bad_merchant_settings_are_refused_with_the_key_named(
    raw: dict[str, object], needle: str
) -> None:
    with pytest.raises(InvalidInput, match=needle):
        MerchantPolicy.parse(raw)


async def test_senior_mode_reaches_the_call(stack: Stack) -> None:
    from ivr.store.tables import Merchant

    async with stack.db.transaction() as s:
        m = await s.get(Merchant, stack.merchant_id)
        assert m is not None
        m.settings = {"senior_mode": True}
    await stack.request(CallRequestKind.registration)
    outcome, call = await stack.call([Press("2")])
    assert outcome == "declined"
    [spec] = call.specs
    assert (spec.first_timeout_s, spec.inter_timeout_s) == (16.0, 10.0)


async def test_fifth_call_without_outcome_fails_the_request(stack: Stack) -> None:
    req = await stack.request(CallRequestKind.registration)
    for n in range(1, 6):
        outcome, _ = await stack.call([HangUp()])
        assert outcome == "caller_hung_up"
        row = await stack.reload(req.id)
        assert row.calls == n
    assert row.status == CallRequestStatus.failed.value
    outcome, call = await stack.call([Press("1")])
    assert outcome == "rejected:too_many_calls"  # the lease ended with the request
    assert call.played == ["arspay/auth.limit"]


async def test_a_request_left_in_call_by_a_dead_engine_is_released(stack: Stack) -> None:
    services = stack.runtime.services
    req = await stack.request(CallRequestKind.registration)
    await services.requests.transition(req.id, CallRequestStatus.in_call, actor="test")
    assert await services.requests.release_stale_calls(older_than=timedelta(minutes=30),
                                                       max_calls=5) == 0  # fmt: skip
    stack.clock.advance(timedelta(minutes=31))
    released = await services.requests.release_stale_calls(
        older_than=timedelta(minutes=30), max_calls=5
    )
    assert released == 1
    assert (await stack.reload(req.id)).status == CallRequestStatus.expired.value


async def test_policy_changes_are_validated_merged_and_used_for_leases(stack: Stack) -> None:
    merchants = stack.runtime.services.merchants
    policy = await merchants.set_policy(stack.merchant_id, {"lease_minutes": 5}, actor="test")
    assert policy.lease_minutes == 5
    with pytest.raises(InvalidInput, match="lease_minutes"):
        await merchants.set_policy(stack.merchant_id, {"lease_minutes": 0}, actor="test")
    policy = await merchants.set_policy(stack.merchant_id, {"senior_mode": True}, actor="test")
    assert (policy.lease_minutes, policy.senior_mode) == (5, True)  # merged
    req = await stack.request(CallRequestKind.registration)
    assert req.expires_at - stack.clock.now() == timedelta(minutes=5)
