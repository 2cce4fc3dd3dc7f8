"""Nothing the gateway logs carries card data or PG response bodies."""

from __future__ import annotations

import logging

import pytest

from ivr.gateways.contract import BillingKeyRequest, ChargeRequest, KeyedChargeRequest
from ivr.gateways.errors import CardDeclined, OutcomeUnknown
from ivr.gateways.portone import PortOneGateway
from tests.gateways.support import card, luhn_complete, order

pytestmark = pytest.mark.anyio


async def test_no_card_data_or_bodies_in_logs(
    pg: PortOneGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pans = [luhn_complete("451800000000000"), "4000000000003220", "4000000000009987"]
    await pg.register_billing_key(BillingKeyRequest("cus_log", card(pans[0], birth="770707")))
    await pg.charge_billing_key(ChargeRequest("cus_log", order(), 1_000, "x"))
    with pytest.raises(CardDeclined):
        await pg.register_billing_key(BillingKeyRequest("cus_log2", card(pans[2], password="00")))
    with pytest.raises(OutcomeUnknown):
        await pg.keyed_charge(KeyedChargeRequest(card(pans[1]), order(), 500, "x"))
    text = caplog.text
    assert "portone" in text  # something was logged
    for secret in [*pans, *(p[-8:] for p in pans), "770707", "2031-12", "pwd_2digit", "880101"]:
        assert secret not in text
    for body_field in ("imp_uid", "apply_num", "card_number", "fail_reason", "access_token"):
        assert body_field not in text
