"""Console users: create, log in (with lockout), change password, disable.

Lockout: ``settings.lockout_failures`` wrong passwords in a row lock the user for
``settings.lockout_minutes``; while locked even the right password is refused (and not
checked, so a locked account cannot be used as a password oracle). Every change is in
the audit log (actor ``console:usr_…`` or ``cli``); failed logins are audited too,
never with the password tried.

Against a burst of parallel guesses the count is *reserved* before any hashing: one
locked transaction (``SELECT … FOR UPDATE``; on SQLite the write lock) checks the lock
and the failures plus the attempts still being checked, refuses when they reach the
limit, and adds this attempt to ``logins_pending``. Only then is the argon2 hash
compared, outside any transaction, and a second locked transaction settles the
attempt: a wrong password becomes a failure (and may lock), a right one is re-checked
against a lock a concurrent burst set meanwhile. So at most ``lockout_failures``
guesses are ever compared per lockout, however many arrive at once. A right password
resets the count only when no other attempt is pending and no failure settled while it
was being checked: it never wipes a count that a concurrent burst is adding to. A
reservation whose process died lapses after :data:`RESERVE_FOR`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.audit import audit
from ivr.clock import Clock
from ivr.console.errors import LockedOut, LoginFailed
from ivr.console.passwords import hash_password, needs_rehash, verify_password
from ivr.domain.ids import new_id
from ivr.domain.text import check_text
from ivr.errors import Conflict, InvalidInput, NotFound
from ivr.settings import ConsoleSettings
from ivr.store.db import Database
from ivr.store.tables import ConsoleUser, Merchant

RESERVE_FOR = timedelta(seconds=60)  # a pending login attempt holds its place this long
Role = Literal["operator", "merchant"]
ROLES: tuple[Role, ...] = ("operator", "merchant")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    role: Role
    merchant_id: str | None
    second_factor: bool = False  # a TOTP code is asked after the password

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    @property
    def actor(self) -> str:
        return f"console:{self.id}"


@dataclass(frozen=True, slots=True)
class _Held:
    """A login attempt's reserved place: what to compare the password with."""

    user_id: str
    password_hash: str | None  # None: a disabled user (compared with a dummy, never true)
    rehash: bool
    failures_seen: int  # the settled failures when the place was taken

    def __repr__(self) -> str:
        return f"_Held({self.user_id})"


def pending_logins(row: ConsoleUser, now: datetime) -> int:
    """Attempts whose password is still being checked (their places lapse after
    :data:`RESERVE_FOR`)."""
    live = row.logins_pending_until is not None and row.logins_pending_until > now
    return row.logins_pending if live else 0


def count_failure(row: ConsoleUser, now: datetime, settings: ConsoleSettings) -> bool:
    """Count one wrong password or code; the ``lockout_failures``-th locks the user for
    ``lockout_minutes`` and starts the count again. Whether this one locked."""
    row.failed_logins += 1
    if row.failed_logins < settings.lockout_failures:
        return False
    row.failed_logins = 0
    row.locked_until = now + timedelta(minutes=settings.lockout_minutes)
    return True


def user_view(row: ConsoleUser) -> User:
    role: Role = "operator" if row.role == "operator" else "merchant"
    return User(row.id, row.email, role, row.merchant_id, row.totp_enabled_at is not None)


def clean_email(email: str) -> str:
    email = check_text(email, "email").strip().lower()
    if not _EMAIL.match(email):
        raise InvalidInput("not an email address")
    return email


def audit_user(
    s: AsyncSession,
    clock: Clock,
    row: ConsoleUser,
    action: str,
    *,
    actor: str,
    details: dict[str, Any] | None = None,
) -> None:
    """The audit row of a change to the console user ``row`` (its merchant's, if any), in
    the change's transaction: the users' changes here and the second factor's in mfa.py."""
    audit(
        s,
        clock,
        actor=actor,
        action=action,
        object_type="console_user",
        object_id=row.id,
        merchant_id=row.merchant_id,
        details=details,
    )


async def _user_row(s: AsyncSession, user_id: str) -> ConsoleUser:
    """The user's row to change (a disabled user's too), or :class:`NotFound`."""
    row = await s.get(ConsoleUser, user_id)
    if row is None:
        raise NotFound(f"console user {user_id} not found")
    return row


