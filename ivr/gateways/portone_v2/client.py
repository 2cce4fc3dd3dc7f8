"""PortOne V2 connector on aiohttp.

    async with PortOneV2Gateway(PortOneV2Config.from_settings(settings.gateway)) as pg:
        result = await pg.charge_billing_key(ChargeRequest(...))

Endpoints (PortOne's V2 OpenAPI document): ``POST /billing-keys``, ``GET /billing-keys``
and ``GET|DELETE /billing-keys/{billingKey}``, ``POST /payments/{paymentId}/billing-key``,
``POST /payments/{paymentId}/instant``, ``GET /payments/{paymentId}``, ``POST
/payments/{paymentId}/cancel``. Every request carries ``Authorization: PortOne <API
secret>``; writes carry an ``Idempotency-Key`` derived from what they are about (the
paymentId for a payment), so a resend after a timeout is answered, not redone. Every
request has a total deadline (``total_timeout_s``); running out of it is an unknown
outcome like any timeout. Logs carry the operation, the order id, the HTTP status and the
error type — never card data or bodies.

The contract names a registered card by our ``customer_uid``; V2 issues its own
``billingKey``. The key is issued with ``customer.id = customer_uid``, remembered in
memory, and found again with ``GET /billing-keys`` (``filter.customerId``) by a process
that did not issue it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from ivr.errors import InvalidInput
from ivr.gateways import receipts
from ivr.gateways.contract import (
    BillingKey,
    BillingKeyRequest,
    CancelRequest,
    CancelResult,
    ChargeRequest,
    GatewayCharge,
    KeyedChargeRequest,
    OrderStatus,
)
from ivr.gateways.declines import DeclineReason, Stage, decline
from ivr.gateways.errors import CardDeclined, GatewayError, OutcomeUnknown
from ivr.gateways.http import HttpConnector
from ivr.gateways.portone.errors import transport_error
from ivr.gateways.portone.results import Call
from ivr.gateways.portone_v2 import results, wire
from ivr.gateways.portone_v2.results import Reply
from ivr.settings import PORTONE_V2_URL, GatewaySettings

log = logging.getLogger("ivr.gateways.portone_v2")

_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")


@dataclass(frozen=True)
class PortOneV2Config:
    api_secret: str = field(repr=False)  # the V2 API secret (PortOne console)
    store_id: str  # store-…; sent as storeId
    channel_key: str  # channel-key-…: which PG channel issues keys and charges
    base_url: str = PORTONE_V2_URL
    timeout_s: float = 10.0  # longest silence while waiting for an answer
    connect_timeout_s: float = 3.0
    total_timeout_s: float = 30.0  # the whole request, connect to last byte
    key_cache: int = 100_000  # customer_uid -> billingKey entries kept in memory

    @classmethod
    def from_settings(cls, gw: GatewaySettings) -> PortOneV2Config:
        return cls(
            api_secret=gw.api_secret.get_secret_value(),
            store_id=gw.store_id,
            channel_key=gw.channel_key,
            base_url=gw.base_url,
            timeout_s=gw.timeout_s,
            connect_timeout_s=gw.connect_timeout_s,
            total_timeout_s=gw.total_timeout_s,
        )


def idempotency_key(*parts: str) -> str:
    """``Idempotency-Key``: 16-256 ASCII characters, sent quoted (RFC 8941 string)."""
    key = "arspay-" + "-".join(parts)
    if len(key) > 200 or not key.isascii():
        key = "arspay-" + hashlib.sha256(key.encode()).hexdigest()
    return key


class PortOneV2Gateway(HttpConnector):
    """:class:`~ivr.gateways.contract.Gateway` for PortOne V2."""

    def __init__(
        self, config: PortOneV2Config, *, session: aiohttp.ClientSession | None = None
    ) -> None:
        if not config.api_secret or not config.api_secret.isprintable():
            raise InvalidInput("PortOne V2 needs an API secret")
        super().__init__(
            config.base_url,
            timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            total_timeout_s=config.total_timeout_s,
            session=session,
        )
        self._config = config
        self._keys: OrderedDict[str, str] = OrderedDict()  # customer_uid -> billingKey

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None, key: str | None
    ) -> tuple[int, bytes]:
        headers = {"Authorization": f"PortOne {self._config.api_secret}"}
        if key is not None:
            headers["Idempotency-Key"] = f'"{key}"'
        return await self._request(method, path, body, headers)

    async def _call(
        self,
        method: str,
        path: str,
        call: Call,
        body: dict[str, Any] | None = None,
        *,
        key: str | None = None,
    ) -> Reply:
        started = time.perf_counter()
        try:
            status, raw = await self._send(method, path, body, key)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("portone_v2 %s %s: %s", call.op, call.order_id or "-", type(exc).__name__)
            raise transport_error(
                exc, op=call.op, mutating=call.mutating, order_id=call.order_id
            ) from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        r = results.reply(call, status, raw)
        kind = r.error.type if r.error is not None else "ok"
        log.debug(
            "portone_v2 %s %s -> HTTP %d %s in %.0f ms",
            call.op,
            call.order_id or "-",
            status,
            kind,
            elapsed_ms,
        )
        return r

    def _scope_query(self) -> str:
        return f"?{urlencode({'storeId': self._config.store_id})}" if self._config.store_id else ""

    # --- billing keys ------------------------------------------------------------------

    def _remember(self, customer_uid: str, billing_key: str) -> None:
        self._keys[customer_uid] = billing_key
        self._keys.move_to_end(customer_uid)
        while len(self._keys) > self._config.key_cache:
            self._keys.popitem(last=False)

    async def _issued_keys(self, customer_uid: str) -> list[wire.KeyInfo]:
        """The ISSUED keys whose ``customer.id`` is ``customer_uid``, newest first."""
        call = Call("find_billing_key", mutating=False)
        query = json.dumps(wire.billing_keys_query(customer_uid, self._config.store_id))
        r = await self._call("GET", f"/billing-keys?{urlencode({'requestBody': query})}", call)
        found = results.key_list(call, r)
        return [k for k in found if k.status == "ISSUED" and k.customer_id == customer_uid]

    async def _billing_key(self, customer_uid: str) -> str | None:
        cached = self._keys.get(customer_uid)
        if cached is not None:
            return cached
        keys = await self._issued_keys(customer_uid)
        if not keys:
            return None
        self._remember(customer_uid, keys[0].billing_key)
        return keys[0].billing_key

    async def register_billing_key(self, req: BillingKeyRequest) -> BillingKey:
        call = Call("register_billing_key", mutating=True)
        body = wire.billing_key_body(
            req.card, req.customer_uid, self._config.store_id, self._config.channel_key
        )
        r = await self._call(
            "POST", "/billing-keys", call, body, key=idempotency_key("bk", req.customer_uid)
        )
        billing_key, issued_at, provider = results.issued_key(call, r)
        self._remember(req.customer_uid, billing_key)
        info: wire.KeyInfo | None = None
        try:  # the issue answer has no card details: read them (best effort)
            detail = Call("billing_key_info", mutating=False)
            path = f"/billing-keys/{quote(billing_key, safe='')}{self._scope_query()}"
            info = results.key_detail(detail, await self._call("GET", path, detail))
        except GatewayError as exc:
            log.warning("portone_v2 billing_key_info: %s", type(exc).__name__)
        return results.billing_key(req.customer_uid, info, issued_at, provider)

    async def delete_billing_key(self, customer_uid: str, *, reason: str) -> bool:
        if _ID.fullmatch(customer_uid) is None:
            raise InvalidInput("invalid customer_uid")
        keys = await self._issued_keys(customer_uid)
        self._keys.pop(customer_uid, None)
        gone_now = False
        for info in keys:
            call = Call("delete_billing_key", mutating=True)
            query = {"reason": reason[:100]}
            if self._config.store_id:
                query["storeId"] = self._config.store_id
            path = f"/billing-keys/{quote(info.billing_key, safe='')}?{urlencode(query)}"
            r = await self._call("DELETE", path, call, key=idempotency_key("del", info.billing_key))
            gone_now = results.deleted(call, r) or gone_now
        return gone_now

    # --- payments ----------------------------------------------------------------------

    def _payment_path(self, order_id: str, tail: str = "") -> str:
        if _ID.fullmatch(order_id) is None:
            raise InvalidInput("invalid order id")
        return f"/payments/{order_id}{tail}"

    async def _settle_charge(
        self, call: Call, r: Reply, amount: int, months: int
    ) -> tuple[GatewayCharge, bool]:
        """A payment call's answer as a charge (and whether the billing key was gone);
        a paid one is completed with the approval number and card from a lookup."""
        order_id = call.order_id or ""
        done = results.charged(call, r, amount, months)
        if done.failed is not None:
            return done.failed, done.key_gone
        found: tuple[OrderStatus, wire.CardInfo] | None = None
        try:
            found = await self._lookup(order_id)
        except GatewayError as exc:  # paid is paid: the details are a courtesy
            log.warning("portone_v2 find after %s %s: %s", call.op, order_id, type(exc).__name__)
        status, card = found if found is not None else (None, None)
        return results.succeeded(order_id, amount, months, done, status, card), False

    async def charge_billing_key(self, req: ChargeRequest) -> GatewayCharge:
        call = Call("charge_billing_key", mutating=True, order_id=req.order_id)
        path = self._payment_path(req.order_id, "/billing-key")
        billing_key = await self._billing_key(req.customer_uid)
        if billing_key is None:
            d = decline(DeclineReason.rejected, Stage.payment, "portone_v2:BILLING_KEY_NOT_FOUND")
            return results.failed_charge(
                req.order_id, req.amount, req.installment_months, d, refused=True
            )
        body = wire.billing_key_payment_body(
            req, billing_key, self._config.store_id, self._config.channel_key
        )
        r = await self._call("POST", path, call, body, key=idempotency_key("pay", req.order_id))
        charge, key_gone = await self._settle_charge(call, r, req.amount, req.installment_months)
        if key_gone:
            self._keys.pop(req.customer_uid, None)
        return charge

    async def keyed_charge(self, req: KeyedChargeRequest) -> GatewayCharge:
        """A one-time charge of card data (``/instant``). To keep the card
        (``save_as_customer_uid``) V2 has no "pay and save" call for card credentials:
        the card is registered first (``POST /billing-keys``) and the charge made with
        its key, so a saved card is exactly the card that paid."""
        if req.save_as_customer_uid is not None:
            return await self._register_and_charge(req, req.save_as_customer_uid)
        call = Call("keyed_charge", mutating=True, order_id=req.order_id)
        path = self._payment_path(req.order_id, "/instant")
        body = wire.instant_payment_body(req, self._config.store_id, self._config.channel_key)
        r = await self._call("POST", path, call, body, key=idempotency_key("pay", req.order_id))
        charge, _ = await self._settle_charge(call, r, req.amount, req.installment_months)
        return charge

    async def _register_and_charge(self, req: KeyedChargeRequest, uid: str) -> GatewayCharge:
        self._payment_path(req.order_id)  # check the order id before anything is sent
        try:
            await self.register_billing_key(BillingKeyRequest(uid, req.card))
        except CardDeclined as exc:  # no payment was attempted
            d = decline(exc.decline.reason, Stage.payment, exc.decline.pg_code)
            return results.failed_charge(
                req.order_id, req.amount, req.installment_months, d, refused=True
            )
        except OutcomeUnknown as exc:  # nothing was charged; the order id is the caller's key
            raise OutcomeUnknown(
                "PortOne V2 keyed_charge: card registration unknown", order_id=req.order_id
            ) from exc
        return await self.charge_billing_key(
            ChargeRequest(
                customer_uid=uid,
                order_id=req.order_id,
                amount=req.amount,
                order_name=req.order_name,
                installment_months=req.installment_months,
                interest_free=req.interest_free,
            )
        )

    async def _lookup(self, order_id: str) -> tuple[OrderStatus, wire.CardInfo] | None:
        call = Call("find", mutating=False, order_id=order_id)
        path = self._payment_path(order_id) + self._scope_query()
        found = results.order(call, await self._call("GET", path, call))
        if found is None or found[0].receipt_url is None:
            return found
        # The PG's receipt link, when on an allowed host (ivr/gateways/receipts.py).
        url = receipts.kept(found[0].receipt_url, self._config.base_url)
        return replace(found[0], receipt_url=url), found[1]

    async def find(self, order_id: str) -> OrderStatus | None:
        found = await self._lookup(order_id)
        return found[0] if found is not None else None

    async def cancel(self, req: CancelRequest) -> CancelResult:
        call = Call("cancel", mutating=True, order_id=req.order_id)
        path = self._payment_path(req.order_id, "/cancel")
        amount = "all" if req.amount is None else str(req.amount)
        key = idempotency_key("cancel", req.order_id, str(req.checksum), amount)
        body = wire.cancel_body(req, self._config.store_id)
        c = results.cancelled(call, await self._call("POST", path, call, body, key=key))
        try:  # the cancellation does not carry the payment's totals: read them
            found = await self.find(req.order_id)
        except GatewayError as exc:
            raise OutcomeUnknown(
                "PortOne V2 cancel: applied, totals unread", order_id=req.order_id
            ) from exc
        if found is None:
            raise OutcomeUnknown(
                "PortOne V2 cancel: applied, payment unread", order_id=req.order_id
            )
        return results.cancel_result(c, req.checksum, found)
