"""The console lockout against parallel guesses (SQLite and PostgreSQL): the failure
count and the lock are checked, and a place reserved, in one locked transaction before
any password is hashed; a right password is re-checked when it settles and never
resets a count a concurrent burst is adding to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import func, select

import ivr.console.users as users_module
from ivr.clock import FakeClock
from ivr.console.errors import LockedOut, LoginFailed
from ivr.console.users import ConsoleUsers, User
from ivr.settings import Settings
from ivr.store.db import Database
from ivr.store.tables import AuditLog, ConsoleUser
from tests.console.conftest import PASSWORD, Console, try_login

pytestmark = pytest.mark.anyio
RESERVE_FOR: timedelta = getattr(users_module, "RESERVE_FOR", timedelta(seconds=60))
EMAIL = "op@arspay.test"
WRONG = "wrong password!!"


async def test_a_burst_of_100_parallel_wrong_passwords_locks_the_account(
    console: Console,
) -> None:
    await console.user(EMAIL)
    limit = console.api.settings.console.lockout_failures
    answers = await asyncio.gather(*(try_login(console.client(), EMAIL, WRONG) for _ in range(100)))
    codes = [r.status_code for r in answers]
    assert codes.count(401) <= limit, codes  # at most `limit` guesses were ever compared
    assert codes.count(401) + codes.count(429) == 100
    assert (await try_login(console.client(), EMAIL, PASSWORD)).status_code == 429
    async with console.api.db.sessions() as s:
        failed = await s.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "console.login_failed")
        )
        row = await s.scalar(select(ConsoleUser).where(ConsoleUser.email == EMAIL))
    assert failed == codes.count(401)
    assert row is not None
    assert row.locked_until is not None
    assert getattr(row, "logins_pending", 0) == 0  # every place taken was given back


@pytest.fixture
def users(db: Database, clock: FakeClock, settings: Settings) -> ConsoleUsers:
    return ConsoleUsers(db, clock, settings.console)


@contextmanager
def held_passwords(
    monkeypatch: pytest.MonkeyPatch, held: str
) -> Iterator[tuple[asyncio.Event, asyncio.Event]]:
    """Checking ``held`` waits at the compare until the first event is set; the second
    event says such a check has begun (its place is reserved by then)."""
    release, begun = asyncio.Event(), asyncio.Event()
    real: Callable[[str | None, str], Awaitable[bool]] = users_module.verify_password

    async def verify(stored: str | None, password: str) -> bool:
        if password == held:
            begun.set()
            await release.wait()
        return await real(stored, password)

    monkeypatch.setattr(users_module, "verify_password", verify)
    yield release, begun


@asynccontextmanager
async def right_login_held(
    users: ConsoleUsers, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[asyncio.Event, asyncio.Task[User]]]:
    """A login with the right password, held at the compare (its place reserved) while
    the block runs; yields the event that lets it go on, and the login's task."""
    with held_passwords(monkeypatch, PASSWORD) as (release, begun):
        right = asyncio.create_task(users.login(EMAIL, PASSWORD))
        await begun.wait()
        yield release, right


async def _guess_wrong(users: ConsoleUsers, times: int) -> None:
    for _ in range(times):
        with pytest.raises(LoginFailed):
            await users.login(EMAIL, WRONG)


async def _failures(db: Database) -> tuple[int, bool]:
    async with db.sessions() as s:
        row = await s.scalar(select(ConsoleUser).where(ConsoleUser.email == EMAIL))
    assert row is not None
    return row.failed_logins, row.locked_until is not None


