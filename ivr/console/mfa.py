"""The console's second factor: a TOTP code (:mod:`ivr.console.totp`) after the password.

* **Setting up** (:meth:`SecondFactor.setup`, :meth:`SecondFactor.confirm`): a fresh
  secret is stored (encrypted) and shown once — as a QR code and as text — for the
  user's authenticator app; it counts only after the user enters a code it made.
* **Logging in** (:meth:`SecondFactor.verify`): a code is accepted once (the step it
  belongs to is remembered); a wrong code counts as a failed login towards the same
  lockout as a wrong password (``console.lockout_failures``), and the count is reset
  only by a right code — so the password alone buys no more guesses — and not while
  password attempts are being checked (:mod:`ivr.console.users`).
* **Who must**: ``console.require_2fa`` (``none`` | ``operators`` | ``all``); the others
  may turn it on from their account page. An operator (CLI ``arspay console
  reset-2fa``) removes a lost one.

The secrets are encrypted with AES-256-GCM under the key in ``console.mfa_key_file``
(made on first use, mode 0600), with the user id as associated data, so a copy of the
database alone makes no codes and a secret cannot be moved to another user's row. The
secret is never logged nor audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import segno
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import Clock
from ivr.console import totp
from ivr.console.errors import LockedOut, LoginFailed
from ivr.console.users import User, audit_user, count_failure, pending_logins, user_view
from ivr.errors import Conflict, InvalidInput, NotFound
from ivr.settings import Settings
from ivr.store.db import Database
from ivr.store.sealing import SealingKey
from ivr.store.tables import ConsoleUser

log = logging.getLogger(__name__)


def key_path(settings: Settings) -> Path:
    return settings.console.mfa_key_file or settings.paths.var_dir / "console" / "mfa.key"


class MfaKey(SealingKey):
    """The console's key file (``console.mfa_key_file``)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "console totp")


@dataclass(frozen=True, slots=True)
class Setup:
    """What the user copies into an authenticator app, shown once."""

    secret: str = ""  # base32, spaced in fours for reading
    qr: str = ""  # the otpauth URI as an SVG QR code, a data: URI for <img src>

    def __repr__(self) -> str:
        return "Setup(…)"


class SecondFactor:
    def __init__(self, db: Database, clock: Clock, settings: Settings, key: MfaKey) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings.console
        self.key = key
        self.issuer = "arspay"

    def required_for(self, user: User) -> bool:
        rule = self.settings.require_2fa
        return rule == "all" or (rule == "operators" and user.is_operator)

    async def _row(self, s: AsyncSession, user_id: str) -> ConsoleUser:
        row = await s.get(ConsoleUser, user_id, with_for_update=True)
        if row is None or row.status != "active":
            raise NotFound(f"console user {user_id} not found")
        return row

    async def setup(self, user: User) -> Setup:
        """The secret being set up for ``user``: the one shown before and not yet
        confirmed (a reload or a mistyped code must not change what the app has), else
        a new one. :class:`Conflict` once a second factor is on."""
        fresh = totp.new_secret()
        sealed = self.key.seal(fresh, user.id)
        async with self.db.transaction() as s:
            row = await self._row(s, user.id)
            if row.totp_enabled_at is not None:
                raise Conflict("a second factor is already set up")
            if row.totp_secret is not None:
                secret = self.key.open(row.totp_secret, row.id)
            else:
                secret = fresh
                row.totp_secret = sealed
                row.totp_last_step = None
        uri = totp.otpauth_uri(secret, user.email, self.issuer)
        text = totp.b32(secret)
        return Setup(
            secret=" ".join(text[i : i + 4] for i in range(0, len(text), 4)),
            qr=segno.make(uri, error="m").svg_data_uri(scale=4, border=2),
        )

    async def confirm(self, user: User, code: str, *, actor: str) -> None:
        """Turn the second factor on once ``code`` comes from the secret just shown."""
        async with self.db.transaction() as s:
            row = await self._row(s, user.id)
            if row.totp_enabled_at is not None:
                raise Conflict("a second factor is already set up")
            if row.totp_secret is None:
                raise InvalidInput("start setting up the second factor first")
            secret = self.key.open(row.totp_secret, row.id)
            step = totp.matching_step(secret, code, self.clock.now().timestamp(), after=None)
            if step is None:
                raise InvalidInput("that code is not right; check the app and the time")
            row.totp_enabled_at = self.clock.now()
            row.totp_last_step = step
            audit_user(s, self.clock, row, "console_user.2fa_enabled", actor=actor)

    async def verify(self, user_id: str, code: str, *, purpose: str = "login") -> User:
        """The login's second half: the user, or :class:`LoginFailed` (wrong, reused or
        malformed code) / :class:`LockedOut`. ``purpose`` other than ``login``: a code
        asked to confirm a change (turning the second factor off), audited as such."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            row = await self._row(s, user_id)
            if row.locked_until is not None and row.locked_until > now:
                raise LockedOut("too many failed logins; try again later")
            if row.totp_enabled_at is None or row.totp_secret is None:
                raise LoginFailed("no second factor is set up")
            secret = self.key.open(row.totp_secret, row.id)
            step = totp.matching_step(secret, code, now.timestamp(), after=row.totp_last_step)
            if step is not None:
                row.totp_last_step = step
                if pending_logins(row, now) == 0:  # never under a burst of password guesses
                    row.failed_logins = 0
                    row.locked_until = None
                if purpose == "login":
                    row.last_login_at = now
                    audit_user(
                        s,
                        self.clock,
                        row,
                        "console.login",
                        actor=f"console:{row.id}",
                        details={"second_factor": "totp"},
                    )
                return user_view(row)
            locked = count_failure(row, now, self.settings)
            audit_user(
                s,
                self.clock,
                row,
                "console.2fa_failed",
                actor="console:anonymous",
                details={"locked": locked},
            )
        if locked:
            raise LockedOut("too many failed logins; try again later")
        raise LoginFailed("wrong code")

    async def remove(self, user_id: str, *, actor: str) -> None:
        """Turn the second factor off (the user's own choice, or an operator's reset of
        a lost phone); the user sets up a new one at the next login where required."""
        async with self.db.transaction() as s:
            row = await self._row(s, user_id)
            was_on = row.totp_enabled_at is not None
            row.totp_secret = None
            row.totp_enabled_at = None
            row.totp_last_step = None
            if was_on:
                audit_user(s, self.clock, row, "console_user.2fa_removed", actor=actor)
