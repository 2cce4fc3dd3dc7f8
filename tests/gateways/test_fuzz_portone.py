"""Fuzz: the PortOne REST v1 connector reading the PG's answers.

A :class:`PortOneGateway` whose ``_send`` answers from a script (no network) runs the
real entry points — ``charge_billing_key``, ``keyed_charge``, ``register_billing_key``,
``cancel``, ``find`` and the ``getToken`` behind them — on arbitrary bytes, arbitrary
JSON and mutations of valid answers (missing keys, wrong types, huge and negative
numbers, unknown statuses, non-UTF-8 bodies, odd HTTP statuses).

Properties: each call returns its contract value or raises a
:class:`~ivr.gateways.errors.GatewayError` (never a raw ``ValueError``/``KeyError``/
``OverflowError``/…), and a charge is a success only when the answer is HTTP 2xx,
``code == 0``, ``response.status`` exactly ``paid`` (or ``cancelled``: a replay of a
paid order, docs/portone.md), for this order and this amount.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ivr.gateways.contract import (
    BillingKey,
    BillingKeyRequest,
    CancelRequest,
    CancelResult,
    ChargeRequest,
    ChargeStatus,
    GatewayCharge,
    KeyedCard,
    KeyedChargeRequest,
    OrderStatus,
    PgState,
)
from ivr.gateways.errors import GatewayError
from ivr.gateways.portone import PortOneConfig, PortOneGateway

ORDER = "ord_fuzz_0001"
AMOUNT = 50_000
CUSTOMER = "cus_fuzz_0001"
CARD = KeyedCard(number="4111111111111111", expiry="2031-12", birth="880101", password_2digits="12")
OPS = ("again", "onetime", "register", "cancel", "find")
CHARGES = ("again", "onetime")
SUCCESS_STATUSES = ("paid", "cancelled")  # "cancelled": a replay of a paid order
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

FUZZ = settings(max_examples=200, deadline=None)

Answer = tuple[int, bytes]


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


TOKEN_BODY: dict[str, Any] = {
    "code": 0,
    "message": None,
    "response": {"access_token": "tok_fuzz", "now": 1_700_000_000, "expired_at": 1_700_001_800},
}
GOOD_TOKEN: Answer = (200, _json(TOKEN_BODY))
PAYMENT: dict[str, Any] = {
    "imp_uid": "imp_000000000001",
    "merchant_uid": ORDER,
    "status": "paid",
    "amount": AMOUNT,
    "cancel_amount": 0,
    "apply_num": "30012345",
    "card_name": "KB국민카드",
    "card_number": "411111******1111",
    "card_type": 0,
    "card_quota": 0,
    "paid_at": 1_700_000_100,
    "failed_at": 0,
    "cancelled_at": 0,
    "fail_reason": None,
    "cancel_history": [{"amount": 1000, "cancelled_at": 1_700_000_200}],
}
CUSTOMER_ANNOTATION: dict[str, Any] = {
    "customer_uid": CUSTOMER,
    "card_name": "KB국민카드",
    "card_code": "381",
    "card_number": "411111******1111",
    "card_type": 1,
    "pg_provider": "nice",
    "inserted": 1_700_000_000,
}


class ScriptedGateway(PortOneGateway):
    """The real connector; ``_send`` answers from the script instead of the network."""

    def __init__(self, answer: Answer, token: Answer) -> None:
        super().__init__(
            PortOneConfig(
                base_url="http://pg.invalid",
                imp_key="key",
                imp_secret="secret",
                channel_key="channel-key-1",
            )
        )
        self.answer = answer
        self.token_answer = token

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None, token: str | None
    ) -> tuple[int, bytes]:
        if token is not None and _CONTROL.search(token):
            # what aiohttp does with such an Authorization header
            raise ValueError("Forbidden control character detected in headers")
        if path == "/users/getToken":
            return self.token_answer
        return self.answer


async def _run(op: str, answer: Answer, token: Answer) -> object:
    async with ScriptedGateway(answer, token) as pg:
        if op == "again":
            return await pg.charge_billing_key(ChargeRequest(CUSTOMER, ORDER, AMOUNT, "fuzz"))
        if op == "onetime":
            return await pg.keyed_charge(KeyedChargeRequest(CARD, ORDER, AMOUNT, "fuzz"))
        if op == "register":
            return await pg.register_billing_key(BillingKeyRequest(CUSTOMER, CARD))
        if op == "cancel":
            return await pg.cancel(CancelRequest(ORDER, "fuzz", checksum=AMOUNT))
        return await pg.find(ORDER)


def outcome(op: str, answer: Answer, token: Answer = GOOD_TOKEN) -> object:
    """The call's contract value or its GatewayError; anything else fails the test."""
    try:
        result = asyncio.run(_run(op, answer, token))
    except GatewayError as exc:
        return exc
    expected: dict[str, tuple[type, ...]] = {
        "again": (GatewayCharge,),
        "onetime": (GatewayCharge,),
        "register": (BillingKey,),
        "cancel": (CancelResult,),
        "find": (OrderStatus, type(None)),
    }
    assert isinstance(result, expected[op]), result
    if isinstance(result, GatewayCharge):
        _assert_success_is_earned(result, answer)
    if isinstance(result, OrderStatus):
        assert isinstance(result.state, PgState)
    return result


