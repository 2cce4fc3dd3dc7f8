"""V2 billing keys: ``POST /billing-keys`` (card credentials → a key), ``GET
/billing-keys/{billingKey}``, ``GET /billing-keys`` (by ``filter.customerId`` and
``filter.status``), ``DELETE /billing-keys/{billingKey}``.

A card the table refuses is ``PgProviderError`` (HTTP 502, ``pgCode`` = the sandbox's
bracketed code); the PG-error card is HTTP 500 with nothing recorded — as on the v1
paths. Registration plays the ``billing_key`` endpoint's fault ordering.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ivr.gateways.sandbox import cards, rules
from ivr.gateways.sandbox import http as h
from ivr.gateways.sandbox.billing import _customer, _not_slow
from ivr.gateways.sandbox.cards import Scenario
from ivr.gateways.sandbox.faults import Endpoint
from ivr.gateways.sandbox.orderings import play
from ivr.gateways.sandbox.state import STATE, SandboxState
from ivr.gateways.sandbox.v2 import answers as a
from ivr.gateways.sandbox.v2 import notify
from ivr.gateways.sandbox.v2 import records as r

DEFAULT_CHANNEL = "channel-key-arspay-sandbox"


class Card:
    """``CardCredential`` as the card table reads it."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        cred = a.obj(
            a.obj(a.obj(data, "method", required=True), "card", required=True),
            "credential",
            required=True,
        )
        self.number = a.text(cred, "number") or ""
        year, month = a.text(cred, "expiryYear") or "", a.text(cred, "expiryMonth") or ""
        if (
            not self.number.isdigit()
            or not re.fullmatch(r"\d{2}", year)
            or not re.fullmatch(r"0[1-9]|1[0-2]", month)
        ):
            raise h.BadRequest("credential: number (digits), expiryYear (YY), expiryMonth (MM)")
        self.expiry = f"20{year}-{month}"
        self.birth = a.text(cred, "birthOrBusinessRegistrationNumber", required=False)
        self.password = a.text(cred, "passwordTwoDigits", required=False)


def store_of(st: SandboxState, data: Mapping[str, Any]) -> str:
    return a.text(data, "storeId", required=False) or st.config.v2_store_id


async def issue(request: web.Request) -> web.StreamResponse:
    st = request.config_dict[STATE]
    try:
        data = await a.body(request)
        card = Card(data)
        customer_id = a.text(a.obj(data, "customer"), "id", required=False)
        channel_key = a.text(data, "channelKey", required=False) or DEFAULT_CHANNEL
    except h.BadRequest as exc:
        return a.invalid(str(exc))
    fault = _not_slow(st.plan.draw(Endpoint.billing_key, customer_id))

    async def record() -> web.Response:
        if not cards.luhn_ok(card.number):
            return a.pg_provider(cards.INVALID_CARD_NUMBER)
        scn = cards.scenario(card.number)
        if scn is Scenario.pg_error:
            return h.server_error(cards.PG_ERROR)
        failure = cards.card_status(scn, card.expiry, st.today()) or cards.holder_check(
            card.password, card.birth, password_required=rules.password_required(st.config.pg)
        )
        if failure is not None:
            return a.pg_provider(failure)
        billing_key = f"billing-key-{uuid.uuid4()}"
        now = st.now()
        await st.ledger.put_customer(_customer(st, billing_key, card.number))
        row = r.KeyRow(billing_key, customer_id, store_of(st, data), "ISSUED", now, 0)
        await st.ledger.run(lambda: r.put_key(st.ledger.db, row))
        notify.send(st, "BillingKey.Issued", {"billingKey": billing_key})
        return a.ok(
            {
                "billingKeyInfo": {
                    "billingKey": billing_key,
                    "channels": [r.channel(channel_key)],
                    "issuedAt": a.rfc3339(now),
                }
            }
        )

    return await play(request, st, fault, record)


async def _info(st: SandboxState, billing_key: str) -> dict[str, Any] | None:
    row = await st.ledger.run(lambda: r.get_key(st.ledger.db, billing_key))
    customer = await st.ledger.customer(billing_key)
    if row is None or customer is None:
        return None
    return r.key_info(row, customer, DEFAULT_CHANNEL)


async def get_one(request: web.Request) -> web.Response:
    st = request.config_dict[STATE]
    info = await _info(st, request.match_info["billing_key"])
    if info is None:
        return a.error(404, "BILLING_KEY_NOT_FOUND", "빌링키가 존재하지 않습니다.")
    return a.ok(info)


async def get_many(request: web.Request) -> web.Response:
    st = request.config_dict[STATE]
    try:
        data = await a.body(request) if request.query.get("requestBody") else {}
        flt, page = a.obj(data, "filter"), a.obj(data, "page")
        customer_id = a.text(flt, "customerId", required=False)
        wanted = flt.get("status") or []
        if not isinstance(wanted, list) or not all(s in ("ISSUED", "DELETED") for s in wanted):
            raise h.BadRequest("filter.status: ISSUED, DELETED")
        number = a.integer(page, "number", required=False) or 0
        size = a.integer(page, "size", required=False) or 10
    except h.BadRequest as exc:
        return a.invalid(str(exc))
    rows = await st.ledger.run(lambda: r.find_keys(st.ledger.db, customer_id, tuple(wanted)))
    items = []
    for row in rows[number * size : (number + 1) * size]:
        info = await _info(st, row.billing_key)
        if info is not None:
            items.append(info)
    return a.ok({"items": items, "page": {"number": number, "size": size, "totalCount": len(rows)}})


async def delete(request: web.Request) -> web.Response:
    """The key becomes DELETED (a later payment with it: 409 BILLING_KEY_ALREADY_DELETED)."""
    st = request.config_dict[STATE]
    billing_key = request.match_info["billing_key"]
    row = await st.ledger.run(lambda: r.get_key(st.ledger.db, billing_key))
    if row is None:
        return a.error(404, "BILLING_KEY_NOT_FOUND", "빌링키가 존재하지 않습니다.")
    now = st.now()
    if not await st.ledger.run(lambda: r.delete_key(st.ledger.db, billing_key, now)):
        return a.error(409, "BILLING_KEY_ALREADY_DELETED", "빌링키가 이미 삭제되었습니다.")
    notify.send(st, "BillingKey.Deleted", {"billingKey": billing_key})
    return a.ok({"deletedAt": a.rfc3339(now)})
