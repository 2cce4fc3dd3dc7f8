"""The console's second factor: TOTP codes (RFC 6238) after the password.

Set up from the account page or, where ``console.require_2fa`` covers the user, at
login; a half-done login opens no page; a code works once; wrong codes lock the
account like wrong passwords and the password alone does not reset the count; the
secret is stored encrypted under an owner-only key file; the CLI resets a lost one.
"""

from __future__ import annotations

import base64
import re
import stat
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from ivr.console import totp
from ivr.console.mfa import key_path
from ivr.store.tables import AuditLog, ConsoleSession, ConsoleUser
from tests.cli.test_cli import arspay
from tests.console.conftest import PASSWORD, Console, csrf_of, post, try_login

pytestmark = pytest.mark.anyio

_SECRET = re.compile(r'data-testid="mfa-secret">([A-Z2-7 ]+)<')


def test_codes_are_rfc_6238s() -> None:
    """RFC 6238 appendix B (SHA-1, 8 digits) and RFC 4226 appendix D (6 digits)."""
    secret = b"12345678901234567890"
    for at, code in [(59, "94287082"), (1111111109, "07081804"), (1234567890, "89005924"),
                     (2000000000, "69279037"), (20000000000, "65353130")]:  # fmt: skip
        assert totp.hotp(secret, totp.step_at(at), 8) == code
    assert [totp.hotp(secret, i) for i in (0, 1, 9)] == ["755224", "287082", "520489"]


def test_a_code_matches_within_one_step_and_only_after_the_last_one_used() -> None:
    secret = totp.new_secret()
    now = 1_800_000_000.0
    step = totp.step_at(now)
    code = totp.hotp(secret, step)
    assert totp.matching_step(secret, code, now, after=None) == step
    assert totp.matching_step(secret, f"{code[:3]} {code[3:]}", now, after=None) == step
    assert totp.matching_step(secret, code, now + 30, after=None) == step  # phone 30 s slow
    assert totp.matching_step(secret, code, now + 60, after=None) is None
    assert totp.matching_step(secret, code, now, after=step) is None  # used: no replay
    for bad in ("", "12345", "1234567", "abcdef", "１２３４５６"):
        assert totp.matching_step(secret, bad, now, after=None) is None


def secret_of(html: str) -> bytes:
    found = _SECRET.search(html)
    assert found, "no set-up key on the page"
    text = found.group(1).replace(" ", "")
    return base64.b32decode(text + "=" * (-len(text) % 8))


def code_now(console: Console, secret: bytes, *, later_s: float = 0) -> str:
    at = console.api.clock.now().timestamp() + later_s
    return totp.hotp(secret, totp.step_at(at))


async def enroll_on_account_page(console: Console, c: httpx.AsyncClient) -> bytes:
    shown = await c.get("/console/account/2fa")
    assert shown.status_code == 200
    assert 'data-testid="mfa-qr"' in shown.text
    assert 'src="data:image/svg+xml' in shown.text
    secret = secret_of(shown.text)
    again = await c.get("/console/account/2fa")  # a reload shows the same key
    assert secret_of(again.text) == secret
    form = {"code": code_now(console, secret), "csrf_token": csrf_of(shown.text)}
    r = await c.post("/console/account/2fa", data=form)
    assert r.status_code == 303, r.text
    return secret


async def password_step(console: Console, email: str) -> tuple[httpx.AsyncClient, str]:
    c = console.client()
    r = await try_login(c, email, PASSWORD)
    assert r.status_code == 303
    return c, r.headers["location"]


async def audit_actions(console: Console) -> list[str]:
    async with console.api.db.sessions() as s:
        return list(await s.scalars(select(AuditLog.action).order_by(AuditLog.id)))