def _assert_success_is_earned(result: GatewayCharge, answer: Answer) -> None:
    assert result.order_id == ORDER
    if result.status is ChargeStatus.failed:
        assert result.decline is not None
        return
    assert result.succeeded
    status, raw = answer
    assert 200 <= status <= 299
    body = json.loads(raw)
    assert type(body["code"]) is int
    assert body["code"] == 0
    payment = body["response"]
    assert type(payment["status"]) is str
    assert payment["status"] in SUCCESS_STATUSES
    assert payment["merchant_uid"] == ORDER
    assert payment["amount"] == AMOUNT
    assert result.amount == AMOUNT


# ------------------------------------------------------------------ strategies

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from([10**30, -(10**30), 2**63, -1, 0, 1e300, 253_402_300_800, 10**400])
)
json_values = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=10,
)
statuses = st.sampled_from(
    ["paid", "cancelled", "failed", "ready", "PAID", "Paid", "paid ", " paid", "paid\x00",
     "paid\u200b", "ｐａｉｄ", "", "unknown", "partial_cancelled"]
) | json_values  # fmt: skip
http_statuses = st.one_of(
    st.just(200),
    st.just(200),
    st.sampled_from([201, 299, 302, 400, 401, 403, 404, 429, 500, 503]),
    st.integers(0, 999),
)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], special: dict[str, Any]) -> dict[str, Any]:
    """``base`` with a few keys dropped, given any value, or a ``special`` value."""
    out = copy.deepcopy(base)
    for key in draw(st.lists(st.sampled_from(list(out)), max_size=3, unique=True)):
        how = draw(st.sampled_from(["drop", "any", "special", "special"]))
        if how == "drop":
            del out[key]
        elif how == "any" or key not in special:
            out[key] = draw(json_values)
        else:
            out[key] = draw(special[key])
    if draw(st.booleans()):
        out[draw(st.text(max_size=8))] = draw(json_values)
    return out


numbers = st.sampled_from(
    [AMOUNT, float(AMOUNT), AMOUNT + 0.5, -AMOUNT, 0, 10**30, 2**63, 10**400, 1e300, "50000",
     True, None, float("inf"), float("nan")]
)  # fmt: skip
times = st.sampled_from([0, -1, 1, 10**12, 253_402_300_800, 2**63, 10**30, 1e300, 1.5, "0"])
PAYMENT_SPECIAL = {
    "status": statuses,
    "merchant_uid": st.sampled_from([ORDER, ORDER + " ", ORDER.upper(), "", None, 1]),
    "amount": numbers,
    "cancel_amount": numbers,
    "card_quota": numbers,
    "card_type": st.sampled_from([0, 1, "0", "1", 2, -1, None, 0.0, True]),
    "card_number": st.sampled_from(["", "1", "****²²²²", "411111******111\x00", None]),
    "paid_at": times,
    "failed_at": times,
    "cancelled_at": times,
    "cancel_history": st.lists(st.fixed_dictionaries({"cancelled_at": times}), max_size=3)
    | json_values,
}
CUSTOMER_SPECIAL = {
    "inserted": times,
    "card_type": PAYMENT_SPECIAL["card_type"],
    "card_number": PAYMENT_SPECIAL["card_number"],
}
TOKEN_SPECIAL = {
    "access_token": st.sampled_from(["", "t", "a\nb", "a\r\nX-Evil: 1", "tok\x00", "토큰", None]),
    "now": times,
    "expired_at": times | st.sampled_from([10**400, -(10**400)]),
}


@st.composite
def envelopes(draw: st.DrawFn, response: st.SearchStrategy[Any]) -> dict[str, Any]:
    env: dict[str, Any] = {
        "code": draw(st.sampled_from([0, 0, 0, 1, -1, True, 0.0, "0", None, 10**30])),
        "message": draw(
            st.sampled_from(
                [None, "", "[INSUFFICIENT_BALANCE] 잔액이 부족합니다.", "존재하지 않는"]
            )
            | json_values
        ),
        "response": draw(response),
    }
    if draw(st.integers(0, 4)) == 0:
        del env[draw(st.sampled_from(list(env)))]
    return env


payments = envelopes(mutated(PAYMENT, PAYMENT_SPECIAL) | json_values)
customers = envelopes(mutated(CUSTOMER_ANNOTATION, CUSTOMER_SPECIAL) | json_values)
tokens = envelopes(mutated(TOKEN_BODY["response"], TOKEN_SPECIAL) | json_values)


def _bodies(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    encoded = values.map(_json)
    return st.one_of(
        encoded,
        encoded,
        encoded,
        encoded.map(lambda b: json.dumps(json.loads(b)).encode("utf-16")),
        st.tuples(encoded, st.integers(0, 400), st.binary(min_size=1, max_size=3)).map(
            lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
        ),  # stray bytes, often not UTF-8
        encoded.map(lambda b: b[: len(b) // 2]),
        st.binary(max_size=64),
    )


def _paid(**changes: Any) -> bytes:
    return _json({"code": 0, "message": None, "response": {**PAYMENT, **changes}})


def _listed(*payments: dict[str, Any]) -> bytes:
    """A ``/payments/findAll`` answer (``PagedPaymentAnnotation``) of these payments
    (by default the one paid payment)."""
    items = list(payments) or [PAYMENT]
    page = {"total": len(items), "previous": 0, "next": 0, "list": items}
    return _json({"code": 0, "message": None, "response": page})


def _answer_for(op: str) -> bytes:
    return _listed() if op == "find" else _paid()


def _token(**changes: Any) -> Answer:
    return 200, _json({**TOKEN_BODY, "response": {**TOKEN_BODY["response"], **changes}})


# ------------------------------------------------------------------ tests


def test_the_valid_answers_are_read() -> None:
    """The fuzzing base: the unmutated answers give the expected results."""
    for op in CHARGES:
        result = outcome(op, (200, _paid()))
        assert isinstance(result, GatewayCharge)
        assert result.succeeded
    for status in ("failed", "ready", "PAID"):
        assert not getattr(outcome("again", (200, _paid(status=status))), "succeeded", False)
    key = outcome("register", (200, _json({"code": 0, "response": CUSTOMER_ANNOTATION})))
    assert isinstance(key, BillingKey)
    assert key.registered_at is not None
    assert isinstance(outcome("cancel", (200, _paid(cancel_amount=1000))), CancelResult)
    assert isinstance(outcome("find", (200, _listed())), OrderStatus)
    assert outcome("find", (404, b"")) is None


@FUZZ
@given(op=st.sampled_from(OPS), status=http_statuses, raw=_bodies(payments))
@example(op="again", status=200, raw=_paid(paid_at=10**12))  # was ValueError (year 33658)
@example(op="find", status=200, raw=_listed({**PAYMENT, "cancelled_at": 2**63}))  # OverflowError
@example(op="cancel", status=200, raw=_paid(cancel_history=[{"cancelled_at": 10**30}]))
@example(op="again", status=200, raw=b"[" * 100_000)  # was RecursionError
@example(op="find", status=200, raw=b'{"code": 0, "response": ' * 50_000)
def test_payment_answers_end_in_a_result_or_a_gateway_error(
    op: str, status: int, raw: bytes
) -> None:
    outcome(op, (status, raw))


@FUZZ
@given(
    op=st.sampled_from(CHARGES),
    payment=mutated(PAYMENT, PAYMENT_SPECIAL),
    code=st.sampled_from([0, 0, 0, 1, -1, None, True, "0", 0.0]),
)
@example(op="again", payment={**PAYMENT, "status": "PAID"}, code=0)
@example(op="again", payment={**PAYMENT, "status": "paid "}, code=0)
@example(op="onetime", payment={**PAYMENT, "status": "ready"}, code=0)
@example(op="again", payment={**PAYMENT, "amount": AMOUNT + 0.5}, code=0)
@example(op="again", payment={**PAYMENT, "merchant_uid": ORDER.upper()}, code=0)
def test_a_malformed_charge_answer_is_never_a_success(
    op: str, payment: dict[str, Any], code: Any
) -> None:
    result = outcome(op, (200, _json({"code": code, "message": None, "response": payment})))
    if isinstance(result, GatewayCharge) and result.succeeded:
        assert payment.get("status") in SUCCESS_STATUSES  # (also checked in outcome())
    if payment.get("status") not in SUCCESS_STATUSES or not (type(code) is int and code == 0):
        assert not (isinstance(result, GatewayCharge) and result.succeeded)


@FUZZ
@given(
    op=st.sampled_from(["register", "cancel", "find"]),
    payment=mutated(PAYMENT, PAYMENT_SPECIAL),
    customer=mutated(CUSTOMER_ANNOTATION, CUSTOMER_SPECIAL),
    code=st.sampled_from([0, 0, 0, 1, -1, None, True]),
    message=st.sampled_from([None, "존재하지 않는 결제정보입니다", "[CHECKSUM] x", "이미 취소"]),
)
def test_mutated_answers_of_the_other_calls(
    op: str, payment: dict[str, Any], customer: dict[str, Any], code: Any, message: Any
) -> None:
    response: Any = customer if op == "register" else payment
    if op == "find":
        response = {"total": 1, "previous": 0, "next": 0, "list": [payment]}
    outcome(op, (200, _json({"code": code, "message": message, "response": response})))


@FUZZ
@given(
    listed=st.lists(mutated(PAYMENT, PAYMENT_SPECIAL), max_size=4),
    page=st.sampled_from(["list", "missing", "not a list", "items not objects"]),
)
@example(listed=[{**PAYMENT, "status": "failed"}, PAYMENT], page="list")
@example(listed=[PAYMENT, {**PAYMENT, "status": "cancelled"}], page="list")  # two paid
def test_a_lookup_says_paid_only_when_a_listed_payment_of_the_order_was_paid(
    listed: list[dict[str, Any]], page: str
) -> None:
    """``find`` reads every payment of the order (``/payments/findAll``): whatever the
    list holds, "paid" is reported only for a payment of *this* order whose status was
    a paid one — money that moved is never reported as not moved, nor the other way."""
    body: dict[str, Any] = {"total": len(listed), "previous": 0, "next": 0}
    if page == "list":
        body["list"] = listed
    elif page == "not a list":
        body["list"] = {"0": listed}
    elif page == "items not objects":
        body["list"] = [json.dumps(p) for p in listed]
    result = outcome("find", (200, _json({"code": 0, "message": None, "response": body})))
    if isinstance(result, OrderStatus) and result.state in (PgState.paid, PgState.cancelled):
        assert page == "list"
        assert any(
            p.get("status") in SUCCESS_STATUSES and p.get("merchant_uid") == ORDER for p in listed
        )
    paid = [p for p in listed if p.get("status") in SUCCESS_STATUSES]
    if page == "list" and len(paid) > 1 and all(p.get("merchant_uid") == ORDER for p in listed):
        assert isinstance(result, GatewayError)  # two paid payments: a human must look


@FUZZ
@given(status=http_statuses, raw=_bodies(customers))
@example(status=200, raw=_json({"code": 0, "response": {"inserted": "yesterday"}}))  # WireError
@example(status=200, raw=_json({"code": 0, "response": {"inserted": 10**30}}))  # OverflowError
@example(status=200, raw=_json({"code": 0, "response": {"inserted": 1e300}}))
def test_billing_key_answers_end_in_a_key_or_a_gateway_error(status: int, raw: bytes) -> None:
    outcome("register", (status, raw))


@FUZZ
@given(op=st.sampled_from(OPS), status=http_statuses, raw=_bodies(tokens))
@example(op="again", status=200, raw=_token(expired_at=10**400)[1])  # was OverflowError
@example(op="again", status=200, raw=_token(access_token="a\r\nX-Evil: 1")[1])  # ValueError
@example(op="find", status=200, raw=_token(access_token="tok\x00")[1])
@example(op="find", status=200, raw=b"[" * 100_000)
def test_token_answers_end_in_a_result_or_a_gateway_error(op: str, status: int, raw: bytes) -> None:
    outcome(op, (200, _answer_for(op)), token=(status, raw))
