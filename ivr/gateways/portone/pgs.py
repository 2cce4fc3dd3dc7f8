"""What each PG behind PortOne v1 requires beyond the common fields: one row per PG code.

PortOne forwards a request to the PG chosen by the ``pg`` selector (``{PG}`` or
``{PG}.{상점아이디}``; none: the account's default PG). Some PGs need more than the
common fields, and some answer differently. The rows come from PortOne's v1 OpenAPI
document (``x-portone-per-pg`` ``required``, ``x-portone-supported-pgs``; checked in at
``tests/data/portone/v1.openapi.json`` and compared with this table by
``tests/gateways/test_portone_conformance.py``) and the per-PG guides docs/portone.md
cites. Only the fields the engine can fill are listed; a PG not listed gets the common
fields only.

Field sources: ``buyer_name``/``buyer_tel`` from the customer (name, mobile);
``buyer_email`` and ``product_type`` from ``gateway.buyer_email``/``gateway.product_type``;
``customer_name`` (registration) from the card holder's name when the caller has one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class PgRules:
    code: str  # PortOne pg_provider code
    register: frozenset[str] = frozenset()  # POST /subscribe/customers/{customer_uid}
    again: frozenset[str] = frozenset()  # POST /subscribe/payments/again
    onetime: frozenset[str] = frozenset()  # POST /subscribe/payments/onetime
    # merchant_uid: letters and digits only (Smartro's new module refuses "_" and "-")
    plain_order_ids: bool = False
    # interest_free_by_merchant is supported (x-portone-supported-pgs), per operation
    merchant_interest_again: bool = False
    merchant_interest_onetime: bool = False
    # card_type may come back null ("해당 정보를 제공하지 않는 일부 PG사의 경우 null")
    card_type_may_be_null: bool = False
    # billing keys can be issued by REST API (support/code-info/pg.mdx "API 방식")
    api_billing_key: bool = True
    # the card password to issue a billing key by API (pwd_2digit; V2 passwordTwoDigits):
    # True: required, so a stored card cannot move here without its payer (the password
    # is never stored); False: documented optional; None: not documented — sent without
    # and the PG's answer decides (docs/portone.md "Moving cards between PG accounts")
    register_password: bool | None = None


def _f(*names: str) -> frozenset[str]:
    return frozenset(names)


RULES: Final[dict[str, PgRules]] = {r.code: r for r in (
    PgRules("ksnet", register=_f("birth", "pwd_2digit"),
            again=_f("buyer_name", "product_type"), onetime=_f("buyer_name", "product_type"),
            merchant_interest_again=True, register_password=True),
    PgRules("smartro_v2", again=_f("buyer_name", "buyer_email", "buyer_tel"),
            plain_order_ids=True, api_billing_key=False, register_password=True),
    PgRules("welcome", register=_f("customer_name"), again=_f("buyer_name"),
            onetime=_f("buyer_name"), register_password=False),
    PgRules("html5_inicis", again=_f("name"),
            onetime=_f("name", "buyer_name", "buyer_email", "buyer_tel"),
            card_type_may_be_null=True, api_billing_key=False),
    PgRules("inicis", card_type_may_be_null=True),
    PgRules("nice", merchant_interest_again=True, merchant_interest_onetime=True),
    PgRules("nice_v2", merchant_interest_again=True, merchant_interest_onetime=True,
            register_password=True),
    PgRules("danal_tpay", again=_f("name"), api_billing_key=False),
    PgRules("tosspayments"),
    PgRules("kcp", register_password=True),
    PgRules("settle"),
    PgRules("daou"),
)}  # fmt: skip

# Every code the ``pg`` selector may name (support/code-info/pg.mdx and pg-2.mdx);
# PortOne silently falls back to the default PG on an unknown value, so we refuse one.
KNOWN_CODES: Final = frozenset({
    *RULES, "kcp_billing", "kcp_quick", "uplus", "kicc", "kakaopay", "mobilians", "payco",
    "paypal", "paypal_v2", "eximbay", "naverpay", "naverco", "smilepay", "tosspay_v2",
    "settle_acc", "paymentwall", "danal", "inicis_unified", "blue", "galaxia", "payletter",
})  # fmt: skip

COMMON: Final = PgRules("")  # the account's default PG, or a PG with no extra rules
PLAIN_ORDER_ID: Final = re.compile(r"[A-Za-z0-9]{1,40}")


def provider(selector: str) -> str:
    """``ksnet`` of ``ksnet.MID1``."""
    return selector.split(".", 1)[0]


def rules_for(selector: str) -> PgRules:
    return RULES.get(provider(selector), COMMON) if selector else COMMON
