"""The PortOne V2 connector: against the sandbox's /v2 mount (the same test cards decline
the same way as through v1; headers; exactly-once orderings) and against a scripted
server, row by row through the mapping tables of ivr/gateways/portone_v2/errors.py."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from ivr.gateways.contract import (
    BillingKeyRequest,
    CancelRequest,
    ChargeRequest,
    ChargeStatus,
    Gateway,
    GatewayCharge,
    KeyedCard,
    KeyedChargeRequest,
    PgState,
)
from ivr.gateways.declines import DeclineReason
from ivr.gateways.errors import (
    AuthenticationFailed,
    CancelRefusal,
    CancelRefused,
    CardDeclined,
    DuplicateOrder,
    GatewayRejected,
    GatewayUnavailable,
    OutcomeUnknown,
)
from ivr.gateways.portone_v2 import PortOneV2Gateway
from ivr.gateways.portone_v2.errors import HTTP_ROWS, TYPE_ROWS, Http, Meaning, http_outcome
from tests.gateways.fakes import Reply, scripted_pg
from tests.gateways.support import SECRET, Sandbox, card, connector, luhn_complete, order
from tests.gateways.v2_support import CHANNEL, STORE, connector_v2, recorded_sandbox

pytestmark = pytest.mark.anyio

KB = luhn_complete("451800000000000")


def _said(charge: GatewayCharge) -> str:
    return str(charge.decline.reason) if charge.decline else "paid"


async def _reasons(pg: Gateway, c: KeyedCard, amount: int, months: int) -> str:
    """What the PG made of the card: its registration refusal, else the billing-key
    charge's and the keyed charge's outcomes."""
    try:
        await pg.register_billing_key(BillingKeyRequest("bk_TABLE", c))
    except CardDeclined as exc:
        return f"register:{exc.decline.reason}"
    charged = await pg.charge_billing_key(ChargeRequest("bk_TABLE", order(), amount, "x", months))
    keyed = await pg.keyed_charge(KeyedChargeRequest(c, order(), amount, "x", months))
    return f"{_said(charged)}/{_said(keyed)}"


@pytest.mark.parametrize(
    ("test_card", "amount", "months", "expected"),
    [
        (card(KB), 60_000, 3, "paid/paid"),
        (card("4000000000000002"), 1_000, 0, "register:rejected"),
        (card("4000000000009995"), 1_000, 0, "insufficient_funds/insufficient_funds"),
        (card("4000000000009995"), 100_000, 0, "limit_exceeded/limit_exceeded"),
        (card("4000000000009987"), 1_000, 0, "register:lost_or_stolen"),
        (card("4000000000000069"), 1_000, 0, "register:expired_card"),
        (card(password="00"), 1_000, 0, "register:wrong_password"),
        (card(birth="000101"), 1_000, 0, "register:identity_mismatch"),
        (card(luhn_complete("531000000000000")), 60_000, 3,
         "installment_unavailable/installment_unavailable"),
        (card(KB), 10_000, 3, "installment_unavailable/installment_unavailable"),
    ],
)  # fmt: skip
async def test_the_same_cards_decline_the_same_way_through_v1_and_v2(
    sandbox: Sandbox, test_card: KeyedCard, amount: int, months: int, expected: str
) -> None:
    async with connector(sandbox.url) as v1, connector_v2(sandbox.url) as v2:
        assert await _reasons(v1, test_card, amount, months) == expected
        assert await _reasons(v2, test_card, amount, months) == expected


async def test_register_charge_find_cancel_delete(sandbox: Sandbox) -> None:
    async with connector_v2(sandbox.url) as pg, connector_v2(sandbox.url) as fresh:
        key = await pg.register_billing_key(BillingKeyRequest("bk_FLOW", card(KB)))
        assert (key.customer_uid, key.last4, key.card_type) == ("bk_FLOW", KB[-4:], "credit")
        assert key.issuer_code == "KOOKMIN_CARD"
        paid = order()
        # another process (an empty key cache) finds the billing key by customer.id
        charge = await fresh.charge_billing_key(
            ChargeRequest("bk_FLOW", paid, 60_000, "임플란트", 3)
        )
        assert charge.succeeded
        assert charge.approval_no
        assert charge.card_last4 == KB[-4:]
        found = await pg.find(paid)
        assert found is not None
        assert (found.state, found.amount, found.pg_tx_id) == (
            PgState.paid,
            60_000,
            charge.pg_tx_id,
        )
        part = await pg.cancel(CancelRequest(paid, "부분 환불", 60_000, 10_000))
        assert (part.cancelled_now, part.cancelled_total, part.refundable) == (
            10_000,
            10_000,
            50_000,
        )
        assert part.state is PgState.paid  # PARTIAL_CANCELLED stays paid in the contract
        rest = await pg.cancel(CancelRequest(paid, "전액", 50_000))
        assert (rest.cancelled_total, rest.refundable, rest.state) == (60_000, 0, PgState.cancelled)
        assert await fresh.delete_billing_key("bk_FLOW", reason="해지") is True
        assert await fresh.delete_billing_key("bk_FLOW", reason="해지") is False
        gone = await fresh.charge_billing_key(ChargeRequest("bk_FLOW", order(), 1_000, "x"))
        assert gone.status is ChargeStatus.failed
        assert gone.refused


async def test_headers_scope_and_idempotency_keys(tmp_path: Path) -> None:
    async with recorded_sandbox(tmp_path / "l.db") as (sbx, rec), connector_v2(sbx.url) as pg:
        await pg.register_billing_key(BillingKeyRequest("bk_H", card(KB)))
        paid = order()
        await pg.charge_billing_key(ChargeRequest("bk_H", paid, 60_000, "x", 3, interest_free=True))
        with pytest.raises(DuplicateOrder):
            await pg.charge_billing_key(ChargeRequest("bk_H", paid, 60_000, "x", 3))
    assert {ex.headers["Authorization"] for ex in rec.exchanges} == {f"PortOne {SECRET}"}
    pays = [ex for ex in rec.exchanges if ex.path.endswith("/billing-key")]
    keys = {ex.headers["Idempotency-Key"] for ex in pays}
    assert keys == {f'"arspay-pay-{paid}"'}  # one key per paymentId, quoted (RFC 8941)
    assert all(16 <= len(k) - 2 <= 256 for k in keys)
    body = pays[0].request_json()
    assert (body["storeId"], body["channelKey"], body["currency"]) == (STORE, CHANNEL, "KRW")
    assert (body["amount"], body["installmentMonth"]) == ({"total": 60_000}, 3)
    assert body["useFreeInterestFromMerchant"] is True
    assert body["customer"] == {"id": "bk_H"}
    issue = next(ex for ex in rec.exchanges if ex.method == "POST" and ex.path == "/billing-keys")
    cred = issue.request_json()["method"]["card"]["credential"]
    assert (cred["expiryYear"], cred["expiryMonth"]) == ("31", "12")


async def test_a_dropped_answer_is_unknown_and_the_order_is_paid_once(sandbox: Sandbox) -> None:
    async with connector_v2(sandbox.url) as pg:
        await pg.register_billing_key(BillingKeyRequest("bk_DROP", card("4000000000003220")))
        oid = order()
        with pytest.raises(OutcomeUnknown) as lost:
            await pg.charge_billing_key(ChargeRequest("bk_DROP", oid, 5_000, "x"))
        assert lost.value.order_id == oid
        found = await pg.find(oid)
        assert found is not None
        assert found.state is PgState.paid
        with pytest.raises(DuplicateOrder):  # the resend with the same paymentId
            await pg.charge_billing_key(ChargeRequest("bk_DROP", oid, 5_000, "x"))
    assert (await sandbox.ledger(oid))["paid"] == 1


async def test_a_fault_before_recording_is_unknown_and_nothing_is_recorded(
    sandbox: Sandbox,
) -> None:
    async with connector_v2(sandbox.url) as pg:
        await pg.register_billing_key(BillingKeyRequest("bk_F", card(KB)))
        oid = order()
        await sandbox.fault("charge", "error_before", match=oid)
        with pytest.raises(OutcomeUnknown):
            await pg.charge_billing_key(ChargeRequest("bk_F", oid, 5_000, "x"))
        assert await pg.find(oid) is None
        assert (await pg.charge_billing_key(ChargeRequest("bk_F", oid, 5_000, "x"))).succeeded


async def test_keyed_charge_that_saves_the_card_registers_it_first(sandbox: Sandbox) -> None:
    async with connector_v2(sandbox.url) as pg:
        saved = await pg.keyed_charge(
            KeyedChargeRequest(card(KB), order(), 1_000, "x", save_as_customer_uid="bk_SAVE")
        )
        assert saved.succeeded
        again = await pg.charge_billing_key(ChargeRequest("bk_SAVE", order(), 2_000, "x"))
        assert again.succeeded
        refused = await pg.keyed_charge(
            KeyedChargeRequest(
                card(password="00"), order(), 1_000, "x", save_as_customer_uid="bk_NO"
            )
        )
        assert refused.decline is not None
        assert refused.decline.prompt_id == "pay.failed.wrong_password"  # a payment call's prompt
        assert refused.refused


async def test_logs_carry_no_card_data(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with connector_v2(sandbox.url) as pg:
        await pg.register_billing_key(BillingKeyRequest("bk_LOG", card(KB, birth="770707")))
        await pg.keyed_charge(KeyedChargeRequest(card("4000000000009995"), order(), 1_000, "x"))
        with pytest.raises(CardDeclined):
            await pg.register_billing_key(BillingKeyRequest("bk_L2", card(password="00")))
    text = caplog.text
    assert "portone_v2" in text
    for secret in (KB, KB[-8:], "4000000000009995", "770707", "passwordTwoDigits", SECRET, "잔액"):
        assert secret not in text


# --- the mapping tables, against a scripted server -------------------------------------


def test_every_http_status_has_one_row() -> None:
    assert http_outcome(200) is Http.ok
    assert http_outcome(409) is Http.error
    assert http_outcome(502) is Http.error
    assert http_outcome(500) is Http.unknown
    assert http_outcome(503) is Http.unknown
    assert http_outcome(429) is Http.throttled
    assert len({(r.low, r.high) for r in HTTP_ROWS}) == len(HTTP_ROWS)


def test_every_type_row_names_a_type_of_the_v2_document() -> None:
    doc = json.loads(
        (Path(__file__).resolve().parents[1] / "data/portone/v2.openapi.json").read_text()
    )
    documented = {
        key for s in doc["components"]["schemas"].values()
        for key in (s.get("discriminator", {}).get("mapping", {}) if isinstance(s, dict) else {})
    }  # fmt: skip
    # two types are the guides', not the document's: the REST V2 page's idempotency
    # error, and the wording of an order paid or waiting
    extra = {"IDEMPOTENCY_OUTSTANDING_REQUEST", "ALREADY_PAID_OR_WAITING"}
    assert {r.type for r in TYPE_ROWS} - documented <= extra
    assert {r.type for r in TYPE_ROWS if r.meaning is Meaning.cancel} <= documented


def _typed(status: int, error_type: str, **extra: Any) -> Reply:
    return Reply(status, {"type": error_type, "message": "m", **extra})


@asynccontextmanager
async def scripted_v2(
    script: dict[str, Reply], **overrides: Any
) -> AsyncIterator[PortOneV2Gateway]:
    """The V2 connector in front of a scripted server."""
    async with scripted_pg(script) as fake, connector_v2("", base_url=fake.url, **overrides) as pg:
        yield pg


CHARGE = "POST /payments/{rest}/billing-key"
KEYS = "GET /billing-keys"
LISTED = Reply(200, {"items": [{"status": "ISSUED", "billingKey": "billing-key-1",
                                "customer": {"id": "bk_S"}}], "page": {}})  # fmt: skip


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (_typed(409, "ALREADY_PAID"), DuplicateOrder),
        (_typed(409, "IDEMPOTENCY_OUTSTANDING_REQUEST"), DuplicateOrder),
        (_typed(401, "UNAUTHORIZED"), AuthenticationFailed),
        (_typed(400, "INVALID_REQUEST"), GatewayRejected),
        (_typed(404, "CHANNEL_NOT_FOUND"), GatewayRejected),
        (Reply(429, {}), GatewayUnavailable),
        (Reply(500, b"oops"), OutcomeUnknown),
        (Reply(503, {}), OutcomeUnknown),
        (Reply(502, b"<html>bad gateway</html>"), OutcomeUnknown),  # a proxy, not the PG
        (Reply(200, b"not json"), OutcomeUnknown),
        (Reply(drop=True), OutcomeUnknown),
        (Reply(delay_s=1.5), OutcomeUnknown),
    ],
)
async def test_charge_answers_map_onto_the_contract(reply: Reply, outcome: type[Exception]) -> None:
    async with scripted_v2({KEYS: LISTED, CHARGE: reply}, timeout_s=1.0) as pg:
        with pytest.raises(outcome):
            await pg.charge_billing_key(ChargeRequest("bk_S", order(), 1_000, "x"))


async def test_a_pg_decline_is_a_failed_charge_classified_by_pg_code() -> None:
    decline = _typed(502, "PG_PROVIDER", pgCode="3011", pgMessage="잔액이 부족합니다")
    async with scripted_v2({KEYS: LISTED, CHARGE: decline}) as pg:
        result = await pg.charge_billing_key(ChargeRequest("bk_S", order(), 1_000, "x"))
    assert result.status is ChargeStatus.failed
    assert result.decline is not None
    assert (result.decline.reason, result.decline.pg_code) == (
        DeclineReason.insufficient_funds,
        "3011",
    )
    assert not result.refused  # V2 records a declined payment FAILED


async def test_reads_that_fail_are_retry_safe_and_not_found_is_none() -> None:
    async with scripted_v2({"GET /payments/{rest}": Reply(503, {})}) as pg:
        with pytest.raises(GatewayUnavailable) as info:
            await pg.find(order())
        assert info.value.retry_safe
    async with scripted_v2({"GET /payments/{rest}": _typed(404, "PAYMENT_NOT_FOUND")}) as pg:
        assert await pg.find(order()) is None
    async with scripted_v2({"GET /payments/{rest}": Reply(404, b"Not Found")}) as pg:
        with pytest.raises(GatewayRejected):  # a wrong base_url is not "never saw it"
            await pg.find(order())


@pytest.mark.parametrize(
    ("reply", "refusal"),
    [
        (_typed(409, "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN"), CancelRefusal.checksum_mismatch),
        (_typed(409, "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT"), CancelRefusal.exceeds_refundable),
        (_typed(409, "PAYMENT_ALREADY_CANCELLED"), CancelRefusal.already_cancelled),
        (_typed(409, "PAYMENT_NOT_PAID"), CancelRefusal.not_paid),
        (_typed(404, "PAYMENT_NOT_FOUND"), CancelRefusal.not_found),
        (_typed(502, "PG_PROVIDER", pgCode="X1", pgMessage="m"), CancelRefusal.refused),
        (Reply(200, {"cancellation": {"status": "FAILED"}}), CancelRefusal.refused),
    ],
)
async def test_cancel_refusals(reply: Reply, refusal: CancelRefusal) -> None:
    async with scripted_v2({"POST /payments/{rest}/cancel": reply}) as pg:
        with pytest.raises(CancelRefused) as info:
            await pg.cancel(CancelRequest(order(), "x", 1_000))
    assert info.value.reason is refusal


async def test_a_cancel_the_pg_will_do_later_is_unknown() -> None:
    requested = Reply(200, {"cancellation": {"status": "REQUESTED", "totalAmount": 1_000}})
    async with scripted_v2({"POST /payments/{rest}/cancel": requested}) as pg:
        with pytest.raises(OutcomeUnknown):
            await pg.cancel(CancelRequest(order(), "x", 1_000))


async def test_a_registration_every_channel_refused_is_a_decline() -> None:
    failures = [{"channel": {}, "pgCode": "LOST", "pgMessage": "분실 카드"}]
    reply = _typed(502, "CHANNEL_SPECIFIC", failures=failures, succeededChannels=[])
    async with scripted_v2({"POST /billing-keys": reply}) as pg:
        with pytest.raises(CardDeclined) as info:
            await pg.register_billing_key(BillingKeyRequest("bk_C", card()))
    assert info.value.decline.reason is DeclineReason.lost_or_stolen


async def test_connection_refused_is_retry_safe() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with connector_v2("", base_url=f"http://127.0.0.1:{port}") as pg:
        with pytest.raises(GatewayUnavailable) as info:
            await pg.charge_billing_key(ChargeRequest("bk_S", order(), 1_000, "x"))
    assert info.value.retry_safe


async def test_a_request_still_running_under_its_idempotency_key_is_unknown() -> None:
    running = _typed(409, "IDEMPOTENCY_OUTSTANDING_REQUEST")
    async with scripted_v2({"POST /payments/{rest}/cancel": running}) as pg:
        with pytest.raises(OutcomeUnknown) as cancel:
            await pg.cancel(CancelRequest(order(), "x", 1_000))
    assert type(cancel.value) is OutcomeUnknown  # a cancel is not an order id reused
    async with scripted_v2({"POST /billing-keys": running}) as pg:
        with pytest.raises(OutcomeUnknown):
            await pg.register_billing_key(BillingKeyRequest("bk_R", card()))
