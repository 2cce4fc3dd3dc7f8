"""The user's own account: the second factor (TOTP) — its state, setting it up, and
turning it off (with a current code; not where ``console.require_2fa`` covers the user,
whose lost phone an operator resets with ``arspay console reset-2fa``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ivr.console.access import Deps, Reader, Viewer, Writer
from ivr.console.errors import Forbidden, LockedOut, LoginFailed
from ivr.console.mfa import Setup
from ivr.console.pages.fields import CodeField
from ivr.console.render import page
from ivr.console.web import ConsoleDeps, url
from ivr.errors import InvalidInput

router = APIRouter()


def _account(
    request: Request, deps: ConsoleDeps, who: Viewer, *, setup: Setup | None = None,
    error: str | None = None, notice: str | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    return page(request, who, "account.html", status_code=status_code, setup=setup,
                error=error, notice=notice, required=deps.mfa.required_for(who.user))  # fmt: skip


@router.get("/account")
async def account(request: Request, deps: Deps, who: Reader) -> Response:
    done = request.query_params.get("done")
    notice = {"on": "account.mfa_done_on", "off": "account.mfa_done_off"}.get(done or "")
    return _account(request, deps, who, notice=who.t(notice) if notice else None)


@router.get("/account/2fa")
async def setup_form(request: Request, deps: Deps, who: Reader) -> Response:
    if who.user.second_factor:
        return RedirectResponse(url("/account"), status_code=303)
    return _account(request, deps, who, setup=await deps.mfa.setup(who.user))


@router.post("/account/2fa")
async def turn_on(request: Request, deps: Deps, who: Writer, code: CodeField) -> Response:
    try:
        await deps.mfa.confirm(who.user, code, actor=who.actor)
    except InvalidInput:
        return _account(request, deps, who, setup=await deps.mfa.setup(who.user),
                        error=who.t("mfa.wrong"), status_code=422)  # fmt: skip
    return RedirectResponse(url("/account?done=on"), status_code=303)


@router.post("/account/2fa/remove")
async def turn_off(request: Request, deps: Deps, who: Writer, code: CodeField) -> Response:
    if deps.mfa.required_for(who.user):
        raise Forbidden("two-step login is required for this account")
    try:
        await deps.mfa.verify(who.user.id, code, purpose="2fa_remove")
    except LockedOut:
        await deps.sessions.close_all(who.user.id)
        return RedirectResponse(url("/login"), status_code=303)
    except LoginFailed:
        return _account(request, deps, who, error=who.t("mfa.wrong"), status_code=401)
    await deps.mfa.remove(who.user.id, actor=who.actor)
    return RedirectResponse(url("/account?done=off"), status_code=303)
