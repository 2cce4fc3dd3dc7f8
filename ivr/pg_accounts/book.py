"""Each PG account's gateway, guarded by the account's circuit breaker, and where a
merchant's new cards go (issue #27: accounts, failover).

* :meth:`GatewayBook.of` — the gateway of an account (``None``: default), built on first
  use from the account's row (re-read every ``refresh_s``: a changed credential builds a
  new gateway) and wrapped in the account's :class:`~ivr.gateways.breaker.GuardedGateway`.
  Charges, lookups, cancels and key deletions of a row go to the account it names
  (:mod:`ivr.gateways.accounts`): a billing key lives at one account, so a charge of a
  key whose account is down waits (``CircuitOpen``: not sent) and resumes there with the
  same order id.
* :meth:`GatewayBook.registration_accounts` — where a new card may be registered now:
  the merchant's primary, or its secondary while the primary's breaker is open (a
  keyed one-off payment registers its card first, so it follows the same way).
* :meth:`GatewayBook.vault_route` — what the vault needs to forward a card to an account.

Breakers live in this process (each engine process learns on its own, within
``gateway.breaker_failures`` requests, that an account is down).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ivr.clock import Clock
from ivr.gateways.breaker import (
    BreakerPolicy,
    BreakerSnapshot,
    BreakerState,
    CircuitBreaker,
    GuardedGateway,
)
from ivr.gateways.config import GatewaySettings
from ivr.gateways.contract import Gateway
from ivr.gateways.factory import ConnectedGateway, build_gateway
from ivr.observability.gateways import GatewayMeter
from ivr.observability.registry import Metrics
from ivr.pg_accounts.model import DEFAULT, OPTIONS, Account, account_key
from ivr.pg_accounts.store import PgAccounts
from vault.forwarding import Route

log = logging.getLogger(__name__)


@dataclass
class _Built:
    version: str
    gateway: GuardedGateway
    inner: Gateway


class GatewayBook:
    def __init__(
        self,
        accounts: PgAccounts,
        clock: Clock,
        *,
        build: Callable[[GatewaySettings], ConnectedGateway] = build_gateway,
        default: Gateway | None = None,
        refresh_s: float = 10.0,
        now: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        """``default``: the default account's gateway, when the caller made it (tests,
        the demo); else it is built from the ``[gateway]`` settings like any other.
        ``metrics``: each account's requests are counted and timed there."""
        self.metrics = metrics
        self.accounts, self.clock, self.build = accounts, clock, build
        self.base = accounts.base
        self.policy = BreakerPolicy.from_settings(self.base)
        self.default, self.refresh_s, self._now = default, refresh_s, now
        self._rows: dict[str, tuple[float, Account]] = {}
        self._built: dict[str, _Built] = {}
        self._retired: list[Gateway] = []
        self._breakers: dict[str, CircuitBreaker] = {}

    # ------------------------------------------------------------------ accounts

    async def account(self, account_id: str | None) -> Account:
        key = account_key(account_id)
        cached = self._rows.get(key)
        if cached is not None and self._now() - cached[0] < self.refresh_s:
            return cached[1]
        account = await self.accounts.get(key)
        self._rows[key] = (self._now(), account)
        return account

    def breaker(self, account_id: str | None) -> CircuitBreaker:
        key = account_key(account_id)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = CircuitBreaker.on_clock(key, self.policy, self.clock)
        return breaker

    def breakers(self) -> list[BreakerSnapshot]:
        """Every breaker this process has, for the console."""
        return [self._breakers[k].snapshot() for k in sorted(self._breakers)]

    # ------------------------------------------------------------------ gateways

    async def of(self, account_id: str | None) -> Gateway:
        account = await self.account(account_id)
        built = self._built.get(account.id)
        if built is not None and built.version == account.version:
            return built.gateway
        if account.id == DEFAULT and self.default is not None:
            inner: Gateway = self.default
        else:
            inner = self.build(account.settings(self.base))
        if built is not None:  # its credentials changed: requests in flight finish
            self._retired.append(built.inner)
            log.info("PG account %s changed: its gateway is rebuilt", account.id)
        meter = GatewayMeter(account.id, self.metrics) if self.metrics is not None else None
        guarded = GuardedGateway(inner, self.breaker(account.id), meter)
        self._built[account.id] = _Built(account.version, guarded, inner)
        return guarded

    async def registration_accounts(self, merchant_id: str) -> list[str]:
        """Where to register a card now, in order: the primary unless its breaker is
        open, then the secondary (if any) unless its breaker is open. Empty: every
        account of the merchant is down."""
        routes = await self.accounts.routes(merchant_id)
        order = [routes.primary] + ([routes.secondary] if routes.secondary else [])
        return [a for a in order if self.breaker(a).state is not BreakerState.open]

    async def vault_route(self, account_id: str | None) -> Route | None:
        """The connection the vault forwards a card with; ``None`` for default (the
        vault's own ``[gateway]`` settings)."""
        account = await self.account(account_id)
        if account.id == DEFAULT:
            return None
        connection = {"api_key": account.api_key, "api_secret": account.api_secret}
        connection.update({k: account.options[k] for k in OPTIONS if account.options.get(k)})
        return Route(
            account_id=account.id,
            kind=account.kind,
            base_url=account.base_url,
            connection=connection,
        )

    async def aclose(self) -> None:
        gateways = [b.inner for b in self._built.values()] + self._retired
        self._built.clear()
        self._retired.clear()
        for gateway in gateways:
            if gateway is self.default:
                continue
            close = getattr(gateway, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # closing must not stop the others closing
                    log.exception("closing a PG account's gateway failed")
