"""Console settings: the payer-notice switches (docs/notices.md) in the policy form."""

from __future__ import annotations

import pytest

from ivr.merchants.policy import MerchantPolicy
from tests.console.config_support import policy_form, stored_policy
from tests.console.conftest import Console, post

pytestmark = pytest.mark.anyio

ON = ("registration_completed", "payment_approved", "payment_failed", "payment_settled",
      "refund", "schedule_prenotice")  # fmt: skip


async def test_the_notice_switches_are_shown_saved_and_checked(console: Console) -> None:
    a, c = await console.tenant("행복치과")
    page = (await c.get("/console/settings")).text
    assert 'data-testid="policy-notices"' in page
    for kind in ON:
        assert f'name="notice_{kind}" value="on" checked' in page
    assert 'name="notice_request_expired" value="on" >' in page  # off by default
    assert 'name="notice_alimtalk" value="on" checked' in page  # 알림톡 first by default
    switches = {"notices_form": "1", "notice_payment_approved": "on",
                "notice_request_expired": "on", "notice_prenotice_days": "5"}  # fmt: skip
    r = await post(c, "/console/settings", "/console/settings/policy", policy_form(**switches))
    assert r.status_code == 303, r.text
    notices = MerchantPolicy.parse(await stored_policy(console, a.merchant_id)).notices
    assert {k for k, v in notices.model_dump().items() if v is True} == {
        "payment_approved", "request_expired",
    }  # fmt: skip
    assert notices.prenotice_days == 5
    # a form without the switches (an older page) leaves them as they are
    r = await post(c, "/console/settings", "/console/settings/policy", policy_form())
    assert r.status_code == 303
    assert MerchantPolicy.parse(await stored_policy(console, a.merchant_id)).notices == notices
    before = await stored_policy(console, a.merchant_id)
    bad = policy_form(notices_form="1", notice_prenotice_days="0")
    r = await post(c, "/console/settings", "/console/settings/policy", bad)
    assert r.status_code == 422
    assert 'data-testid="policy-error"' in r.text
    assert await stored_policy(console, a.merchant_id) == before
