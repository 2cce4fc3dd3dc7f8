"""Log in (password, then the one-time code where set up), log out, switch language.

The login form has no session yet, so its CSRF defence is a double-submit token: a
random value in a short-lived SameSite=Strict cookie that the form must repeat. A
failed login answers the same message for an unknown email, a wrong password and a
disabled user; a locked account says it is locked (the lockout itself is no secret).

After the right password, a user with a second factor (:mod:`ivr.console.mfa`) gets a
*half-done* session (stage ``code``, 5 minutes, it opens no page) and the code form; a
user whom ``console.require_2fa`` covers and who has none yet gets one at stage
``enroll`` and the set-up form. The right code ends the half-done session and opens a
full one under a new token. The code forms' CSRF token is the half-done session's.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from ivr.console.access import (
    LANG_COOKIE,
    SESSION_COOKIE,
    Deps,
    Writer,
    cookies_secure,
    language,
    same_origin,
)
from ivr.console.errors import LockedOut, LoginFailed
from ivr.console.i18n import LANGS, text
from ivr.console.pages.fields import CodeField
from ivr.console.render import page
from ivr.console.sessions import PENDING_FOR, Current, Opened, Stage
from ivr.console.web import ConsoleDeps, url
from ivr.errors import InvalidInput

router = APIRouter()
LOGIN_CSRF_COOKIE = "arspay_login_csrf"


@dataclass(frozen=True, slots=True)
class Sent:
    """What each login form posts besides its own fields: its CSRF token and where to
    go after logging in."""

    csrf_token: str
    next: str


def sent(
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=300)] = "",
) -> Sent:
    return Sent(csrf_token, next)


Posted = Annotated[Sent, Depends(sent)]


def _safe_next(target: str | None) -> str:
    """Only a path inside the console (no open redirect)."""
    if target and target.startswith("/console/") and "//" not in target and "\\" not in target:
        return target
    return url("/")


def _login_form(request: Request, *, error: str | None, status_code: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    lang = language(request)
    response = page(request, None, "login.html", status_code=status_code, lang=lang,
                    t=lambda key, **v: text(lang, key, **v), error=error, login_csrf=token,
                    next=_safe_next(request.query_params.get("next")))  # fmt: skip
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=1800, httponly=True,
                        samesite="strict", path="/console/login",
                        secure=cookies_secure(request))  # fmt: skip
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _login_form(request, error=None)


@router.post("/login")
async def login(
    request: Request,
    deps: Deps,
    email: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=200)],
    sent: Posted,
) -> Response:
    lang = language(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not same_origin(request) or not cookie or not hmac.compare_digest(cookie, sent.csrf_token):
        return _login_form(request, error=text(lang, "error.csrf"), status_code=403)
    try:
        user = await deps.users.login(email, password)
    except LockedOut:
        return _login_form(request, error=text(lang, "login.locked"), status_code=429)
    except LoginFailed:
        return _login_form(request, error=text(lang, "login.failed"), status_code=401)
    stage: Stage | None = None
    if user.second_factor:
        stage = "code"
    elif deps.mfa.required_for(user):
        stage = "enroll"
    opened = await deps.sessions.open(user, stage=stage)
    target = _safe_next(sent.next)
    if stage is not None:
        target = url(f"/login/{stage}") + "?next=" + quote(target, safe="/")
    response = _with_session(
        request, RedirectResponse(target, status_code=303), deps, opened, stage
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return response


def _with_session(
    request: Request,
    response: Response,
    deps: ConsoleDeps,
    opened: Opened,
    stage: Stage | None = None,
) -> Response:
    lasts = PENDING_FOR.total_seconds() if stage else deps.settings.console.session_max_hours * 3600
    response.set_cookie(
        SESSION_COOKIE,
        opened.token,
        httponly=True,
        samesite="strict",
        secure=cookies_secure(request),
        path="/console",
        max_age=int(lasts),
    )
    return response


def _back_to_login() -> Response:
    response = RedirectResponse(url("/login"), status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


async def _pending(request: Request, deps: ConsoleDeps, stage: Stage) -> Current | None:
    return await deps.sessions.pending(request.cookies.get(SESSION_COOKIE), stage)


async def _code_page(
    request: Request, deps: ConsoleDeps, pending: Current, stage: Stage, *,
    error: str | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    """The code form of ``stage`` (``enroll``: with a fresh set-up secret and QR code),
    saying ``error`` (a text key) if given."""
    lang = language(request)
    setup = await deps.mfa.setup(pending.user) if stage == "enroll" else None
    return page(request, None, "login_code.html", status_code=status_code, lang=lang,
                t=lambda key, **v: text(lang, key, **v),
                error=text(lang, error) if error else None, csrf=pending.csrf, stage=stage,
                setup=setup, email=pending.user.email,
                next=_safe_next(request.query_params.get("next")))  # fmt: skip


async def _code_step(request: Request, deps: ConsoleDeps, stage: Stage) -> Response:
    pending = await _pending(request, deps, stage)
    if pending is None:
        return _back_to_login()
    return await _code_page(request, deps, pending, stage)


async def _checked(
    request: Request, deps: ConsoleDeps, stage: Stage, sent: Sent
) -> Current | Response:
    """The half-done session of ``stage`` the posted code form may act on, else the
    answer: back to the login form (no such session), or the form again (403: the CSRF
    token is not the session's, or another site sent it)."""
    pending = await _pending(request, deps, stage)
    if pending is None:
        return _back_to_login()
    ok = same_origin(request) and Current(pending.user, pending.csrf).csrf_ok(sent.csrf_token)
    if not ok:
        return await _code_page(request, deps, pending, stage, error="error.csrf",
                                status_code=403)  # fmt: skip
    return pending


@router.get("/login/code")
async def code_form(request: Request, deps: Deps) -> Response:
    return await _code_step(request, deps, "code")


@router.post("/login/code")
async def code(request: Request, deps: Deps, code: CodeField, sent: Posted) -> Response:
    return await _submit(request, deps, "code", code, sent)


@router.get("/login/enroll")
async def enroll_form(request: Request, deps: Deps) -> Response:
    return await _code_step(request, deps, "enroll")


@router.post("/login/enroll")
async def enroll(request: Request, deps: Deps, code: CodeField, sent: Posted) -> Response:
    return await _submit(request, deps, "enroll", code, sent)


async def _submit(
    request: Request, deps: ConsoleDeps, stage: Stage, code: str, sent: Sent
) -> Response:
    """A posted code: at ``code`` the app's current one (wrong: 401; too many wrong:
    locked out, back to the login form), at ``enroll`` the first one of the app being
    set up (wrong: 422). The right one ends the half-done session and opens a full one."""
    pending = await _checked(request, deps, stage, sent)
    if isinstance(pending, Response):
        return pending
    try:
        if stage == "code":
            await deps.mfa.verify(pending.user.id, code)
        else:
            await deps.mfa.confirm(pending.user, code, actor=pending.user.actor)
    except LockedOut:
        await deps.sessions.close(request.cookies.get(SESSION_COOKIE))
        response = _login_form(request, error=text(language(request), "login.locked"),
                               status_code=429)  # fmt: skip
        response.delete_cookie(SESSION_COOKIE, path="/console")
        return response
    except (LoginFailed, InvalidInput) as exc:
        return await _code_page(request, deps, pending, stage, error="mfa.wrong",
                                status_code=exc.http_status)  # fmt: skip
    return await _finish(request, deps, stage, sent.next)


async def _finish(request: Request, deps: ConsoleDeps, stage: Stage, next: str) -> Response:
    opened = await deps.sessions.promote(request.cookies.get(SESSION_COOKIE), stage)
    if opened is None:
        return _back_to_login()
    return _with_session(request, RedirectResponse(_safe_next(next), status_code=303), deps, opened)


@router.post("/logout")
async def logout(request: Request, deps: Deps, who: Writer) -> Response:
    await deps.sessions.close(request.cookies.get(SESSION_COOKIE))
    return _back_to_login()


@router.get("/lang/{to}")
async def switch_language(to: str, request: Request) -> Response:
    """Switch the page language (a cookie; nothing else changes, so a GET is fine)."""
    response = RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    if to in LANGS:
        response.set_cookie(LANG_COOKIE, to, max_age=365 * 86400, samesite="lax",
                            path="/console", secure=cookies_secure(request))  # fmt: skip
    return response
