"""The vault as the engine's services use it, counted and timed per operation.

:class:`MeteredVault` is a :class:`~vault.client.VaultClient` around the runtime's own
(in-process or remote): each call is looked up on the inner client when it is made, so
whatever replaces a method of the inner client is still called. Labels: the operation
and an outcome word — ``ok``; ``declined``, ``pg_down``, ``not_sent``, ``unknown`` for
forwarding results; ``unavailable`` (the vault did not answer) or ``error`` (it refused
the request). A declined registration or keyed charge is also counted in
``arspay_declines_total`` (stage registration or payment, by its route's account).
Never a token, a merchant id or anything about the card.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from ivr.gateways.declines import KIND, DeclineReason
from ivr.observability.registry import Metrics, account, word
from vault.card import CardData
from vault.client import VaultClient
from vault.errors import VaultUnavailable
from vault.forwarding import BillingKeyResult, ChargeResult, Order, Route
from vault.models import AuditEntry, BirthCheck, CardMetadata, TokenRef, VaultStatus

T = TypeVar("T")


def _reason(code: str | None) -> tuple[str, str]:
    """A decline code as (reason, kind) label words."""
    try:
        reason = DeclineReason(code or "")
    except ValueError:
        reason = DeclineReason.unclassified
    return reason.value, KIND[reason].value


class MeteredVault:
    def __init__(self, inner: VaultClient, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def _op(
        self,
        operation: str,
        call: Callable[[], Awaitable[T]],
        outcome: Callable[[T], str] = lambda _: "ok",
    ) -> T:
        m = self.metrics
        started = time.perf_counter()
        try:
            result = await call()
        except Exception as exc:
            m.vault_seconds.labels(operation).observe(time.perf_counter() - started)
            name = "unavailable" if isinstance(exc, VaultUnavailable) else "error"
            m.vault_ops.labels(operation, name).inc()
            raise
        m.vault_seconds.labels(operation).observe(time.perf_counter() - started)
        m.vault_ops.labels(operation, word(outcome(result))).inc()
        return result

    def _decline(self, stage: str, route: Route | None, code: str | None) -> None:
        reason, kind = _reason(code)
        pg = account(route.account_id if route is not None else None)
        self.metrics.declines.labels(stage, pg, reason, kind).inc()

    # ------------------------------------------------------------------ VaultClient

    async def tokenize(self, merchant_id: str, card: CardData, *, who: str) -> CardMetadata:
        return await self._op("tokenize", lambda: self.inner.tokenize(merchant_id, card, who=who))

    async def metadata(self, token: str, merchant_id: str) -> CardMetadata:
        return await self._op("metadata", lambda: self.inner.metadata(token, merchant_id))

    async def issue_billing_key(
        self,
        token: str,
        merchant_id: str,
        *,
        password2: str,
        customer_uid: str,
        who: str,
        why: str,
        route: Route | None = None,
    ) -> BillingKeyResult:
        def outcome(r: BillingKeyResult) -> str:
            if r.ok:
                return "ok"
            if r.pg_down:
                return "pg_down"
            self._decline("registration", route, r.decline_code)
            return "declined"

        return await self._op(
            "issue_billing_key",
            lambda: self.inner.issue_billing_key(
                token,
                merchant_id,
                password2=password2,
                customer_uid=customer_uid,
                who=who,
                why=why,
                route=route,
            ),
            outcome,
        )

    async def keyed_charge(
        self,
        token: str,
        merchant_id: str,
        *,
        password2: str,
        order: Order,
        who: str,
        why: str,
        route: Route | None = None,
    ) -> ChargeResult:
        def outcome(r: ChargeResult) -> str:
            status = str(r.status)
            if status == "succeeded":
                return "ok"
            if status == "failed":
                self._decline("payment", route, r.decline_code)
                return "declined"
            return status  # not_sent, unknown

        return await self._op(
            "keyed_charge",
            lambda: self.inner.keyed_charge(
                token,
                merchant_id,
                password2=password2,
                order=order,
                who=who,
                why=why,
                route=route,
            ),
            outcome,
        )

    async def verify_birth(
        self, token: str, merchant_id: str, *, birth: str, who: str, why: str
    ) -> BirthCheck:
        return await self._op(
            "verify_birth",
            lambda: self.inner.verify_birth(token, merchant_id, birth=birth, who=who, why=why),
        )

    async def delete(self, token: str, merchant_id: str, *, who: str, why: str) -> None:
        await self._op("delete", lambda: self.inner.delete(token, merchant_id, who=who, why=why))

    async def audit(self, *, token: str | None = None, limit: int = 50) -> list[AuditEntry]:
        return await self._op("audit", lambda: self.inner.audit(token=token, limit=limit))

    async def tokens(
        self, *, created_before: datetime, after: str = "", limit: int = 500
    ) -> list[TokenRef]:
        return await self._op(
            "tokens",
            lambda: self.inner.tokens(created_before=created_before, after=after, limit=limit),
        )

    async def status(self) -> VaultStatus:
        return await self._op("status", self.inner.status)

    async def close(self) -> None:
        await self.inner.close()


def _check_protocol(metered: MeteredVault) -> VaultClient:
    return metered  # mypy proves MeteredVault satisfies the VaultClient protocol