async def test_a_right_password_checked_during_a_burst_does_not_reset_its_count(
    users: ConsoleUsers, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The right password starts first and is still being hashed while four wrong
    guesses settle: it lets its user in, but the four failures stay counted, so the
    fifth guess locks the account (before: the right password set the count to 0 and
    the burst started over)."""
    await users.create(EMAIL, PASSWORD, role="operator")
    limit = users.settings.lockout_failures
    async with right_login_held(users, monkeypatch) as (release, right):
        await _guess_wrong(users, limit - 1)
        release.set()
        assert (await right).email == EMAIL
    assert await _failures(db) == (limit - 1, False)
    with pytest.raises(LoginFailed):  # the guess that reaches the limit
        await users.login(EMAIL, WRONG)
    assert await _failures(db) == (0, True)  # locked (the count starts over after it)
    with pytest.raises(LockedOut):
        await users.login(EMAIL, PASSWORD)


async def test_a_right_password_is_refused_if_a_burst_locked_the_account_meanwhile(
    users: ConsoleUsers, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await users.create(EMAIL, PASSWORD, role="operator")
    limit = users.settings.lockout_failures
    async with right_login_held(users, monkeypatch) as (release, right):
        # the right attempt holds one place: limit - 1 wrong guesses fit beside it...
        await _guess_wrong(users, limit - 1)
        # ...and a further one does not, without being compared
        with pytest.raises(LockedOut):
            await users.login(EMAIL, WRONG)
        release.set()
        user = await right
    assert user.email == EMAIL
    assert await _failures(db) == (limit - 1, False)


async def test_attempts_being_checked_hold_their_places_until_they_settle_or_lapse(
    users: ConsoleUsers, db: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``limit`` attempts in flight fill every place: the next one is refused before its
    password is compared, even the right one. Places of attempts that never settle (a
    process that died mid-check) lapse after RESERVE_FOR."""
    await users.create(EMAIL, PASSWORD, role="operator")
    limit = users.settings.lockout_failures
    with held_passwords(monkeypatch, WRONG) as (release, begun):
        stuck = [asyncio.create_task(users.login(EMAIL, WRONG)) for _ in range(limit)]
        while True:  # every one of them has its place
            async with db.sessions() as s:
                row = await s.scalar(select(ConsoleUser).where(ConsoleUser.email == EMAIL))
            assert row is not None
            if getattr(row, "logins_pending", limit) == limit:
                break
            await asyncio.sleep(0.01)
        assert begun.is_set()
        with pytest.raises(LockedOut):
            await users.login(EMAIL, PASSWORD)
        for task in stuck:  # as if their process died: the places are never given back
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        with pytest.raises(LockedOut):
            await users.login(EMAIL, PASSWORD)
        clock.advance(RESERVE_FOR + timedelta(seconds=1))
        assert (await users.login(EMAIL, PASSWORD)).email == EMAIL
        release.set()
    assert await _failures(db) == (0, False)


async def test_a_right_code_does_not_reset_the_count_while_passwords_are_being_checked(
    users: ConsoleUsers,
    db: Database,
    clock: FakeClock,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One-time codes share the count: a right code resets it, but not while password
    guesses of a burst are still being checked."""
    import base64

    from ivr.console import totp
    from ivr.console.mfa import MfaKey, SecondFactor, key_path

    mfa = SecondFactor(db, clock, settings, MfaKey(key_path(settings)))
    user = await users.create(EMAIL, PASSWORD, role="operator")
    shown = (await mfa.setup(user)).secret.replace(" ", "")
    secret = base64.b32decode(shown + "=" * (-len(shown) % 8))

    def code() -> str:
        return totp.hotp(secret, totp.step_at(clock.now().timestamp()))

    await mfa.confirm(user, code(), actor="test")
    clock.advance(30)
    for _ in range(2):
        with pytest.raises(LoginFailed):
            await mfa.verify(user.id, "000000" if code() != "000000" else "111111")
    with held_passwords(monkeypatch, WRONG) as (release, begun):
        guess = asyncio.create_task(users.login(EMAIL, WRONG))
        await begun.wait()
        await mfa.verify(user.id, code())  # right: the login goes on...
        assert await _failures(db) == (2, False)  # ...but the count stays
        release.set()
        with pytest.raises(LoginFailed):
            await guess
    assert await _failures(db) == (3, False)
    clock.advance(30)
    await mfa.verify(user.id, code())  # nothing pending: now it resets
    assert await _failures(db) == (0, False)
