"""Server-side console sessions.

The browser holds a random 256-bit token in an HttpOnly, SameSite=Strict cookie; the
database holds only its SHA-256 (a stolen database copy logs nobody in). A session ends
after ``session_idle_minutes`` without a request, after ``session_max_hours`` in any
case, at logout, or when its user is disabled. Each session has its own CSRF token:
every POST must carry it (form field ``csrf_token`` or header ``X-CSRF-Token``, which
htmx sends from the page's ``hx-headers``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import delete, select

from ivr.clock import Clock
from ivr.console.users import User, user_view
from ivr.settings import ConsoleSettings
from ivr.store.db import Database
from ivr.store.tables import ConsoleSession, ConsoleUser

TOUCH_EVERY = timedelta(seconds=60)  # last_seen_at is written at most this often
PENDING_FOR = timedelta(minutes=5)  # a half-done login (code or set-up to come) lasts this
Stage = Literal["code", "enroll"]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Opened:
    token: str  # for the cookie; never stored
    csrf: str


@dataclass(frozen=True, slots=True)
class Current:
    user: User
    csrf: str

    def csrf_ok(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


class SessionStore:
    def __init__(self, db: Database, clock: Clock, settings: ConsoleSettings) -> None:
        self.db = db
        self.clock = clock
        self.idle = timedelta(minutes=settings.session_idle_minutes)
        self.max_age = timedelta(hours=settings.session_max_hours)

    async def open(self, user: User, *, stage: Stage | None = None) -> Opened:
        """A session; with a ``stage`` a half-done login that opens no page (the
        one-time code, or setting one up, is still to come) and lasts ``PENDING_FOR``."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.clock.now()
        expires = now + (PENDING_FOR if stage is not None else self.max_age)
        async with self.db.transaction() as s:
            s.add(ConsoleSession(id=_digest(token), user_id=user.id, csrf=csrf, created_at=now,
                                 last_seen_at=now, expires_at=expires, stage=stage))  # fmt: skip
        return Opened(token, csrf)

    async def promote(self, token: str | None, stage: Stage) -> Opened | None:
        """Finish a half-done login: its session ends and a full one (a new token: the
        one a browser held before the second factor is worth nothing after) begins."""
        pending = await self.pending(token, stage)
        if pending is None:
            return None
        if not await self.close(token):
            return None  # another request finished this login first
        return await self.open(pending.user)

    async def pending(self, token: str | None, stage: Stage) -> Current | None:
        """The user of a half-done login at ``stage``, or ``None``."""
        return await self._lookup(token, stage)

    async def current(self, token: str | None) -> Current | None:
        """The session's user and CSRF token, or ``None`` (no, unknown, ended or
        half-done session)."""
        return await self._lookup(token, None)

    async def _lookup(self, token: str | None, stage: Stage | None) -> Current | None:
        if not token or len(token) > 100:
            return None
        sid = _digest(token)
        now = self.clock.now()
        async with self.db.sessions() as s:
            found = (
                await s.execute(
                    select(ConsoleSession, ConsoleUser)
                    .join(ConsoleUser, ConsoleUser.id == ConsoleSession.user_id)
                    .where(ConsoleSession.id == sid)
                )
            ).first()
        if found is None:
            return None
        session, user = found
        if session.stage != stage:
            return None
        if user.status != "active" or session.expires_at <= now:
            return None
        if stage is not None:
            return Current(user_view(user), session.csrf)
        if session.last_seen_at + self.idle <= now:
            return None
        if now - session.last_seen_at >= TOUCH_EVERY:
            async with self.db.transaction() as s:
                row = await s.get(ConsoleSession, sid)
                if row is not None:
                    row.last_seen_at = now
        return Current(user_view(user), session.csrf)

    async def close(self, token: str | None) -> bool:
        """End the session; False if there was none."""
        if not token:
            return False
        async with self.db.transaction() as s:
            result = await s.execute(
                delete(ConsoleSession).where(ConsoleSession.id == _digest(token))
            )
        return bool(getattr(result, "rowcount", 0))

    async def close_all(self, user_id: str) -> None:
        async with self.db.transaction() as s:
            await s.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id))

    async def purge(self) -> int:
        """Delete sessions past their hard expiry or idle limit."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            result = await s.execute(
                delete(ConsoleSession).where(
                    (ConsoleSession.expires_at <= now)
                    | (ConsoleSession.last_seen_at <= now - self.idle)
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)
