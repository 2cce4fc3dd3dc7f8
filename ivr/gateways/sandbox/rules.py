"""What the sandbox refuses, as PortOne's v1 document and the per-PG guides require.

Every request: the document's required fields and maximum lengths. Registration:
``channel_key`` (required by the v1 API; it must be the sandbox's channel). When the
sandbox plays a particular PG (``SandboxConfig.pg``, ``gateway.sandbox_pg``): that PG's
required fields (:mod:`ivr.gateways.portone.pgs`, checked against the document by the
conformance tests) and Smartro's letters-and-digits ``merchant_uid``; its answers then
carry that PG's code and, for Inicis, ``card_type: null`` (:mod:`.records`). A refusal
is HTTP 400 ``[INVALID_REQUEST] …`` naming the field: a request the PG would refuse as
malformed, never a card decline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ivr.gateways.portone.pgs import PLAIN_ORDER_ID, PgRules, rules_for
from ivr.gateways.sandbox import http as h

# maxLength of the request fields the sandbox reads (v1 OpenAPI, formData)
MAX_LENGTH: Final[dict[str, int]] = {
    "channel_key": 55, "pg": 80, "name": 40, "buyer_name": 16, "buyer_email": 64,
    "buyer_tel": 16, "customer_name": 20, "customer_tel": 20, "customer_email": 200,
}  # fmt: skip


def _lengths(data: Mapping[str, Any]) -> None:
    for name, limit in MAX_LENGTH.items():
        value = data.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise h.BadRequest(f"{name} is longer than {limit}")


def _present(data: Mapping[str, Any], names: frozenset[str], pg: str) -> None:
    for name in sorted(names):
        if data.get(name) in (None, ""):
            raise h.BadRequest(f"{name} is required by {pg}")


def register(data: Mapping[str, Any], channel_key: str, pg: str) -> None:
    """POST /subscribe/customers/{customer_uid}"""
    _lengths(data)
    sent = data.get("channel_key")
    if sent in (None, ""):
        raise h.BadRequest("channel_key is required")
    if sent != channel_key:
        raise h.BadRequest("channel_key: no such channel")
    # a missing password is the PG's card refusal (PASSWORD_REQUIRED), not a bad request
    _present(data, rules_for(pg).register - {"pwd_2digit"}, pg)


def password_required(pg: str) -> bool:
    """The played PG refuses a billing key without the card password."""
    return rules_for(pg).register_password is True


def payment(data: Mapping[str, Any], pg: str, *, again: bool) -> None:
    """POST /subscribe/payments/again (``again``) or /onetime."""
    _lengths(data)
    rules: PgRules = rules_for(pg)
    if again and data.get("name") in (None, ""):
        raise h.BadRequest("name is required")
    _present(data, rules.again if again else rules.onetime, pg)
    merchant_uid = str(data.get("merchant_uid") or "")
    if rules.plain_order_ids and PLAIN_ORDER_ID.fullmatch(merchant_uid) is None:
        raise h.BadRequest(f"merchant_uid: {pg} takes letters and digits only")
    if data.get("interest_free_by_merchant") not in (None, False, "false"):
        supported = rules.merchant_interest_again if again else rules.merchant_interest_onetime
        if pg and not supported:
            raise h.BadRequest(f"interest_free_by_merchant is not supported by {pg}")
    product_type = data.get("product_type")
    if product_type not in (None, "real", "digital"):
        raise h.BadRequest("product_type must be real or digital")