@dataclass(frozen=True, slots=True)
class ConsoleUsers:
    db: Database
    clock: Clock
    settings: ConsoleSettings

    async def create(
        self,
        email: str,
        password: str,
        *,
        role: Role,
        merchant_id: str | None = None,
        actor: str = "cli",
    ) -> User:
        email = clean_email(email)
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
        if (role == "merchant") != (merchant_id is not None):
            raise InvalidInput("a merchant user needs a merchant; an operator has none")
        hashed = await hash_password(password)
        async with self.db.transaction() as s:
            if merchant_id is not None and await s.get(Merchant, merchant_id) is None:
                raise NotFound(f"merchant {merchant_id} not found")
            taken = await s.scalar(select(ConsoleUser.id).where(ConsoleUser.email == email))
            if taken is not None:
                raise Conflict("a console user with this email exists")
            row = ConsoleUser(
                id=new_id("usr"),
                email=email,
                password_hash=hashed,
                role=role,
                merchant_id=merchant_id,
                status="active",
                failed_logins=0,
                locked_until=None,
                logins_pending=0,
                last_login_at=None,
                created_at=self.clock.now(),
            )
            s.add(row)
            audit_user(
                s, self.clock, row, "console_user.created", actor=actor, details={"role": role}
            )
        return user_view(row)

    async def get(self, user_id: str) -> User:
        async with self.db.sessions() as s:
            row = await s.get(ConsoleUser, user_id)
        if row is None or row.status != "active":
            raise NotFound(f"console user {user_id} not found")
        return user_view(row)

    async def list(self, merchant_id: str | None = None) -> list[User]:
        q = select(ConsoleUser).where(ConsoleUser.status == "active").order_by(ConsoleUser.email)
        if merchant_id is not None:
            q = q.where(ConsoleUser.merchant_id == merchant_id)
        async with self.db.sessions() as s:
            return [user_view(r) for r in await s.scalars(q)]

    async def login(self, email: str, password: str) -> User:
        """The user, or :class:`LoginFailed` / :class:`LockedOut`.

        For a user with a second factor the right password is only half a login: the
        failure count is not reset (else each right password would buy another round of
        code guesses) and the login is audited when the code is right
        (:meth:`ivr.console.mfa.SecondFactor.verify`)."""
        try:
            email = clean_email(email)
        except InvalidInput:
            await verify_password(None, password)
            raise LoginFailed("wrong email or password") from None
        held = await self._reserve(email)
        ok = await verify_password(held.password_hash if held else None, password)
        if held is None:
            raise LoginFailed("wrong email or password")
        rehash = await hash_password(password) if ok and held.rehash else None
        user, outcome = await self._settle(held, ok, rehash)
        if outcome is not None:
            raise outcome
        return user

    async def _reserve(self, email: str) -> _Held | None:
        """Check the lock and the count and take a place for this attempt, in one locked
        transaction; ``None`` for an unknown email (nothing to count)."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            row = await s.scalar(
                select(ConsoleUser).where(ConsoleUser.email == email).with_for_update()
            )
            if row is None:
                return None
            if row.locked_until is not None and row.locked_until > now:
                raise LockedOut("too many failed logins; try again later")
            pending = pending_logins(row, now)
            if row.failed_logins + pending >= self.settings.lockout_failures:
                raise LockedOut("too many login attempts at once; try again later")
            row.logins_pending = pending + 1
            row.logins_pending_until = now + RESERVE_FOR
            usable = row.status == "active"
            return _Held(
                row.id,
                row.password_hash if usable else None,
                usable and needs_rehash(row.password_hash),
                row.failed_logins,
            )

    async def _settle(
        self, held: _Held, ok: bool, rehash: str | None
    ) -> tuple[User, LoginFailed | LockedOut | None]:
        """Count the attempt checked under ``held``: the user, and what to raise."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            row = await s.get(ConsoleUser, held.user_id, with_for_update=True)
            assert row is not None  # users are disabled, never deleted
            row.logins_pending = max(0, pending_logins(row, now) - 1)
            locked_now = row.locked_until is not None and row.locked_until > now
            if ok and locked_now:  # a concurrent burst locked the account meanwhile
                return user_view(row), LockedOut("too many failed logins; try again later")
            if ok:
                if rehash is not None:
                    row.password_hash = rehash
                code_next = row.totp_enabled_at is not None
                if not code_next:
                    if row.logins_pending == 0 and row.failed_logins == held.failures_seen:
                        row.failed_logins = 0
                        row.locked_until = None
                    row.last_login_at = now
                audit_user(
                    s,
                    self.clock,
                    row,
                    "console.password_accepted" if code_next else "console.login",
                    actor=f"console:{row.id}",
                )
                return user_view(row), None
            # (a guess settling after the lock is covered by it)
            locked = not locked_now and count_failure(row, now, self.settings)
            audit_user(
                s,
                self.clock,
                row,
                "console.login_failed",
                actor="console:anonymous",
                details={"locked": locked},
            )
            return user_view(row), LoginFailed("wrong email or password")

    async def set_password(self, user_id: str, password: str, *, actor: str) -> None:
        hashed = await hash_password(password)
        async with self.db.transaction() as s:
            row = await _user_row(s, user_id)
            row.password_hash = hashed
            row.failed_logins = 0
            row.locked_until = None
            audit_user(s, self.clock, row, "console_user.password_set", actor=actor)

    async def disable(self, user_id: str, *, actor: str) -> None:
        async with self.db.transaction() as s:
            row = await _user_row(s, user_id)
            row.status = "disabled"
            audit_user(s, self.clock, row, "console_user.disabled", actor=actor)
