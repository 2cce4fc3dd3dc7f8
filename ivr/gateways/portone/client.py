"""PortOne REST API v1 connector on aiohttp (also the client of the sandbox PG).

    async with PortOneGateway(PortOneConfig.from_settings(settings.gateway)) as pg:
        result = await pg.charge_billing_key(ChargeRequest(...))

Endpoints: ``POST /users/getToken``, ``POST /subscribe/customers/{customer_uid}``,
``POST /subscribe/payments/again``, ``POST /subscribe/payments/onetime``,
``POST /payments/cancel``, ``GET /payments/findAll/{merchant_uid}``,
``GET|DELETE /subscribe/customers/{customer_uid}``. Every request has a total deadline
(``total_timeout_s``): a PG that trickles an answer cannot hold a charge open longer,
and running out of it is an unknown outcome like any timeout. Every answer goes
through the tables of :mod:`ivr.gateways.portone.errors`. Logs carry the operation,
the order id and the HTTP status — never card data or response bodies.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

import aiohttp

from ivr.errors import ConfigError, InvalidInput
from ivr.gateways import receipts
from ivr.gateways.contract import (
    BillingKey,
    BillingKeyRequest,
    CancelRequest,
    CancelResult,
    ChargeRequest,
    ChargeStatus,
    GatewayCharge,
    KeyedChargeRequest,
    OrderStatus,
)
from ivr.gateways.declines import DeclineReason, Stage, decline
from ivr.gateways.errors import (
    AuthenticationFailed,
    CardDeclined,
    GatewayError,
    GatewayRejected,
    GatewayUnavailable,
)
from ivr.gateways.http import HttpConnector
from ivr.gateways.portone import results, wire
from ivr.gateways.portone.auth import TokenCache
from ivr.gateways.portone.errors import Http, http_outcome, pg_code, transport_error
from ivr.gateways.portone.pgs import KNOWN_CODES, provider, rules_for
from ivr.gateways.portone.results import Call, unreadable
from ivr.gateways.portone.wire import Json
from ivr.settings import GatewaySettings

log = logging.getLogger("ivr.gateways.portone")  # the name it had as one module

_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")


@dataclass(frozen=True)
class PortOneConfig:
    base_url: str  # https://api.iamport.kr, or the sandbox PG
    imp_key: str
    imp_secret: str = field(repr=False)
    timeout_s: float = 10.0  # longest silence while waiting for an answer
    connect_timeout_s: float = 3.0
    total_timeout_s: float = 30.0  # the whole request, connect to last byte
    token_margin_s: float = 60.0
    channel_key: str = ""  # PortOne channel of billing-key issuance (required)
    pg: str = ""  # the pg selector ({PG} or {PG}.{MID}); empty: the account's default PG
    product_type: str = ""  # real | digital, for PGs that require it (KSNET)
    buyer_email: str = ""  # for PGs that require buyer_email (customers have none)

    def __post_init__(self) -> None:
        """Refuse, at start, an account the configured PG cannot work with."""
        if not self.channel_key:
            raise ConfigError("gateway.channel_key is required (PortOne v1 billing keys)")
        rules = rules_for(self.pg)
        if self.pg and provider(self.pg) not in KNOWN_CODES:
            raise ConfigError(f"gateway.pg: unknown PortOne PG code {provider(self.pg)!r}")
        needed = rules.again | rules.onetime
        if "product_type" in needed and self.product_type not in ("real", "digital"):
            raise ConfigError(f"gateway.pg = {self.pg} needs gateway.product_type (real | digital)")
        if "buyer_email" in needed and not self.buyer_email:
            raise ConfigError(f"gateway.pg = {self.pg} needs gateway.buyer_email")

    @property
    def account(self) -> wire.Account:
        return wire.Account(self.channel_key, self.pg, self.product_type, self.buyer_email)

    @classmethod
    def from_settings(cls, gw: GatewaySettings) -> PortOneConfig:
        return cls(
            base_url=gw.base_url,
            imp_key=gw.api_key,
            imp_secret=gw.api_secret.get_secret_value(),
            timeout_s=gw.timeout_s,
            connect_timeout_s=gw.connect_timeout_s,
            total_timeout_s=gw.total_timeout_s,
            token_margin_s=gw.token_margin_s,
            channel_key=gw.effective_channel_key,
            pg=gw.pg,
            product_type=gw.product_type,
            buyer_email=gw.buyer_email,
        )


class PortOneGateway(HttpConnector):
    """:class:`~ivr.gateways.contract.Gateway` for PortOne REST v1."""

    def __init__(
        self,
        config: PortOneConfig,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            config.base_url,
            timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            total_timeout_s=config.total_timeout_s,
            session=session,
        )
        self._config = config
        self._pg = provider(config.pg)
        self.tokens = TokenCache(self._fetch_token, clock=clock, margin_s=config.token_margin_s)

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None, token: str | None
    ) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self._request(method, path, body, headers)

    async def _fetch_token(self) -> tuple[str, float]:
        body = {"imp_key": self._config.imp_key, "imp_secret": self._config.imp_secret}
        try:
            status, raw = await self._send("POST", "/users/getToken", body, None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, op="getToken", mutating=False) from exc
        outcome = http_outcome(status)
        if status in (401, 403):
            raise AuthenticationFailed("PortOne refused imp_key/imp_secret", pg_status=status)
        if outcome is not Http.envelope:
            if outcome in (Http.rejected, Http.not_found):  # 404 here: a wrong base_url
                raise GatewayRejected(f"PortOne getToken: HTTP {status}", pg_status=status)
            raise GatewayUnavailable(f"PortOne getToken: HTTP {status}", retry_safe=True)
        try:
            env = wire.parse_envelope(raw)
            if env.code != 0 or env.response is None:
                raise AuthenticationFailed("PortOne refused imp_key/imp_secret", pg_status=status)
            token = wire.get_str(env.response, "access_token")
            lifetime = wire.get_int(env.response, "expired_at") - wire.get_int(env.response, "now")
        except wire.WireError:
            raise GatewayUnavailable(
                "PortOne getToken: malformed answer", retry_safe=True
            ) from None
        if token is None or not token.isprintable():  # it goes into a header as it is
            raise GatewayUnavailable("PortOne getToken: no access_token", retry_safe=True)
        return token, float(min(max(lifetime, 0), 86_400))  # float(): at most a day

    async def _call(
        self, method: str, path: str, call: Call, body: dict[str, Any] | None = None
    ) -> wire.PortOneEnvelope | None:
        """One API call with the access token (renewed once on 401). Returns the
        envelope, or ``None`` for HTTP 404; raises the contract error otherwise."""
        for attempt in (1, 2):
            token = await self.tokens.get()
            started = time.perf_counter()
            try:
                status, raw = await self._send(method, path, body, token)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("portone %s %s: %s", call.op, call.order_id or "-", type(exc).__name__)
                raise transport_error(
                    exc, op=call.op, mutating=call.mutating, order_id=call.order_id
                ) from exc
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.debug("portone %s %s -> HTTP %d in %.0f ms", call.op, call.order_id or "-",
                      status, elapsed_ms)  # fmt: skip
            outcome = http_outcome(status)
            if outcome is Http.reauth:
                self.tokens.invalidate(token)
                if attempt == 1:
                    continue  # a 401 was refused before processing: resending is safe
                raise AuthenticationFailed(
                    f"PortOne {call.op}: 401 with a fresh token", pg_status=401
                )
            if outcome is Http.envelope:
                try:
                    return wire.parse_envelope(raw)
                except wire.WireError:
                    raise unreadable(call, f"malformed answer (HTTP {status})") from None
            if outcome is Http.not_found:
                return None
            raise self._http_error(call, outcome, status, raw)
        raise AssertionError("unreachable")  # pragma: no cover

    def _http_error(self, call: Call, outcome: Http, status: int, raw: bytes) -> GatewayError:
        if outcome is Http.throttled:
            return GatewayUnavailable(f"PortOne {call.op}: HTTP {status}", retry_safe=True)
        if outcome is Http.rejected:
            code: str | None = None
            try:
                env = wire.parse_envelope(raw)
                code = pg_code(env.message, env.code)
            except wire.WireError:
                pass
            return GatewayRejected(
                f"PortOne {call.op}: HTTP {status}", pg_status=status, pg_code=code
            )
        return unreadable(call, f"HTTP {status}")

    async def _post(self, path: str, call: Call, body: dict[str, Any]) -> wire.PortOneEnvelope:
        env = await self._call("POST", path, call, body)
        if env is None:
            raise GatewayRejected(f"PortOne {call.op}: HTTP 404", pg_status=404)
        return env

    async def register_billing_key(self, req: BillingKeyRequest) -> BillingKey:
        call = Call("register_billing_key", mutating=True, pg=self._pg)
        path = f"/subscribe/customers/{req.customer_uid}"
        if not req.card.has_password and self._config.account.rules.register_password:
            # a stored card (no password) at a PG that documents it as required: refused
            # here as the PG would, so the card's payer is asked (docs/portone.md)
            d = decline(DeclineReason.password_required, Stage.registration,
                        "arspay:password_required")  # fmt: skip
            raise CardDeclined(f"PortOne: card not registered ({d.reason})", decline=d)
        try:
            body = wire.billing_key_body(req.card, self._config.account, req.holder)
        except wire.NotSendable as exc:
            raise GatewayRejected(f"PortOne {call.op}: not sent ({exc.code})",
                                  pg_code=exc.code) from None  # fmt: skip
        env = await self._post(path, call, body)
        return results.billing_key(env, call, req.customer_uid)

    async def get_billing_key(self, customer_uid: str) -> BillingKey | None:
        """``GET /subscribe/customers/{customer_uid}``: the billing key PortOne holds
        under ``customer_uid`` (card issuer, masked number, type); ``None`` when unknown
        (HTTP 404). Not part of the contract: a PortOne-only look-up."""
        if _ORDER_ID.fullmatch(customer_uid) is None:
            raise InvalidInput("invalid customer_uid")
        call = Call("get_billing_key", mutating=False, pg=self._pg)
        env = await self._call("GET", f"/subscribe/customers/{customer_uid}", call)
        if env is None:
            return None
        if env.code != 0:
            raise GatewayRejected(f"PortOne {call.op}: code {env.code}",
                                  pg_code=pg_code(env.message, env.code))  # fmt: skip
        return results.billing_key(env, call, customer_uid)

    @staticmethod
    def _not_sent(order_id: str, amount: int, months: int, code: str) -> GatewayCharge:
        """A charge the configured PG would refuse as built: nothing was sent. It reads
        as the PG's refusal (``refused``), a hard decline kept with the short code."""
        refusal = decline(DeclineReason.rejected, Stage.payment, code)
        return GatewayCharge(order_id=order_id, status=ChargeStatus.failed, amount=amount,
                             pg_tx_id=None, approval_no=None, card_issuer=None,
                             card_last4=None, card_type=None, installment_months=months,
                             paid_at=None, decline=refusal, refused=True)  # fmt: skip

    async def _charge(
        self, op: str, path: str, req: ChargeRequest | KeyedChargeRequest, body: Callable[[], Json]
    ) -> GatewayCharge:
        call = Call(op, mutating=True, order_id=req.order_id, pg=self._pg)
        try:
            sent = body()
        except wire.NotSendable as exc:
            log.warning("portone %s %s: not sent (%s)", op, req.order_id, exc.code)
            return self._not_sent(req.order_id, req.amount, req.installment_months, exc.code)
        env = await self._post(path, call, sent)
        charged = results.charge(env, call, req.amount, req.installment_months)
        return replace(charged, receipt_url=self._receipt(charged.receipt_url))

    def _receipt(self, url: str | None) -> str | None:
        """The PG's receipt link, when on an allowed host (ivr/gateways/receipts.py)."""
        return receipts.kept(url, self._config.base_url) if url else None

    async def charge_billing_key(self, req: ChargeRequest) -> GatewayCharge:
        account = self._config.account
        return await self._charge("charge_billing_key", "/subscribe/payments/again", req,
                                  lambda: wire.again_body(req, account))  # fmt: skip

    async def keyed_charge(self, req: KeyedChargeRequest) -> GatewayCharge:
        account = self._config.account
        return await self._charge("keyed_charge", "/subscribe/payments/onetime", req,
                                  lambda: wire.onetime_body(req, account))  # fmt: skip

    async def cancel(self, req: CancelRequest) -> CancelResult:
        call = Call("cancel", mutating=True, order_id=req.order_id)
        env = await self._post("/payments/cancel", call, wire.cancel_body(req))
        return results.cancel(env, call, req.checksum)

    async def delete_billing_key(self, customer_uid: str, *, reason: str) -> bool:
        if _ORDER_ID.fullmatch(customer_uid) is None:  # the same alphabet and limit
            raise InvalidInput("invalid customer_uid")
        call = Call("delete_billing_key", mutating=True)
        query = urlencode(wire.delete_query(reason, self._config.account))
        env = await self._call("DELETE", f"/subscribe/customers/{customer_uid}?{query}", call)
        if env is None:  # HTTP 404: the PG does not know the key
            return False
        if env.code != 0:
            raise GatewayRejected(
                f"PortOne delete_billing_key: code {env.code}",
                pg_code=pg_code(env.message, env.code),
            )
        return True

    async def find(self, order_id: str) -> OrderStatus | None:
        if _ORDER_ID.fullmatch(order_id) is None:
            raise InvalidInput("invalid order id")
        call = Call("find", mutating=False, order_id=order_id)
        env = await self._call("GET", f"/payments/findAll/{order_id}?limit=100", call)
        found = results.order_status_all(env, call)
        if found is None:
            return None
        return replace(found, receipt_url=self._receipt(found.receipt_url))