async def test_set_up_on_the_account_page_then_log_in_with_a_code(console: Console) -> None:
    await console.user("op@arspay.test")
    c = await console.login("op@arspay.test")
    page = await c.get("/console/account")
    assert page.status_code == 200
    assert 'data-testid="mfa-setup-link"' in page.text
    shown = await c.get("/console/account/2fa")
    wrong = await c.post("/console/account/2fa",
                         data={"code": "000000", "csrf_token": csrf_of(shown.text)})  # fmt: skip
    if wrong.status_code != 303:  # (000000 could be right, once in a million)
        assert wrong.status_code == 422
        assert 'data-testid="account-error"' in wrong.text
    secret = await enroll_on_account_page(console, c)
    assert "console_user.2fa_enabled" in await audit_actions(console)

    # the secret at rest: sealed, not the key the user typed; the key file owner-only
    async with console.api.db.sessions() as s:
        row = await s.scalar(select(ConsoleUser).where(ConsoleUser.email == "op@arspay.test"))
    assert row is not None
    assert row.totp_secret is not None
    assert row.totp_secret.startswith("v1:")
    assert totp.b32(secret) not in row.totp_secret
    assert base64.b64encode(secret).decode() not in row.totp_secret
    mode = key_path(console.api.settings).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600

    # the next login: the password opens a half-done session that opens no page
    b, location = await password_step(console, "op@arspay.test")
    assert location == "/console/login/code?next=/console/"
    pending = b.cookies.get("arspay_console")
    assert pending
    assert (await b.get("/console/")).status_code == 303
    form = await b.get(location)
    assert form.status_code == 200
    assert 'autocomplete="one-time-code"' in form.text
    csrf = csrf_of(form.text)
    r = await b.post("/console/login/code", data={"code": "12345", "csrf_token": csrf})
    assert r.status_code == 401
    r = await b.post("/console/login/code",
                     data={"code": code_now(console, secret), "csrf_token": "forged"})  # fmt: skip
    assert r.status_code == 403
    # the code the set-up used is spent; the next step's works
    r = await b.post("/console/login/code",
                     data={"code": code_now(console, secret), "csrf_token": csrf})  # fmt: skip
    assert r.status_code == 401
    console.api.clock.advance(timedelta(seconds=30))
    form = {"code": code_now(console, secret), "csrf_token": csrf, "next": "/console/payments"}
    r = await b.post("/console/login/code", data=form)
    assert r.status_code == 303
    assert r.headers["location"] == "/console/payments"
    full = b.cookies.get("arspay_console")
    assert full
    assert full != pending  # a new token after the second factor
    assert (await b.get("/console/payments")).status_code == 200
    b.cookies.set("arspay_console", pending, domain="console.test", path="/console")
    assert (await b.get("/console/")).status_code == 303  # the half-done one is gone
    actions = await audit_actions(console)
    assert actions.count("console.password_accepted") == 1
    assert actions.count("console.2fa_failed") == 2  # the malformed and the spent code
    async with console.api.db.sessions() as s:
        logins = list(await s.scalars(select(AuditLog).where(AuditLog.action == "console.login")))
    assert logins[-1].details == {"second_factor": "totp"}


async def test_code_guesses_lock_the_account_and_the_password_does_not_reset_them(
    console: Console,
) -> None:
    await console.user("op@arspay.test")
    secret = await enroll_on_account_page(console, await console.login("op@arspay.test"))
    console.api.clock.advance(timedelta(seconds=60))
    limit = console.api.settings.console.lockout_failures
    for attempt in range(limit):
        # a fresh password step each time: it must not buy a fresh round of guesses
        b, location = await password_step(console, "op@arspay.test")
        form = await b.get(location)
        wrong = "111111" if code_now(console, secret) != "111111" else "222222"
        r = await b.post("/console/login/code",
                         data={"code": wrong, "csrf_token": csrf_of(form.text)})  # fmt: skip
        assert r.status_code == (429 if attempt == limit - 1 else 401), attempt
    assert "arspay_console" not in r.cookies or not r.cookies.get("arspay_console")
    # locked: neither the password nor the right code gets in
    assert (await try_login(console.client(), "op@arspay.test", PASSWORD)).status_code == 429
    console.api.clock.advance(timedelta(minutes=console.api.settings.console.lockout_minutes))
    b, location = await password_step(console, "op@arspay.test")
    form = await b.get(location)
    data = {"code": code_now(console, secret), "csrf_token": csrf_of(form.text)}
    r = await b.post("/console/login/code", data=data)
    assert r.status_code == 303
    async with console.api.db.sessions() as s:
        locks = list(await s.scalars(
            select(AuditLog).where(AuditLog.action == "console.2fa_failed")))  # fmt: skip
    assert [a.details for a in locks][-1] == {"locked": True}


