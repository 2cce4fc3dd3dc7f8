"""Where the console lives (``/console``) and what its pages use (:class:`ConsoleDeps`,
filled from the runtime). The ASGI app itself is built by :mod:`ivr.console.app`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ivr.console.mfa import SecondFactor
from ivr.console.sessions import SessionStore
from ivr.console.users import ConsoleUsers
from ivr.dids.pool import DidPool
from ivr.runtime import Runtime
from ivr.settings import Settings
from ivr.web.deps import WebDeps

PREFIX = "/console"


class Breaker(Protocol):
    """One PG account's circuit breaker as the PG accounts page shows it (read-only)."""

    @property
    def name(self) -> str: ...  # the account id (``default``: the [gateway] settings)
    @property
    def state(self) -> str: ...  # closed | open | half_open
    @property
    def consecutive_failures(self) -> int: ...
    @property
    def opened_at(self) -> datetime | None: ...
    @property
    def retry_at(self) -> datetime | None: ...


class BreakerView(Protocol):
    """The breakers of the gateways the engine has open, one per account (an account no
    gateway was opened for yet has none)."""

    def __call__(self) -> Sequence[Breaker]: ...


def no_breakers() -> Sequence[Breaker]:
    """The view when none is wired: no breaker known (the page says so)."""
    return ()


@dataclass(frozen=True)
class ConsoleDeps:
    """What the pages use: the services shared with the API (``api``, one instance for
    both) and the console's own, all from the runtime."""

    api: WebDeps
    settings: Settings
    users: ConsoleUsers
    sessions: SessionStore
    dids: DidPool
    mfa: SecondFactor
    breakers: BreakerView = no_breakers  # PG accounts' circuit breakers (pages/pg_accounts.py)

    @classmethod
    def from_runtime(cls, rt: Runtime, api: WebDeps) -> ConsoleDeps:
        sv = rt.services  # in field order:
        return cls(api, sv.settings, sv.console_users, sv.console_sessions, sv.dids,
                   sv.console_mfa, breakers=rt.gateways.breakers)  # fmt: skip


def url(path: str) -> str:
    """An absolute console URL for ``path`` (``/payments`` → ``/console/payments``)."""
    return PREFIX + path
