"""Transport and HTTP failures seen for real over loopback, and what the connector makes
of them: nothing sent -> GatewayUnavailable; maybe processed -> OutcomeUnknown."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest

from ivr.gateways.contract import BillingKeyRequest, ChargeRequest, PgState
from ivr.gateways.errors import (
    GatewayRejected,
    GatewayUnavailable,
    OutcomeUnknown,
)
from ivr.gateways.portone import PortOneConfig, PortOneGateway
from tests.gateways.fakes import Reply, scripted_pg
from tests.gateways.support import KEY, SECRET, card, connector, order, running_sandbox

pytestmark = pytest.mark.anyio

AGAIN = "POST /subscribe/payments/again"
FIND = "GET /payments/findAll/{rest}"


def charge() -> ChargeRequest:
    return ChargeRequest("cus_t", order(), 1_000, "x")


def paged(*payments: dict[str, object]) -> dict[str, object]:
    """A ``PagedPaymentAnnotation`` (``/payments/findAll``), newest first."""
    return {"total": len(payments), "previous": 0, "next": 0, "list": list(payments)}


def payment(oid: str, status: str, imp_uid: str, **more: object) -> dict[str, object]:
    return {"imp_uid": imp_uid, "merchant_uid": oid, "amount": 1_000, "cancel_amount": 0,
            "status": status, **more}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_connection_refused_is_unavailable_and_retry_safe() -> None:
    async with connector(f"http://127.0.0.1:{free_port()}") as pg:
        with pytest.raises(GatewayUnavailable) as err:
            await pg.charge_billing_key(charge())
    assert err.value.retry_safe


async def test_refused_after_the_token_is_still_unavailable(tmp_path: Path) -> None:
    """The charge itself (not getToken) meets a refused connection: nothing was sent."""
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    async with running_sandbox(tmp_path / "l.db") as sbx:
        config = PortOneConfig(base_url=sbx.url, imp_key=KEY, imp_secret=SECRET, channel_key="c")
        pg = PortOneGateway(config, session=session)
        await pg.tokens.get()
    try:  # the sandbox is gone now; the token is still cached
        with pytest.raises(GatewayUnavailable) as err:
            await pg.charge_billing_key(charge())
        assert err.value.retry_safe
        assert pg.tokens.fetches == 1
    finally:
        await session.close()


async def test_a_bad_base_url_is_unavailable_but_not_worth_retrying() -> None:
    async with connector("http:///nowhere") as pg:
        with pytest.raises(GatewayUnavailable) as err:
            await pg.find(order())
    assert not err.value.retry_safe


async def test_a_timeout_after_recording_is_outcome_unknown(tmp_path: Path) -> None:
    async with (
        running_sandbox(tmp_path / "l.db", hang_ms=1_500) as sbx,
        connector(sbx.url, timeout_s=0.3) as pg,
    ):
        await pg.register_billing_key(BillingKeyRequest("cus_3220", card("4000000000003220")))
        req = ChargeRequest("cus_3220", order(), 3_000, "x")
        with pytest.raises(OutcomeUnknown):
            await pg.charge_billing_key(req)
        found = await pg.find(req.order_id)
        assert found is not None
        assert found.state is PgState.paid


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(drop=True), OutcomeUnknown),
        (Reply(500, {"code": -1, "message": "boom"}), OutcomeUnknown),
        (Reply(502, b"<html>bad gateway</html>"), OutcomeUnknown),
        (Reply(200, b"not json"), OutcomeUnknown),
        (Reply(200, {"code": 0, "message": None, "response": None}), OutcomeUnknown),
        (Reply(200, {"code": 0, "response": {"merchant_uid": "x"}}), OutcomeUnknown),
        (Reply(429, {"code": -1}), GatewayUnavailable),
        (Reply(400, {"code": -1, "message": "[INVALID_REQUEST] bad"}), GatewayRejected),
        (Reply(404, {"code": 1}), GatewayRejected),
    ],
)
async def test_charge_answers(reply: Reply, error: type[Exception]) -> None:
    async with scripted_pg({AGAIN: reply}) as fake, connector(fake.url) as pg:
        with pytest.raises(error) as err:
            await pg.charge_billing_key(charge())
    if isinstance(err.value, GatewayRejected) and reply.status == 400:
        assert err.value.pg_code == "INVALID_REQUEST"
        assert err.value.pg_status == 400


async def test_a_ready_payment_is_not_finished() -> None:
    req = charge()
    body = {"code": 0, "response": {"merchant_uid": req.order_id, "amount": 1_000,
                                    "status": "ready"}}  # fmt: skip
    async with scripted_pg({AGAIN: Reply(200, body)}) as fake, connector(fake.url) as pg:
        with pytest.raises(OutcomeUnknown):
            await pg.charge_billing_key(req)


async def test_an_answer_for_another_amount_is_rejected() -> None:
    req = charge()
    body = {"code": 0, "response": {"merchant_uid": req.order_id, "amount": 2_000,
                                    "status": "paid"}}  # fmt: skip
    async with scripted_pg({AGAIN: Reply(200, body)}) as fake, connector(fake.url) as pg:
        with pytest.raises(GatewayRejected):
            await pg.charge_billing_key(req)


@pytest.mark.parametrize(
    "reply",
    [Reply(500), Reply(503, b"down"), Reply(drop=True), Reply(200, b"{]"), Reply(429)],
)
async def test_a_failed_lookup_is_always_retry_safe(reply: Reply) -> None:
    async with scripted_pg({FIND: reply}) as fake, connector(fake.url) as pg:
        with pytest.raises(GatewayUnavailable) as err:
            await pg.find(order())
    assert err.value.retry_safe


@pytest.mark.parametrize(
    "reply",
    [
        Reply(404, {"code": 1, "message": "존재하지 않는 결제정보입니다."}),
        Reply(200, {"code": 1, "message": "존재하지 않는 결제정보입니다."}),
        Reply(200, {"code": 0, "message": None, "response": None}),
    ],
)
async def test_not_found_lookups(reply: Reply) -> None:
    async with scripted_pg({FIND: reply}) as fake, connector(fake.url) as pg:
        assert await pg.find(order()) is None


async def test_a_failed_payment_shows_its_decline_and_portone_field_shapes() -> None:
    oid = order()
    payment = {
        "imp_uid": "imp_1", "merchant_uid": oid, "amount": 5000.0, "cancel_amount": 0,
        "status": "failed", "fail_reason": "[8326] 잔액부족", "failed_at": 1_700_000_000,
        "paid_at": 0, "card_number": "536181*********1234", "card_type": None,
    }  # fmt: skip
    reply = Reply(200, {"code": 0, "response": paged(payment)})
    async with scripted_pg({FIND: reply}) as fake, connector(fake.url) as pg:
        found = await pg.find(oid)
    assert found is not None
    assert found.state is PgState.failed
    assert found.amount == 5_000
    assert found.paid_at is None
    assert found.failed_at is not None
    assert found.card_last4 == "1234"
    assert found.decline is not None
    assert found.decline.pg_code == "8326"
    assert found.decline.prompt_id == "pay.failed.insufficient_funds"


async def test_a_lookup_prefers_money_that_moved_over_newer_failures() -> None:
    """PortOne keeps several payments under one merchant_uid; find reads them all."""
    oid = order()
    listed = paged(payment(oid, "failed", "imp_3", fail_reason="[X] 잔액부족"),
                   payment(oid, "paid", "imp_2", apply_num="12345678"),
                   payment(oid, "failed", "imp_1"))  # fmt: skip
    async with (
        scripted_pg({FIND: Reply(200, {"code": 0, "response": listed})}) as fake,
        connector(fake.url) as pg,
    ):
        found = await pg.find(oid)
    assert found is not None
    assert (found.state, found.pg_tx_id, found.approval_no) == (PgState.paid, "imp_2", "12345678")


async def test_a_lookup_reports_a_payment_in_progress_before_a_failure() -> None:
    oid = order()
    listed = paged(payment(oid, "ready", "imp_2"), payment(oid, "failed", "imp_1"))
    async with (
        scripted_pg({FIND: Reply(200, {"code": 0, "response": listed})}) as fake,
        connector(fake.url) as pg,
    ):
        found = await pg.find(oid)
    assert found is not None
    assert found.state is PgState.ready


@pytest.mark.parametrize("second", ["paid", "cancelled"])
async def test_two_paid_payments_of_one_order_are_refused_for_a_human(second: str) -> None:
    oid = order()
    listed = paged(payment(oid, second, "imp_2"), payment(oid, "paid", "imp_1"))
    async with (
        scripted_pg({FIND: Reply(200, {"code": 0, "response": listed})}) as fake,
        connector(fake.url) as pg,
    ):
        with pytest.raises(GatewayRejected, match="two paid"):
            await pg.find(oid)


async def test_a_lookup_answered_for_another_order_is_refused() -> None:
    listed = paged(payment(order(), "paid", "imp_1"))
    async with (
        scripted_pg({FIND: Reply(200, {"code": 0, "response": listed})}) as fake,
        connector(fake.url) as pg,
    ):
        with pytest.raises(GatewayRejected, match="another order"):
            await pg.find(order())


async def test_every_request_has_a_total_deadline() -> None:
    """A PG that keeps the connection alive but never finishes answering (each read
    within timeout_s) is cut at total_timeout_s: an unknown outcome, not a hang."""
    import time

    slow = Reply(200, {"code": 0, "response": None}, delay_s=3.0)
    async with (
        scripted_pg({AGAIN: slow}) as fake,
        connector(fake.url, timeout_s=10.0, total_timeout_s=0.5) as pg,
    ):
        await pg.tokens.get()
        started = time.monotonic()
        with pytest.raises(OutcomeUnknown):
            await pg.charge_billing_key(charge())
        assert time.monotonic() - started < 2.0
