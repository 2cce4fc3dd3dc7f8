"""A customer's new mobile (#31 item 4): the old phone can no longer pay or register
on the requests sent to it (they are cancelled, their leases released); a new request
to the new mobile works."""

from __future__ import annotations

import pytest

from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.merchants.customer_changes import CustomerChanges
from ivr.telephony.fake import Press

from .conftest import MOBILE, Stack
from .test_flow_registration import card_keys
from .test_flow_rejections import rejected

pytestmark = pytest.mark.anyio

NEW_MOBILE = "01077778888"


async def test_after_a_mobile_change_the_old_phone_is_rejected(stack: Stack) -> None:
    old = await stack.request(CallRequestKind.registration)
    rt = stack.runtime
    changes = CustomerChanges(rt.services.db, stack.clock, rt.services.requests, rt.cards)
    done = await changes.update(
        stack.merchant_id, stack.customer_id, fields={"mobile": NEW_MOBILE}, actor="test"
    )
    assert done.cancelled == [old.id]
    assert (await stack.reload(old.id)).status == CallRequestStatus.cancelled.value

    await rejected(stack, "request_cancelled", "auth.cancelled", caller=MOBILE)
    await rejected(stack, "no_lease", "auth.rejected", caller=NEW_MOBILE)  # not sent to it

    new = await stack.request(CallRequestKind.registration)
    assert new.mobile == NEW_MOBILE
    await rejected(stack, "no_lease", "auth.rejected", caller=MOBILE)  # not the old phone
    outcome, _ = await stack.call([Press("1"), *card_keys()], caller_id=NEW_MOBILE)
    assert outcome == "completed"
    assert (await stack.reload(new.id)).status == CallRequestStatus.completed.value
