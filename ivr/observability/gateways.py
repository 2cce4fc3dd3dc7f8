"""The requests of one PG account, counted and timed, and the declines it answers.

Each account's :class:`~ivr.gateways.breaker.GuardedGateway` (built by
:class:`~ivr.pg_accounts.book.GatewayBook`) runs its requests through the account's
:class:`GatewayMeter`, around the breaker: a request the breaker stops counts as
``circuit_open`` and is not timed. Registrations and keyed charges go through the vault
(its own connector): those are timed as vault operations and their declines counted by
:class:`~ivr.observability.vault.MeteredVault`, so a decline is counted once whichever
way it came.

Labels: the account id and the operation name; never the order id or the amount.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ivr.gateways.contract import GatewayCharge
from ivr.gateways.declines import Decline
from ivr.gateways.errors import (
    AuthenticationFailed,
    CancelRefused,
    CardDeclined,
    CircuitOpen,
    DuplicateOrder,
    GatewayRejected,
    GatewayUnavailable,
    OutcomeUnknown,
)
from ivr.observability.registry import Metrics
from ivr.observability.registry import account as account_label

T = TypeVar("T")


def outcome_of(exc: BaseException) -> str:
    """The outcome word of a request that raised ``exc``."""
    if isinstance(exc, CircuitOpen):
        return "circuit_open"
    if isinstance(exc, CardDeclined):
        return "declined"
    if isinstance(exc, AuthenticationFailed):
        return "auth_failed"
    if isinstance(exc, GatewayRejected | CancelRefused):
        return "refused"
    if isinstance(exc, DuplicateOrder):
        return "duplicate"
    if isinstance(exc, OutcomeUnknown | TimeoutError):
        return "unknown"
    if isinstance(exc, GatewayUnavailable):
        return "unavailable"
    return "error"


class GatewayMeter:
    """Counts and times the requests of one PG account (``account``: its id)."""

    def __init__(self, account: str, metrics: Metrics) -> None:
        self.account = account_label(account)
        self.metrics = metrics

    async def observe(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """``await call()``, counted under ``operation`` by how it ended."""
        m = self.metrics
        started = time.perf_counter()
        try:
            result = await call()
        except Exception as exc:
            name = outcome_of(exc)
            if name != "circuit_open":  # nothing was sent: no latency to speak of
                m.pg_seconds.labels(self.account, operation).observe(time.perf_counter() - started)
            m.pg_requests.labels(self.account, operation, name).inc()
            if isinstance(exc, CardDeclined):
                self._decline("registration", exc.decline)
            raise
        m.pg_seconds.labels(self.account, operation).observe(time.perf_counter() - started)
        outcome = "ok"
        if isinstance(result, GatewayCharge) and not result.succeeded:
            outcome = "declined"
            if result.decline is not None:
                self._decline("payment", result.decline)
        m.pg_requests.labels(self.account, operation, outcome).inc()
        return result

    def _decline(self, stage: str, d: Decline) -> None:
        self.metrics.declines.labels(stage, self.account, d.reason.value, d.kind.value).inc()