async def test_a_half_done_login_expires(console: Console) -> None:
    await console.user("op@arspay.test")
    secret = await enroll_on_account_page(console, await console.login("op@arspay.test"))
    b, location = await password_step(console, "op@arspay.test")
    form = await b.get(location)
    console.api.clock.advance(timedelta(minutes=6))
    data = {"code": code_now(console, secret), "csrf_token": csrf_of(form.text)}
    r = await b.post("/console/login/code", data=data)
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login"
    async with console.api.db.sessions() as s:
        stages = list(await s.scalars(select(ConsoleSession.stage)))
    assert stages == [None, "code"]  # the account page's session, and the stale one


async def test_required_second_factor_is_set_up_at_login(console: Console) -> None:
    mfa = console.deps.mfa
    mfa.settings = mfa.settings.model_copy(update={"require_2fa": "operators"})
    await console.user("op@arspay.test")
    _, merchant = await console.tenant("행복치과")  # merchant users are not covered
    assert (await merchant.get("/console/")).status_code == 200

    b, location = await password_step(console, "op@arspay.test")
    assert location == "/console/login/enroll?next=/console/"
    assert (await b.get("/console/")).status_code == 303
    shown = await b.get(location)
    assert shown.status_code == 200
    assert 'data-testid="mfa-qr"' in shown.text
    secret = secret_of(shown.text)
    assert secret_of((await b.get(location)).text) == secret
    csrf = csrf_of(shown.text)
    r = await b.post("/console/login/enroll", data={"code": "000001", "csrf_token": csrf})
    if r.status_code != 303:
        assert r.status_code == 422
        assert secret_of(r.text) == secret  # the same key again, not a new one
    r = await b.post("/console/login/enroll",
                     data={"code": code_now(console, secret), "csrf_token": csrf})  # fmt: skip
    assert r.status_code == 303
    assert (await b.get("/console/")).status_code == 200
    account = await b.get("/console/account")
    assert "/console/account/2fa/remove" not in account.text  # required: cannot turn off
    r = await post(b, "/console/account", "/console/account/2fa/remove",
                   {"code": code_now(console, secret)})  # fmt: skip
    assert r.status_code == 403

    # the next login asks for a code, not a set-up
    console.api.clock.advance(timedelta(seconds=30))
    _, location = await password_step(console, "op@arspay.test")
    assert location.startswith("/console/login/code")


async def test_turning_it_off_takes_a_current_code(console: Console) -> None:
    await console.user("op@arspay.test")
    c = await console.login("op@arspay.test")
    secret = await enroll_on_account_page(console, c)
    console.api.clock.advance(timedelta(seconds=30))
    r = await post(c, "/console/account", "/console/account/2fa/remove", {"code": "99999"})
    assert r.status_code == 401
    r = await post(c, "/console/account", "/console/account/2fa/remove",
                   {"code": code_now(console, secret)})  # fmt: skip
    assert r.status_code == 303
    assert "console_user.2fa_removed" in await audit_actions(console)
    _, location = await password_step(console, "op@arspay.test")
    assert location == "/console/"  # the password alone again


async def test_a_lost_phone_is_reset_on_the_command_line(console: Console, db_url: str) -> None:
    user_id = await console.user("op@arspay.test")
    c = await console.login("op@arspay.test")
    await enroll_on_account_page(console, c)
    out = arspay("console", "reset-2fa", user_id, url=db_url,
                 env={"ARSPAY_PATHS_VAR_DIR": str(console.api.settings.paths.var_dir)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (await c.get("/console/")).status_code == 303  # sessions ended
    _, location = await password_step(console, "op@arspay.test")
    assert location == "/console/"
    async with console.api.db.sessions() as s:
        row = await s.scalar(select(ConsoleUser).where(ConsoleUser.id == user_id))
    assert row is not None
    assert row.totp_secret is None
    assert row.totp_enabled_at is None
