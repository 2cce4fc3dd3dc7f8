"""The V2 connector and the sandbox's /v2 mount against PortOne's V2 OpenAPI document
(tests/data/portone/v2.openapi.json, see its SOURCE note).

One run drives the real connector over HTTP through every operation and outcome it
knows — registrations and charges of every test card, keyed charges (saved or not),
lookups, partial and full cancels and their refusals, billing-key deletes, a stale
billing key, a duplicate paymentId, a wrong API secret — and then checks every request
the connector sent and every answer the sandbox gave against the operation's schemas
(:mod:`tests.gateways.oas3`: discriminators resolved, unknown fields refused).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.gateways.contract import (
    BillingKeyRequest,
    CancelRequest,
    ChargeRequest,
    ChargeStatus,
    KeyedChargeRequest,
)
from ivr.gateways.errors import (
    AuthenticationFailed,
    CancelRefusal,
    CancelRefused,
    CardDeclined,
    DuplicateOrder,
    OutcomeUnknown,
)
from tests.gateways.oas3 import OpenApi3
from tests.gateways.support import card, luhn_complete, order
from tests.gateways.v2_support import V2_DOCUMENT, Exchange, connector_v2, recorded_sandbox

pytestmark = pytest.mark.anyio

DOC = OpenApi3.load(V2_DOCUMENT)
USED = {
    "issueBillingKey", "getBillingKeyInfo", "getBillingKeyInfos", "deleteBillingKey",
    "payWithBillingKey", "payInstantly", "getPayment", "cancelPayment",
}  # fmt: skip
PG_ERROR_CARD = "4000000000000119"  # HTTP 500, as on the v1 paths: not in the document


def check(ex: Exchange) -> list[str]:
    op = DOC.operation(ex.method, ex.path)
    where = f"{ex.method} {ex.path} -> {ex.status}"
    problems = [
        f"{where} request: {p}" for p in DOC.request_errors(op, ex.query, ex.request_json())
    ]
    problems += [
        f"{where} answer: {p}" for p in DOC.response_errors(op, ex.status, ex.answer_json())
    ]
    return problems


async def drive(tmp_path: Path) -> list[Exchange]:
    async with recorded_sandbox(tmp_path / "ledger.db") as (sbx, rec):
        async with connector_v2(sbx.url) as pg, connector_v2(sbx.url) as other:
            kb = luhn_complete("451800000000000")
            await pg.register_billing_key(BillingKeyRequest("bk_OK", card(kb)))
            await pg.register_billing_key(
                BillingKeyRequest("bk_CHECK", card(luhn_complete("531000000000000")))
            )
            await pg.register_billing_key(BillingKeyRequest("bk_POOR", card("4000000000009995")))
            for uid, bad in (
                ("bk_R", card("4000000000000002")),
                ("bk_L", card("4000000000009987")),
                ("bk_E", card("4000000000000069")),
                ("bk_P", card(password="00")),
                ("bk_B", card(birth="000101")),
                ("bk_N", card("4111111111111112")),
            ):
                with pytest.raises(CardDeclined):
                    await pg.register_billing_key(BillingKeyRequest(uid, bad))
            with pytest.raises(OutcomeUnknown):
                await pg.register_billing_key(BillingKeyRequest("bk_X", card(PG_ERROR_CARD)))

            paid = order()
            assert (
                await other.charge_billing_key(
                    ChargeRequest("bk_OK", paid, 60_000, "임플란트", 3, interest_free=True)
                )
            ).succeeded
            with pytest.raises(DuplicateOrder):
                await pg.charge_billing_key(ChargeRequest("bk_OK", paid, 60_000, "임플란트"))
            for uid, amount, months in (
                ("bk_POOR", 5_000, 0),
                ("bk_POOR", 150_000, 0),
                ("bk_CHECK", 60_000, 3),
            ):
                result = await pg.charge_billing_key(
                    ChargeRequest(uid, order(), amount, "정기", months)
                )
                assert result.status is ChargeStatus.failed
            assert (
                await pg.keyed_charge(KeyedChargeRequest(card(kb), order(), 1_000, "수기"))
            ).succeeded
            assert (
                await pg.keyed_charge(
                    KeyedChargeRequest(
                        card(), order(), 1_000, "수기", save_as_customer_uid="bk_SAVED"
                    )
                )
            ).succeeded
            for bad in (card("4000000000009987"), card(password="00"), card("4000000000009995")):
                result = await pg.keyed_charge(KeyedChargeRequest(bad, order(), 1_000, "수기"))
                assert result.status is ChargeStatus.failed
            assert await pg.find(order()) is None

            assert (
                await pg.cancel(CancelRequest(paid, "부분", 60_000, 10_000))
            ).refundable == 50_000
            with pytest.raises(CancelRefused) as stale_checksum:
                await pg.cancel(CancelRequest(paid, "부분", 60_000, 1_000))
            assert stale_checksum.value.reason is CancelRefusal.checksum_mismatch
            assert (await pg.cancel(CancelRequest(paid, "전액", 50_000))).refundable == 0
            for request, refusal in (
                (CancelRequest(paid, "다시", 0), CancelRefusal.already_cancelled),
                (CancelRequest(order(), "없음", 0), CancelRefusal.not_found),
            ):
                with pytest.raises(CancelRefused) as info:
                    await pg.cancel(request)
                assert info.value.reason is refusal
            assert (await pg.find(paid)) is not None

            assert await other.delete_billing_key("bk_OK", reason="해지") is True
            stale = await pg.charge_billing_key(ChargeRequest("bk_OK", order(), 1_000, "x"))
            assert stale.decline is not None
            assert stale.refused
            assert await pg.delete_billing_key("bk_OK", reason="해지") is False
        async with connector_v2(sbx.url, api_secret="wrong") as intruder:
            with pytest.raises(AuthenticationFailed):
                await intruder.find(order())
        return rec.exchanges


async def test_every_v2_exchange_matches_portones_document(tmp_path: Path) -> None:
    exchanges = await drive(tmp_path)
    seen = {DOC.operation(ex.method, ex.path).operation_id for ex in exchanges}
    assert seen >= USED, f"not exercised: {USED - seen}"
    statuses = {(DOC.operation(ex.method, ex.path).operation_id, ex.status) for ex in exchanges}
    for expected in (
        ("payWithBillingKey", 409),
        ("payWithBillingKey", 502),
        ("cancelPayment", 409),
        ("cancelPayment", 404),
        ("getPayment", 404),
        ("issueBillingKey", 502),
        ("getPayment", 401),
    ):
        assert expected in statuses, f"{expected} never answered"
    pg_errors = [ex for ex in exchanges if ex.status == 500]
    assert len(pg_errors) == 1
    assert pg_errors[0].path == "/billing-keys"
    problems = [p for ex in exchanges if ex.status != 500 for p in check(ex)]
    assert problems == []


def test_the_validator_refuses_a_wrong_field() -> None:
    op = DOC.operation("POST", "/payments/ord_1/billing-key")
    good = {"billingKey": "billing-key-1", "orderName": "x", "amount": {"total": 1000},
            "currency": "KRW"}  # fmt: skip
    assert DOC.request_errors(op, {}, good) == []
    assert DOC.request_errors(op, {}, {**good, "installmentMonths": 3})  # not the documented name
    assert DOC.request_errors(op, {}, {**good, "currency": "WON"})
    assert DOC.request_errors(op, {}, {k: v for k, v in good.items() if k != "currency"})
    assert DOC.request_errors(op, {"requester": "arspay"}, good)  # undocumented query parameter
    get = DOC.operation("GET", "/payments/ord_1")
    assert DOC.response_errors(get, 418, {}) == ["undocumented status 418 for getPayment"]
    assert DOC.response_errors(get, 404, {"type": "PAYMENT_NOT_FOUND"}) == []
    assert DOC.response_errors(get, 404, {"type": "NOT_A_TYPE"})  # discriminator checked
    paid = DOC.response_errors(get, 200, {"status": "PAID", "id": "ord_1"})
    assert any("transactionId" in p for p in paid)  # the PAID branch's required fields
