"""Log in, log out, switch language.

The login form has no session yet, so its CSRF defence is a double-submit token: a
random value in a short-lived SameSite=Strict cookie that the form must repeat. A
failed login answers the same message for an unknown email, a wrong password and a
disabled user; a locked account says it is locked (the lockout itself is no secret).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from ivr.console.access import LANG_COOKIE, SESSION_COOKIE, Deps, Writer, language, same_origin
from ivr.console.errors import LockedOut, LoginFailed
from ivr.console.i18n import LANGS, text
from ivr.console.render import page
from ivr.console.web import url

router = APIRouter()
LOGIN_CSRF_COOKIE = "arspay_login_csrf"


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
                        samesite="strict", path="/console/login")  # fmt: skip
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
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    lang = language(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not same_origin(request) or not cookie or not hmac.compare_digest(cookie, csrf_token):
        return _login_form(request, error=text(lang, "error.csrf"), status_code=403)
    try:
        user = await deps.users.login(email, password)
    except LockedOut:
        return _login_form(request, error=text(lang, "login.locked"), status_code=429)
    except LoginFailed:
        return _login_form(request, error=text(lang, "login.failed"), status_code=401)
    opened = await deps.sessions.open(user)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        opened.token,
        httponly=True,
        samesite="strict",
        secure=deps.settings.console.secure_cookie,
        path="/console",
        max_age=deps.settings.console.session_max_hours * 3600,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return response


@router.post("/logout")
async def logout(request: Request, deps: Deps, who: Writer) -> Response:
    await deps.sessions.close(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(url("/login"), status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.get("/lang/{to}")
async def switch_language(to: str, request: Request) -> Response:
    """Switch the page language (a cookie; nothing else changes, so a GET is fine)."""
    response = RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    if to in LANGS:
        response.set_cookie(LANG_COOKIE, to, max_age=365 * 86400, samesite="lax", path="/console")
    return response
