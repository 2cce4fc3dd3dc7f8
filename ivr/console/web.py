"""Where the console lives (``/console``) and what its pages use (:class:`ConsoleDeps`,
filled from the runtime). The ASGI app itself is built by :mod:`ivr.console.app`."""

from __future__ import annotations

from dataclasses import dataclass

from ivr.console.mfa import SecondFactor
from ivr.console.sessions import SessionStore
from ivr.console.users import ConsoleUsers
from ivr.dids.pool import DidPool
from ivr.runtime import Runtime
from ivr.settings import Settings
from ivr.web.deps import WebDeps

PREFIX = "/console"


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

    @classmethod
    def from_runtime(cls, rt: Runtime, api: WebDeps) -> ConsoleDeps:
        sv = rt.services  # in field order:
        return cls(api, sv.settings, sv.console_users, sv.console_sessions, sv.dids, sv.console_mfa)


def url(path: str) -> str:
    """An absolute console URL for ``path`` (``/payments`` → ``/console/payments``)."""
    return PREFIX + path
