"""Receipt (매출전표) links: which ones a connector keeps (ivr/gateways/receipts.py), the
v1 and V2 connectors reading them, and the sandbox's own receipt page over HTTP."""

from __future__ import annotations

import pytest

from ivr.gateways.contract import BillingKeyRequest, ChargeRequest, KeyedChargeRequest
from ivr.gateways.receipts import MAX_LEN, kept
from tests.gateways.fakes import Reply, scripted_pg
from tests.gateways.support import Sandbox, card, connector, order
from tests.gateways.v2_support import connector_v2

pytestmark = pytest.mark.anyio

INICIS = "https://iniweb.inicis.com/DefaultWebApp/mall/cr/cm/mCmReceipt_head.jsp?noTid=StdpayCARD"
EVIL = "https://receipt.evil.example/phish?x=1"


@pytest.mark.parametrize(
    ("url", "base", "keep"),
    [
        (INICIS, "", True),
        ("https://dashboard.tosspayments.com/receipt/sales-slip?x=1", "", True),
        ("https://inicis.com/r", "", True),
        ("http://iniweb.inicis.com/r", "", False),  # https only on a receipt host
        (EVIL, "https://api.iamport.kr", False),
        ("https://evilinicis.com/r", "", False),  # not a subdomain
        ("https://iniweb.inicis.com.evil.example/r", "", False),
        ("https://user@iniweb.inicis.com/r", "", False),  # credentials: a disguise
        ("https://iniweb.inicis.com/r x", "", False),
        ("https://iniweb.inicis.com/r\n", "", False),
        ("javascript:alert(1)", "", False),
        ("https://iniweb.inicis.com/" + "a" * MAX_LEN, "", False),
        ("http://127.0.0.1:8088/sandbox/receipts/imp_1", "http://127.0.0.1:8088", True),
        ("http://127.0.0.1:9999/sandbox/receipts/imp_1", "http://127.0.0.1:8088", False),
        ("https://127.0.0.1:8088/sandbox/receipts/imp_1", "http://127.0.0.1:8088", False),
        ("https://api.iamport.kr/x", "https://api.iamport.kr:443", True),
        ("", "", False),
        (None, "", False),
        (42, "", False),
    ],
)
def test_only_allowed_receipt_links_are_kept(url: object, base: str, keep: bool) -> None:
    assert kept(url, base) == (url if keep else None)


def _v1_paid(order_id: str, receipt: str) -> Reply:
    return Reply(200, {"code": 0, "response": {
        "imp_uid": "imp_1", "merchant_uid": order_id, "amount": 1_000, "status": "paid",
        "apply_num": "12345678", "receipt_url": receipt,
    }})  # fmt: skip


@pytest.mark.parametrize(("receipt", "stored"), [(INICIS, INICIS), (EVIL, None)])
async def test_v1_reads_receipt_url_and_drops_a_foreign_host(
    receipt: str, stored: str | None
) -> None:
    oid = order()
    script = {
        "POST /subscribe/payments/again": _v1_paid(oid, receipt),
        "GET /payments/findAll/{rest}": Reply(
            200,
            {
                "code": 0,
                "response": {"total": 1, "list": [_v1_paid(oid, receipt).body["response"]]},
            },
        ),
    }
    async with scripted_pg(script) as fake, connector(fake.url) as pg:
        charged = await pg.charge_billing_key(ChargeRequest("cus_r", oid, 1_000, "x"))
        found = await pg.find(oid)
    assert charged.succeeded
    assert charged.receipt_url == stored
    assert found is not None
    assert found.receipt_url == stored


def _v2_payment(oid: str, receipt: str) -> Reply:
    return Reply(200, {
        "status": "PAID", "id": oid, "amount": {"total": 1_000, "cancelled": 0},
        "pgTxId": "tx_1", "paidAt": "2026-12-07T01:02:03Z", "receiptUrl": receipt,
        "method": {"type": "PaymentMethodCard", "approvalNumber": "87654321",
                   "card": {"number": "45180000****1234"}},
    })  # fmt: skip


@pytest.mark.parametrize(("receipt", "stored"), [(INICIS, INICIS), (EVIL, None)])
async def test_v2_reads_receipt_url_from_the_payment(receipt: str, stored: str | None) -> None:
    oid = order()
    listed = Reply(200, {"items": [{"status": "ISSUED", "billingKey": "billing-key-1",
                                    "customer": {"id": "bk_S"}}], "page": {}})  # fmt: skip
    script = {
        "GET /billing-keys": listed,
        "POST /payments/{rest}/billing-key": Reply(
            200, {"payment": {"pgTxId": "tx_1", "paidAt": "2026-12-07T01:02:03Z"}}
        ),
        "GET /payments/{rest}": _v2_payment(oid, receipt),
    }
    async with scripted_pg(script) as fake, connector_v2("", base_url=fake.url) as pg:
        charged = await pg.charge_billing_key(ChargeRequest("bk_S", oid, 1_000, "x"))
        found = await pg.find(oid)
    assert charged.succeeded
    assert charged.approval_no == "87654321"
    assert charged.receipt_url == stored
    assert found is not None
    assert found.receipt_url == stored


async def test_the_sandbox_links_and_serves_its_receipt_page(sandbox: Sandbox) -> None:
    async with connector(sandbox.url) as pg:
        await pg.register_billing_key(BillingKeyRequest("cus_rcpt", card()))
        oid = order()
        charged = await pg.charge_billing_key(ChargeRequest("cus_rcpt", oid, 12_300, "x"))
        found = await pg.find(oid)
        keyed = await pg.keyed_charge(KeyedChargeRequest(card(), order(), 4_500, "y"))
    assert charged.succeeded
    assert charged.pg_tx_id
    assert charged.approval_no
    assert charged.receipt_url == f"{sandbox.url}/sandbox/receipts/{charged.pg_tx_id}"
    assert found is not None
    assert found.receipt_url == charged.receipt_url
    assert keyed.receipt_url == f"{sandbox.url}/sandbox/receipts/{keyed.pg_tx_id}"
    async with sandbox.http.get(charged.receipt_url) as r:  # no token: a payer opens it
        assert r.status == 200
        assert r.content_type == "text/html"
        page = await r.text()
    assert "12,300원" in page
    assert charged.approval_no in page
    assert oid in page
    assert "4111111111111111" not in page
    assert "1111" in page
    async with sandbox.http.get(f"{sandbox.url}/sandbox/receipts/imp_nope") as r:
        assert r.status == 404


async def test_a_declined_charge_has_no_receipt(sandbox: Sandbox) -> None:
    async with connector(sandbox.url) as pg:
        declined = await pg.keyed_charge(
            KeyedChargeRequest(card("4000000000000002"), order(), 1_000, "x")
        )
    assert not declined.succeeded
    assert declined.receipt_url is None


async def test_the_v2_sandbox_links_its_receipt_page_too(sandbox: Sandbox) -> None:
    async with connector_v2(sandbox.url) as pg:
        await pg.register_billing_key(BillingKeyRequest("cus_rcpt2", card()))
        oid = order()
        charged = await pg.charge_billing_key(ChargeRequest("cus_rcpt2", oid, 7_700, "x"))
        found = await pg.find(oid)
    assert charged.succeeded
    assert charged.receipt_url is not None
    assert charged.receipt_url.startswith(f"{sandbox.url}/sandbox/receipts/imp_")
    assert found is not None
    assert found.receipt_url == charged.receipt_url
    async with sandbox.http.get(charged.receipt_url) as r:
        assert r.status == 200
        assert "7,700원" in await r.text()
