"""The connector and the sandbox PG against PortOne's published v1 document.

The real connector talks to the real sandbox app over HTTP; a middleware in front of
the sandbox records every exchange, and :mod:`tests.gateways.portone_spec` checks each
request (path, method, every field: known, type, length, enum, required — and the
played PG's required fields) and each answer (the operation's 200 schema, or the
envelope). Successes, declines and refusals alike; then the per-PG table against the
document, and the checker against wrong input so it cannot pass by accepting anything.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ivr.domain.states import CardType
from ivr.gateways.contract import (
    BillingKeyRequest,
    Buyer,
    CancelRequest,
    ChargeRequest,
    KeyedChargeRequest,
)
from ivr.gateways.declines import DeclineReason
from ivr.gateways.errors import CancelRefused, CardDeclined, GatewayRejected
from ivr.gateways.portone import PortOneGateway
from ivr.gateways.portone.pgs import RULES
from ivr.gateways.sandbox import SandboxConfig, create_app
from ivr.settings import SANDBOX_CHANNEL_KEY
from tests.gateways.portone_spec import Spec
from tests.gateways.support import KEY, SECRET, card, connector, order

pytestmark = pytest.mark.anyio

SPEC = Spec.load()
BUYER = Buyer(name="홍길동", tel="01012345678")


@dataclass
class Exchange:
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None
    status: int
    answer: Any


@dataclass
class Recorded:
    url: str
    exchanges: list[Exchange]
    http: aiohttp.ClientSession

    def problems(self, pg: str = "") -> list[str]:
        out = []
        for x in self.exchanges:
            where = f"{x.method} {x.path} -> {x.status}"
            out += [f"{where}: {p}" for p in SPEC.request_problems(
                x.method, x.path, x.query, x.body, pg=pg)]  # fmt: skip
            out += [f"{where}: {p}" for p in SPEC.response_problems(
                x.method, x.path, x.status, x.answer)]  # fmt: skip
        return out

    def operations(self) -> set[tuple[str, str, int]]:
        out = set()
        for x in self.exchanges:
            found = SPEC.operation(x.method, x.path)
            assert found is not None, x.path
            out.add((x.method, found[0].template, x.status))
        return out


def _body(raw: bytes, content_type: str) -> dict[str, Any] | None:
    if not raw:
        return None
    if content_type == "application/json":
        data = json.loads(raw)
        assert isinstance(data, dict)
        return data
    return dict(parse_qsl(raw.decode()))


@asynccontextmanager
async def recorded_sandbox(ledger: Path, pg: str = "") -> AsyncIterator[Recorded]:
    exchanges: list[Exchange] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()  # cached: the handler reads it again
        response: web.StreamResponse = await handler(request)
        if request.path.startswith("/sandbox/"):
            return response
        body = response.body if isinstance(response, web.Response) else None
        answer = json.loads(body) if isinstance(body, bytes) and body else None
        exchanges.append(Exchange(request.method, request.path, dict(request.query),
                                  _body(raw, request.content_type), response.status,
                                  answer))  # fmt: skip
        return response

    config = SandboxConfig(imp_key=KEY, imp_secret=SECRET, ledger_path=ledger, latency_ms=0,
                           pg=pg)  # fmt: skip
    app = create_app(config)
    app.middlewares.insert(0, record)  # outermost: sees what the gate refuses too
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield Recorded(str(server.make_url("")).rstrip("/"), exchanges, http)
    finally:
        await server.close()


async def _every_operation(pg: PortOneGateway) -> None:
    """Every operation the connector has, answered yes and answered no."""
    uid = "cus_conf_1"
    key = await pg.register_billing_key(BillingKeyRequest(uid, card(), holder=BUYER))
    assert key.customer_uid == uid
    assert await pg.get_billing_key(uid) is not None
    lump = await pg.charge_billing_key(ChargeRequest(uid, order(), 10_000, "임플란트",
                                                     buyer=BUYER))  # fmt: skip
    assert lump.succeeded
    split = order()
    long_name = "임플란트 " * 10  # longer than PortOne's 40: shortened, not refused
    paid = await pg.charge_billing_key(
        ChargeRequest(uid, split, 60_000, long_name, installment_months=3, buyer=BUYER)
    )
    assert paid.succeeded
    keyed = await pg.keyed_charge(
        KeyedChargeRequest(
            card("5310000000000004"),
            order(),
            5_000,
            "진료비",
            buyer=BUYER,
            save_as_customer_uid="cus_conf_2",
        )
    )
    assert keyed.succeeded
    part = await pg.cancel(CancelRequest(split, "부분 환불", checksum=60_000, amount=10_000))
    assert part.refundable == 50_000
    rest = await pg.cancel(CancelRequest(split, "환불", checksum=50_000))
    assert rest.refundable == 0
    found = await pg.find(split)
    assert found is not None
    assert await pg.delete_billing_key("cus_conf_2", reason="card deleted")
    # ... and the answers that say no
    with pytest.raises(CardDeclined):
        await pg.register_billing_key(BillingKeyRequest("cus_conf_3", card("4000000000000002"),
                                                        holder=BUYER))  # fmt: skip
    await pg.register_billing_key(BillingKeyRequest("cus_conf_4", card("4000000000009995"),
                                                    holder=BUYER))  # fmt: skip
    soft = await pg.charge_billing_key(ChargeRequest("cus_conf_4", order(), 10_000, "x",
                                                     buyer=BUYER))  # fmt: skip
    assert soft.decline is not None
    assert soft.decline.reason is DeclineReason.insufficient_funds
    unknown = await pg.charge_billing_key(ChargeRequest("cus_nobody", order(), 10_000, "x",
                                                        buyer=BUYER))  # fmt: skip
    assert unknown.refused
    lost = await pg.keyed_charge(KeyedChargeRequest(card("4000000000009987"), order(), 5_000,
                                                    "x", buyer=BUYER))  # fmt: skip
    assert lost.decline is not None
    with pytest.raises(CancelRefused):
        await pg.cancel(CancelRequest(split, "환불", checksum=1_000, amount=1_000))
    assert await pg.find(order()) is None
    assert not await pg.delete_billing_key("cus_nobody", reason="x")
    assert await pg.get_billing_key("cus_nobody") is None


OPERATIONS = {
    ("POST", "/users/getToken", 200),
    ("POST", "/subscribe/customers/{customer_uid}", 200),
    ("GET", "/subscribe/customers/{customer_uid}", 200),
    ("GET", "/subscribe/customers/{customer_uid}", 404),
    ("DELETE", "/subscribe/customers/{customer_uid}", 200),
    ("DELETE", "/subscribe/customers/{customer_uid}", 404),
    ("POST", "/subscribe/payments/again", 200),
    ("POST", "/subscribe/payments/onetime", 200),
    ("POST", "/payments/cancel", 200),
    ("GET", "/payments/findAll/{merchant_uid}/{payment_status}", 200),
    ("GET", "/payments/findAll/{merchant_uid}/{payment_status}", 404),
}


async def test_every_request_and_answer_conforms(tmp_path: Path) -> None:
    async with recorded_sandbox(tmp_path / "ledger.db") as sbx, connector(sbx.url) as pg:
        await _every_operation(pg)
    assert sbx.operations() >= OPERATIONS
    assert len(sbx.exchanges) >= 19
    assert sbx.problems() == []


# Each PG the sandbox can play, and what the connector must send it (product_type and
# buyer_email from settings, the buyer from the customer).
PLAYED = ["ksnet", "welcome", "smartro_v2", "inicis", "nice_v2", "html5_inicis"]


@pytest.mark.parametrize("pg_code", PLAYED)
async def test_each_pg_gets_its_required_fields(tmp_path: Path, pg_code: str) -> None:
    options = {"pg": pg_code, "product_type": "real", "buyer_email": "pay@example.com"}
    async with (
        recorded_sandbox(tmp_path / "ledger.db", pg=pg_code) as sbx,
        connector(sbx.url, **options) as pg,
    ):
        await _every_operation(pg)
    assert sbx.problems(pg=pg_code) == []
    sent = [x.body for x in sbx.exchanges if x.path == "/subscribe/payments/again"]
    for name in RULES[pg_code].again - {"name"}:
        assert all(body and body.get(name) for body in sent), name


async def test_inicis_null_card_type_reads_as_unknown(tmp_path: Path) -> None:
    async with (
        recorded_sandbox(tmp_path / "ledger.db", pg="inicis") as sbx,
        connector(sbx.url, pg="inicis") as pg,
    ):
        key = await pg.register_billing_key(BillingKeyRequest("cus_i", card()))
        paid = await pg.charge_billing_key(ChargeRequest("cus_i", order(), 1_000, "x"))
    assert key.card_type is None
    assert paid.card_type is None
    answers = [x.answer["response"] for x in sbx.exchanges if x.status == 200 and x.answer]
    assert any("card_type" in a and a["card_type"] is None for a in answers)
    assert sbx.problems(pg="inicis") == []


async def test_a_plain_sandbox_reports_the_card_type(tmp_path: Path) -> None:
    async with recorded_sandbox(tmp_path / "ledger.db") as sbx, connector(sbx.url) as pg:
        key = await pg.register_billing_key(BillingKeyRequest("cus_c", card("5310000000000004")))
    assert key.card_type is CardType.check


# ------------------------------------------------------------- what is refused


async def _raw(sbx: Recorded, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with sbx.http.post(f"{sbx.url}/users/getToken",
                             json={"imp_key": KEY, "imp_secret": SECRET}) as r:  # fmt: skip
        token = (await r.json())["response"]["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    async with sbx.http.post(f"{sbx.url}{path}", json=body, headers=headers) as r:
        answer: dict[str, Any] = await r.json()
        return r.status, answer


CARD_FIELDS = {"card_number": "4111-1111-1111-1111", "expiry": "2031-12", "birth": "880101",
               "pwd_2digit": "12"}  # fmt: skip


@pytest.mark.parametrize(("pg_code", "path", "body", "named"), [
    ("", "/subscribe/customers/cus_x", CARD_FIELDS, "channel_key"),
    ("", "/subscribe/customers/cus_x", {**CARD_FIELDS, "channel_key": "other"}, "channel_key"),
    ("welcome", "/subscribe/customers/cus_x",
     {**CARD_FIELDS, "channel_key": SANDBOX_CHANNEL_KEY}, "customer_name"),
    ("smartro_v2", "/subscribe/payments/again",
     {"customer_uid": "cus_x", "merchant_uid": "ord_1", "amount": 1000, "name": "x",
      "buyer_name": "a", "buyer_tel": "010", "buyer_email": "a@b.c"}, "merchant_uid"),
    ("ksnet", "/subscribe/payments/again",
     {"customer_uid": "cus_x", "merchant_uid": "ord1", "amount": 1000, "name": "x",
      "product_type": "real"}, "buyer_name"),
    ("welcome", "/subscribe/payments/onetime",
     {**CARD_FIELDS, "merchant_uid": "ord1", "amount": 1000}, "buyer_name"),
    ("", "/subscribe/payments/again",
     {"customer_uid": "cus_x", "merchant_uid": "ord1", "amount": 1000, "name": "x" * 41},
     "name"),
    ("ksnet", "/subscribe/payments/onetime",
     {**CARD_FIELDS, "merchant_uid": "ord1", "amount": 60000, "card_quota": 3,
      "buyer_name": "a", "product_type": "real", "interest_free_by_merchant": True},
     "interest_free_by_merchant"),
])  # fmt: skip
async def test_the_sandbox_refuses_what_the_document_forbids(
    tmp_path: Path, pg_code: str, path: str, body: dict[str, Any], named: str
) -> None:
    async with recorded_sandbox(tmp_path / "ledger.db", pg=pg_code) as sbx:
        status, answer = await _raw(sbx, path, body)
    assert status == 400
    assert named in answer["message"]
    assert SPEC.request_problems("POST", path, {}, body, pg=pg_code) != [] or named in (
        "channel_key",  # a wrong channel is well-formed: only the PG can tell
        "interest_free_by_merchant",  # supported-PG lists are not "required" rules
    )


@pytest.mark.parametrize(("options", "request_of", "code"), [
    ({"pg": "smartro_v2", "buyer_email": "a@b.c"},
     lambda: ChargeRequest("cus_1", "ord_01OLDSTYLE", 1_000, "x", buyer=BUYER),
     "arspay:merchant_uid_format"),
    ({"pg": "ksnet", "product_type": "real"},
     lambda: ChargeRequest("cus_1", order(), 1_000, "x", buyer=Buyer(tel="01012345678")),
     "arspay:missing_buyer_name"),
    ({"pg": "smartro_v2", "buyer_email": "a@b.c"},
     lambda: ChargeRequest("cus_1", order(), 1_000, "x", buyer=Buyer(name="홍길동")),
     "arspay:missing_buyer_tel"),
    ({"pg": "welcome"},
     lambda: ChargeRequest("cus_1", order(), 60_000, "x", installment_months=3,
                           interest_free=True, buyer=BUYER),
     "arspay:interest_free_by_merchant_unsupported"),
])  # fmt: skip
async def test_the_connector_does_not_send_what_the_pg_would_refuse(
    tmp_path: Path, options: dict[str, str], request_of: Any, code: str
) -> None:
    async with (
        recorded_sandbox(tmp_path / "ledger.db", pg=options["pg"]) as sbx,
        connector(sbx.url, **options) as pg,
    ):
        result = await pg.charge_billing_key(request_of())
    assert result.refused
    assert result.decline is not None
    assert result.decline.pg_code == code
    assert [x for x in sbx.exchanges if x.path.startswith("/subscribe/payments")] == []


async def test_a_registration_the_pg_would_refuse_is_not_sent(tmp_path: Path) -> None:
    async with (
        recorded_sandbox(tmp_path / "ledger.db", pg="welcome") as sbx,
        connector(sbx.url, pg="welcome") as pg,
    ):
        with pytest.raises(GatewayRejected) as caught:
            await pg.register_billing_key(BillingKeyRequest("cus_w", card()))
    assert caught.value.pg_code == "arspay:missing_customer_name"
    assert sbx.exchanges == []


async def test_billing_key_delete_sends_extra_requester_only_to_naver_pay(
    tmp_path: Path,
) -> None:
    async with recorded_sandbox(tmp_path / "ledger.db") as sbx:
        for pg_code in ("", "naverpay"):
            async with connector(sbx.url, pg=pg_code) as pg:
                await pg.delete_billing_key("cus_nobody", reason="card deleted")
    queries = [x.query for x in sbx.exchanges if x.method == "DELETE"]
    assert queries == [{"reason": "card deleted"},
                       {"reason": "card deleted", "extra[requester]": "admin"}]  # fmt: skip
    assert sbx.problems() == []


# ------------------------------------------------------------- the table vs the document

# The fields the per-PG table covers: what the engine can fill in.
ENGINE_FIELDS = {"buyer_name", "buyer_tel", "buyer_email", "product_type", "name", "birth",
                 "pwd_2digit", "customer_name"}  # fmt: skip
TABLE_OPS = {
    "register": ("post", "/subscribe/customers/{customer_uid}"),
    "again": ("post", "/subscribe/payments/again"),
    "onetime": ("post", "/subscribe/payments/onetime"),
}


def _per_pg_required(method: str, template: str, pg_code: str) -> set[str]:
    params = SPEC.doc["paths"][template][method]["parameters"]
    return {p["name"] for p in params
            if p["name"] in ENGINE_FIELDS
            and (p.get("x-portone-per-pg") or {}).get(pg_code, {}).get("required")}  # fmt: skip


def _supported(method: str, template: str, name: str) -> set[str]:
    params = SPEC.doc["paths"][template][method]["parameters"]
    (param,) = [p for p in params if p["name"] == name]
    return set(param["x-portone-supported-pgs"])


@pytest.mark.parametrize("pg_code", sorted(RULES))
def test_the_per_pg_table_is_the_documents(pg_code: str) -> None:
    rules = RULES[pg_code]
    for op, (method, template) in TABLE_OPS.items():
        assert getattr(rules, op) == _per_pg_required(method, template, pg_code), op
    again = _supported("post", "/subscribe/payments/again", "interest_free_by_merchant")
    onetime = _supported("post", "/subscribe/payments/onetime", "interest_free_by_merchant")
    assert rules.merchant_interest_again == (pg_code in again)
    assert rules.merchant_interest_onetime == (pg_code in onetime)


def test_the_pg_rules_the_document_states_in_words() -> None:
    again = {p["name"]: p for p in SPEC.doc["paths"]["/subscribe/payments/again"]["post"]
             ["parameters"]}  # fmt: skip
    smartro = again["merchant_uid"]["x-portone-per-pg"]["smartro_v2"]["description"]
    assert "특수문자" in smartro
    assert {c for c, r in RULES.items() if r.plain_order_ids} == {"smartro_v2"}
    payment = SPEC.definitions["PaymentAnnotation"]["properties"]["card_type"]["description"]
    assert "null" in payment
    assert "이니시스" in payment
    assert {c for c, r in RULES.items() if r.card_type_may_be_null} == {"inicis", "html5_inicis"}
    customers = SPEC.doc["paths"]["/subscribe/customers/{customer_uid}"]["post"]["parameters"]
    (channel,) = [p for p in customers if p["name"] == "channel_key"]
    assert channel["required"] is True
    delete = SPEC.doc["paths"]["/subscribe/customers/{customer_uid}"]["delete"]["parameters"]
    (requester,) = [p for p in delete if p["name"] == "extra[requester]"]
    assert requester["x-portone-supported-pgs"] == ["naverpay"]


# ------------------------------------------------------------- the checker itself


@pytest.mark.parametrize(("method", "path", "query", "body", "pg_code", "problem"), [
    ("DELETE", "/subscribe/customers/cus_1", {"requester": "arspay"}, None, "",
     "query requester: not a parameter"),
    ("POST", "/subscribe/payments/again", {},
     {"customer_uid": "c", "merchant_uid": "o", "amount": "1000", "name": "x"}, "",
     "field amount: expected number"),
    ("POST", "/subscribe/payments/again", {},
     {"customer_uid": "c", "merchant_uid": "o", "amount": 1000, "name": "x", "nmae": "y"}, "",
     "field nmae: not a parameter"),
    ("POST", "/subscribe/payments/again", {},
     {"customer_uid": "c", "merchant_uid": "o" * 41, "amount": 1000, "name": "x"}, "",
     "field merchant_uid: longer than 40"),
    ("POST", "/subscribe/payments/again", {},
     {"customer_uid": "c", "merchant_uid": "o", "amount": 1000}, "",
     "field name: required"),
    ("POST", "/subscribe/payments/again", {},
     {"customer_uid": "c", "merchant_uid": "o", "amount": 1000, "name": "x",
      "product_type": "both"}, "", "field product_type: 'both' is not one of"),
    ("POST", "/subscribe/payments/again", {},
     {"customer_uid": "c", "merchant_uid": "o", "amount": 1000, "name": "x"}, "ksnet",
     "field buyer_name: required by ksnet"),
    ("POST", "/subscribe/customers/cus_1", {}, CARD_FIELDS, "", "field channel_key: required"),
    ("POST", "/subscribe/payments/again", {},
     {"customer_uid": "c", "merchant_uid": "ord_1", "amount": 1000, "name": "x",
      "buyer_name": "a", "buyer_tel": "010", "buyer_email": "a@b.c"}, "smartro_v2",
     "field merchant_uid: smartro_v2 takes letters and digits only"),
    ("POST", "/subscribe/payments/again", {},
     {"customer_uid": "c", "merchant_uid": "o", "amount": 1000, "name": "x",
      "card_quota": 2.5}, "", "field card_quota: expected integer"),
    ("GET", "/payments/findAll/o", {"limit": "5000"}, None, "", "query limit: above 1000"),
    ("GET", "/payments/findAll/o", {"sorting": "amount"}, None, "", "query sorting"),
    ("POST", "/subscribe/payments/later", {}, {}, "", "no such operation"),
])  # fmt: skip
def test_the_checker_refuses_bad_requests(
    method: str,
    path: str,
    query: dict[str, str],
    body: dict[str, Any] | None,
    pg_code: str,
    problem: str,
) -> None:
    problems = SPEC.request_problems(method, path, query, body, pg=pg_code)
    assert any(problem in p for p in problems), problems


PAYMENT = {"imp_uid": "imp_1", "merchant_uid": "o", "amount": 1000, "cancel_amount": 0,
           "currency": "KRW", "status": "paid", "sandbox": True, "card_type": 0}  # fmt: skip


@pytest.mark.parametrize(("path", "answer", "problem"), [
    ("/subscribe/payments/again", {"code": 0, "message": None, "response": PAYMENT}, None),
    ("/subscribe/payments/again",
     {"code": 0, "response": {**PAYMENT, "amount": "1000"}}, "response.amount: expected"),
    ("/subscribe/payments/again",
     {"code": 0, "response": {k: v for k, v in PAYMENT.items() if k != "imp_uid"}},
     "response.imp_uid: required"),
    ("/subscribe/payments/again",
     {"code": 0, "response": {**PAYMENT, "card_type": "credit"}}, "response.card_type"),
    ("/subscribe/payments/again",
     {"code": 0, "response": {**PAYMENT, "card_kind": 0}}, "response.card_kind: not in"),
    ("/subscribe/payments/again", {"code": "0", "response": None}, "answer.code: expected"),
    ("/subscribe/customers/cus_1", {"code": 0, "response": {"customer_uid": "cus_1"}},
     "required"),
    ("/payments/cancel",
     {"code": 0, "response": {**PAYMENT, "cancel_history": [{"amount": 1}]}},
     "cancel_history[0].pg_tid: required"),
])  # fmt: skip
def test_the_checker_refuses_bad_answers(path: str, answer: Any, problem: str | None) -> None:
    problems = SPEC.response_problems("POST", path, 200, answer)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems
