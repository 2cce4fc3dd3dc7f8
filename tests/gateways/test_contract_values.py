"""The contract's dataclasses: card data never shows in a repr or an error message,
bad input is refused before anything is sent, and PortOne bodies use the documented
field names."""

from __future__ import annotations

from typing import Any

import pytest

from ivr.errors import ConfigError, InvalidInput
from ivr.gateways.contract import (
    BillingKeyRequest,
    Buyer,
    CancelRequest,
    ChargeRequest,
    KeyedCard,
    KeyedChargeRequest,
)
from ivr.gateways.portone import PortOneConfig
from ivr.gateways.portone import wire as wire
from tests.gateways.support import card, order

PAN, EXPIRY, BIRTH, PWD = "4518000000000001", "2031-07", "880214", "47"


def test_card_data_never_shows_in_a_repr() -> None:
    data = KeyedCard(number=PAN, expiry=EXPIRY, birth=BIRTH, password_2digits=PWD)
    texts = [
        repr(data),
        repr(BillingKeyRequest("cus_1", data)),
        repr(KeyedChargeRequest(data, order(), 1_000, "x", save_as_customer_uid="cus_1")),
        str(data),
    ]
    for text in texts:
        for secret in (PAN, PAN[-8:], EXPIRY, BIRTH, "password_2digits='47'"):
            assert secret not in text
    assert data.last4 == "0001"


def test_the_api_secret_never_shows_in_a_repr() -> None:
    config = PortOneConfig(base_url="http://x", imp_key="k", imp_secret="hunter2", channel_key="c")
    assert "hunter2" not in repr(config)


@pytest.mark.parametrize(
    "fields",
    [
        {"number": "4518-0000-0000-0001"},
        {"number": "451800000001"},
        {"expiry": "2031-13"},
        {"expiry": "07/31"},
        {"birth": "8802140"},
        {"password_2digits": "4"},
        {"password_2digits": "ab"},
    ],
)
def test_bad_card_data_is_refused_without_echoing_it(fields: dict[str, str]) -> None:
    values = {"number": PAN, "expiry": EXPIRY, "birth": BIRTH, "password_2digits": PWD, **fields}
    with pytest.raises(InvalidInput) as err:
        KeyedCard(**values)
    for value in fields.values():
        assert value not in err.value.message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"amount": 99},
        {"amount": 1000.0},
        {"amount": True},
        {"installment_months": 1},
        {"installment_months": 37},
        {"order_id": "ord/../x"},
        {"order_id": "o" * 41},
        {"customer_uid": "cus 1"},
        {"order_name": "  "},
    ],
)
def test_bad_charge_requests_are_refused(kwargs: dict[str, Any]) -> None:
    base: dict[str, Any] = {"customer_uid": "cus_1", "order_id": order(), "amount": 1_000,
                            "order_name": "x"}  # fmt: skip
    with pytest.raises(InvalidInput):
        ChargeRequest(**{**base, **kwargs})


@pytest.mark.parametrize(
    "kwargs",
    [{"checksum": -1}, {"amount": 0}, {"amount": 5_001}, {"reason": ""}, {"amount": 10.0}],
)
def test_bad_cancel_requests_are_refused(kwargs: dict[str, Any]) -> None:
    base: dict[str, Any] = {"order_id": order(), "reason": "x", "checksum": 5_000}
    with pytest.raises(InvalidInput):
        CancelRequest(**{**base, **kwargs})


def test_portone_bodies_use_the_documented_fields() -> None:
    account = wire.Account("channel-key-1")
    keyed = KeyedChargeRequest(card(PAN), "ord_1", 60_000, "임플란트", installment_months=3,
                               interest_free=True, save_as_customer_uid="cus_1")  # fmt: skip
    assert wire.onetime_body(keyed, account) == {
        "merchant_uid": "ord_1", "amount": 60_000, "name": "임플란트",
        "card_number": "4518-0000-0000-0001", "expiry": "2031-12", "birth": "880101",
        "pwd_2digit": "12", "card_quota": 3, "interest_free_by_merchant": True,
        "customer_uid": "cus_1",
    }  # fmt: skip
    assert wire.again_body(ChargeRequest("cus_1", "ord_2", 1_000, "x"), account) == {
        "customer_uid": "cus_1", "merchant_uid": "ord_2", "amount": 1_000, "name": "x",
    }  # fmt: skip
    assert wire.billing_key_body(card(PAN), account) == {
        "card_number": "4518-0000-0000-0001", "expiry": "2031-12", "birth": "880101",
        "pwd_2digit": "12", "channel_key": "channel-key-1",
    }  # fmt: skip
    assert wire.cancel_body(CancelRequest("ord_3", "환불", checksum=7_000)) == {
        "merchant_uid": "ord_3", "reason": "환불", "checksum": 7_000,
    }  # fmt: skip
    assert (
        wire.cancel_body(CancelRequest("ord_3", "환불", checksum=7_000, amount=500))["amount"]
        == 500
    )
    assert wire.card_number("36123456789012") == "36123456789012"  # 14 digits: as is


@pytest.mark.parametrize(("options", "message"), [
    ({"channel_key": ""}, "gateway.channel_key is required"),
    ({"pg": "nosuchpg"}, "unknown PortOne PG code"),
    ({"pg": "ksnet"}, "gateway.pg = ksnet needs gateway.product_type"),
    ({"pg": "ksnet.MID1", "product_type": "both"}, "needs gateway.product_type"),
    ({"pg": "smartro_v2"}, "gateway.pg = smartro_v2 needs gateway.buyer_email"),
])  # fmt: skip
def test_the_connector_refuses_an_account_its_pg_cannot_work_with(
    options: dict[str, str], message: str
) -> None:
    base: dict[str, Any] = {"base_url": "http://x", "imp_key": "k", "imp_secret": "s",
                            "channel_key": "c"}  # fmt: skip
    with pytest.raises(ConfigError, match=message):
        PortOneConfig(**(base | options))


def test_a_pg_with_a_mid_is_sent_whole_and_ruled_by_its_code() -> None:
    config = PortOneConfig(base_url="http://x", imp_key="k", imp_secret="s", channel_key="c",
                           pg="ksnet.MID1", product_type="digital")  # fmt: skip
    body = wire.billing_key_body(card(PAN), config.account)
    assert body["pg"] == "ksnet.MID1"
    again = wire.again_body(ChargeRequest("cus_1", "ord1", 1_000, "x", buyer=Buyer("홍길동")),
                            config.account)  # fmt: skip
    assert (again["buyer_name"], again["product_type"]) == ("홍길동", "digital")
    assert "buyer_tel" not in again  # only what the PG requires
    assert "pg" not in again  # the billing key knows its PG
