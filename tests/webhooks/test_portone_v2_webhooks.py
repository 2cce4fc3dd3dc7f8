"""PortOne V2 webhooks: the verifier (Standard Webhooks signature, tolerance window,
replays), interoperable with the reference ``standardwebhooks`` library, and the
sandbox PG sending them for what happens on its /v2 mount."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import standardwebhooks

from ivr.gateways.contract import BillingKeyRequest, CancelRequest, ChargeRequest
from ivr.gateways.portone_v2.webhooks import InvalidSignature, PortOneWebhooks
from ivr.webhooks.signing import headers_for, new_secret
from tests.gateways.support import card, order, running_sandbox
from tests.gateways.v2_support import connector_v2
from tests.webhooks.conftest import Receiver

pytestmark = pytest.mark.anyio

BODY = json.dumps({
    "type": "Transaction.Paid", "timestamp": "2026-12-07T00:00:00.000Z",
    "data": {"paymentId": "ord_01TEST", "storeId": "store-1", "transactionId": "tx-1"},
}).encode()  # fmt: skip


def signed(
    secret: str, body: bytes = BODY, *, msg_id: str = "msg_1", at: float | None = None
) -> dict[str, str]:
    return headers_for([secret], msg_id, int(time.time() if at is None else at), body)


def test_a_signed_notice_is_read() -> None:
    secret = new_secret()
    notice = PortOneWebhooks(secret).verify(signed(secret), BODY)
    assert (notice.message_id, notice.type, notice.payment_id) == (
        "msg_1",
        "Transaction.Paid",
        "ord_01TEST",
    )
    assert notice.about_a_payment


def test_a_reference_signature_is_accepted() -> None:
    secret = new_secret()
    now = int(time.time())
    sig = standardwebhooks.Webhook(secret).sign(
        "msg_ref", datetime.fromtimestamp(now, UTC), BODY.decode()
    )
    headers = {"webhook-id": "msg_ref", "webhook-timestamp": str(now), "webhook-signature": sig}
    assert PortOneWebhooks(secret).verify(headers, BODY).message_id == "msg_ref"


@pytest.mark.parametrize("tamper", ["secret", "body", "id", "timestamp", "missing"])
def test_a_bad_signature_is_refused(tamper: str) -> None:
    secret = new_secret()
    headers, body = signed(secret), BODY
    if tamper == "secret":
        headers = signed(new_secret())
    elif tamper == "body":
        body = BODY.replace(b"ord_01TEST", b"ord_01OTHER")
    elif tamper == "id":
        headers["webhook-id"] = "msg_2"
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    else:
        del headers["webhook-signature"]
    with pytest.raises(InvalidSignature):
        PortOneWebhooks(secret).verify(headers, body)


def test_an_old_or_future_timestamp_is_refused_even_when_signed() -> None:
    secret = new_secret()
    verifier = PortOneWebhooks(secret, tolerance_s=300)
    for skew in (-301, 301):
        with pytest.raises(InvalidSignature):
            verifier.verify(signed(secret, at=time.time() + skew), BODY)
    assert verifier.verify(signed(secret, at=time.time() - 290), BODY).type == "Transaction.Paid"


def test_a_replay_is_seen_once_handled_and_forgotten_when_it_cannot_pass_again() -> None:
    secret, now = new_secret(), [time.time()]
    verifier = PortOneWebhooks(secret, tolerance_s=300, clock=lambda: now[0])
    notice = verifier.verify(signed(secret, at=now[0]), BODY)
    assert not verifier.seen(notice)  # a delivery that failed here may come again
    verifier.handled(notice)
    again = verifier.verify(signed(secret, at=now[0]), BODY)
    assert verifier.seen(again)
    now[0] += 601  # its timestamp can no longer pass: nothing to remember
    assert not verifier.seen(again)
    with pytest.raises(InvalidSignature):
        verifier.verify(signed(secret, at=now[0] - 601), BODY)


def test_a_signed_body_that_is_not_a_notice_is_refused() -> None:
    secret = new_secret()
    for body in (b"not json", b"[]", b'{"data": {}}'):
        with pytest.raises(InvalidSignature):
            PortOneWebhooks(secret).verify(signed(secret, body), body)
    other = b'{"type": "BillingKey.Deleted", "data": {"billingKey": "billing-key-1"}}'
    notice = PortOneWebhooks(secret).verify(signed(secret, other), other)
    assert (notice.about_a_payment, notice.billing_key) == (False, "billing-key-1")


async def test_the_sandbox_sends_signed_v2_webhooks(tmp_path: Path, receiver: Receiver) -> None:
    secret = new_secret()
    async with (
        running_sandbox(
            tmp_path / "l.db", v2_webhook_url=receiver.url, v2_webhook_secret=secret
        ) as sbx,
        connector_v2(sbx.url) as pg,
    ):
        await pg.register_billing_key(BillingKeyRequest("bk_HOOK", card()))
        paid = order()
        await pg.charge_billing_key(ChargeRequest("bk_HOOK", paid, 5_000, "x"))
        await pg.charge_billing_key(ChargeRequest("bk_HOOK", declined := order(), 5_000, "x", 3))
        await pg.cancel(CancelRequest(paid, "환불", 5_000, 1_000))
        await sbx.settled()
    verifier = PortOneWebhooks(secret)
    notices = [verifier.verify(h.headers, h.body) for h in receiver.hits]
    seen = sorted((n.type, n.payment_id or "") for n in notices)  # sent in the background
    assert seen == sorted([
        ("BillingKey.Issued", ""), ("Transaction.Paid", paid),
        ("Transaction.Failed", declined), ("Transaction.PartialCancelled", paid),
    ])  # fmt: skip
    assert len({n.message_id for n in notices}) == 4
    for hit in receiver.hits:
        standardwebhooks.Webhook(secret).verify(hit.body, hit.headers)
        assert b"4111" not in hit.body
