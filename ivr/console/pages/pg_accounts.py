"""PG accounts (operators only): the accounts cards are registered at, with each one's
circuit breaker, adding one, changing one, disabling and enabling it; and, on a
merchant's settings page, its primary and secondary account (a merchant user sets its
own, as the API lets it).

Secrets (and the API key, shown masked like them) are write-only here: the pages show
them masked (:meth:`~ivr.pg_accounts.model.Account.shown`), their inputs are never
filled in (the secrets' are ``type=password``), and one left empty keeps the stored
value. A refused form
comes back with what was typed, but for the secrets and text the guard refuses.
``default`` (the ``[gateway]`` settings) is listed, never changed here.

Breaker states come from :attr:`ConsoleDeps.breakers <ivr.console.web.ConsoleDeps>`
(the engine's gateways, one per account opened so far); none known: "no calls yet".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from ivr.console.access import Deps, Reader, Viewer, Writer
from ivr.console.pages.common import echoable, refused_text
from ivr.console.pages.fields import FlagParam, IdField, IdParam
from ivr.console.render import page
from ivr.console.web import Breaker
from ivr.errors import ArspayError, InvalidInput
from ivr.pg_accounts.model import DEFAULT, KINDS, OPTIONS, Account, AccountStatus
from ivr.pg_accounts.store import SECRETS

router = APIRouter()
TEXTS = ("name", "base_url", *OPTIONS)  # the form's fields shown back as typed
WRITE_ONLY = ("api_key", *SECRETS)  # shown masked elsewhere: never a form's value
STATES = {  # breaker state → (catalog key, status colour class)
    "closed": ("pg.breaker_closed", "status-active"),
    "half_open": ("pg.breaker_half_open", "status-processing"),
    "open": ("pg.breaker_open", "status-failed"),
}
TEXT_REFUSED = "common.text_refused"
OPTION_LABELS = (  # the form's option fields and their labels
    ("pg", "pg.opt_pg"),
    ("channel_key", "pg.opt_channel_key"),
    ("store_id", "pg.opt_store_id"),
    ("product_type", "pg.opt_product_type"),
    ("buyer_email", "pg.opt_buyer_email"),
)


@dataclass(frozen=True, slots=True)
class BreakerCell:
    """What the list shows of one account's breaker."""

    label: str  # catalog key
    css: str
    failures: int = 0
    retry_at: datetime | None = None


def breaker_cell(b: Breaker | None) -> BreakerCell:
    if b is None:
        return BreakerCell("pg.breaker_none", "")
    label, css = STATES.get(b.state, ("pg.breaker_unknown", ""))
    retry_at = b.retry_at if b.state == "open" else None
    return BreakerCell(label, css, b.consecutive_failures, retry_at)


def form_of(a: Account) -> dict[str, str]:
    """The edit form's values: the stored ones (the key and secrets never)."""
    return {"name": a.name, "base_url": a.base_url,
            **{k: a.options.get(k, "") for k in OPTIONS}}  # fmt: skip


def submitted(form: FormData) -> tuple[dict[str, str], dict[str, str]]:
    """The form's text fields and its write-only ones (``""``: keep / none)."""

    def one(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    texts = {name: one(name) for name in TEXTS}
    if refused_text(texts["name"]):
        raise InvalidInput(TEXT_REFUSED)
    secrets = {name: one(name) for name in WRITE_ONLY}
    return texts, secrets


def shown_back(texts: dict[str, str]) -> dict[str, str]:
    return {k: echoable(v) for k, v in texts.items()}


def _message(who: Viewer, exc: ArspayError) -> str:
    return who.t(TEXT_REFUSED) if exc.message == TEXT_REFUSED else exc.message


async def _list_page(
    request: Request, deps: Deps, who: Viewer, *, form: dict[str, str] | None = None,
    kind: str = "sandbox", account_id: str = "", error: str = "", status_code: int = 200,
) -> Response:  # fmt: skip
    who.operator_only()
    accounts = await deps.api.pg_accounts.list()
    breakers = {b.name: b for b in deps.breakers()}
    rows = [(a.shown(), breaker_cell(breakers.get(a.id))) for a in accounts]
    return page(request, who, "pg_accounts.html", rows=rows, kinds=KINDS, options=OPTION_LABELS,
                form=form or dict.fromkeys(TEXTS, ""), kind=kind, account_id=account_id,
                error=error, status_code=status_code)  # fmt: skip


async def _edit_page(
    request: Request, deps: Deps, who: Viewer, account_id: str, *,
    form: dict[str, str] | None = None, error: str = "", saved: bool = False,
    status_code: int = 200,
) -> Response:  # fmt: skip
    who.operator_only()
    account = await deps.api.pg_accounts.get(account_id)
    breaker = next((b for b in deps.breakers() if b.name == account.id), None)
    return page(request, who, "pg_account.html", account=account.shown(), options=OPTION_LABELS,
                form=form or form_of(account), breaker=breaker_cell(breaker), error=error,
                saved=saved, status_code=status_code, default=account.id == DEFAULT)  # fmt: skip


@router.get("/pg-accounts")
async def show_accounts(request: Request, deps: Deps, who: Reader) -> Response:
    return await _list_page(request, deps, who)


@router.post("/pg-accounts")
async def add_account(
    request: Request,
    deps: Deps,
    who: Writer,
    account_id: IdField = "",
    kind: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    who.operator_only()
    texts: dict[str, str] = {}
    try:
        texts, secrets = submitted(await request.form())
        made = await deps.api.pg_accounts.create(
            account_id.strip(), actor=who.actor, kind=kind, name=texts["name"],
            base_url=texts["base_url"], options={k: texts[k] for k in OPTIONS}, **secrets,
        )  # fmt: skip
    except ArspayError as exc:
        if exc.http_status >= 500:
            raise
        return await _list_page(request, deps, who, form=shown_back(texts), kind=kind,
                                account_id=echoable(account_id), error=_message(who, exc),
                                status_code=exc.http_status)  # fmt: skip
    return RedirectResponse(f"/console/pg-accounts/{made.id}?saved=1", status_code=303)


@router.get("/pg-accounts/{account_id}")
async def show_account(
    request: Request, account_id: str, deps: Deps, who: Reader, saved: FlagParam = None
) -> Response:
    return await _edit_page(request, deps, who, account_id, saved=bool(saved))


@router.post("/pg-accounts/{account_id}")
async def change_account(request: Request, account_id: str, deps: Deps, who: Writer) -> Response:
    who.operator_only()
    texts: dict[str, str] = {}
    try:
        texts, secrets = submitted(await request.form())
        changes: dict[str, Any] = {k: texts[k] for k in ("name", "base_url")}
        changes["options"] = {k: texts[k] for k in OPTIONS}
        changes |= {k: v for k, v in secrets.items() if v}  # empty: kept
        await deps.api.pg_accounts.update(account_id, actor=who.actor, **changes)
    except ArspayError as exc:
        if exc.http_status >= 500 or exc.http_status == 404:
            raise
        return await _edit_page(request, deps, who, account_id, form=shown_back(texts),
                                error=_message(who, exc), status_code=exc.http_status)  # fmt: skip
    return RedirectResponse(f"/console/pg-accounts/{account_id}?saved=1", status_code=303)


@router.post("/pg-accounts/{account_id}/status")
async def set_status(
    request: Request,
    account_id: str,
    deps: Deps,
    who: Writer,
    status: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    who.operator_only()
    try:
        wanted = AccountStatus(status)
    except ValueError:
        raise InvalidInput("status must be active or disabled") from None
    try:
        await deps.api.pg_accounts.update(account_id, actor=who.actor, status=wanted.value)
    except ArspayError as exc:
        if exc.http_status >= 500 or exc.http_status == 404:
            raise
        return await _edit_page(request, deps, who, account_id, error=exc.message,
                                status_code=exc.http_status)  # fmt: skip
    return RedirectResponse(f"/console/pg-accounts/{account_id}?saved=1", status_code=303)


# ------------------------------------------------------------------ a merchant's routes


def _merchant(who: Viewer, chosen: str | None) -> str:
    """The merchant whose routes these are: a merchant user's own (another: 404), or
    the one an operator chose."""
    if who.scope is not None:
        if chosen:
            who.own(chosen, "merchant")
        return who.scope
    if not chosen:
        raise InvalidInput("choose a merchant")
    return chosen


async def _routes_box(
    request: Request, deps: Deps, who: Viewer, merchant_id: str, *, error: str = "",
    status_code: int = 200,
) -> Response:  # fmt: skip
    """The routes form: the settings page's fragment, or (a refused form) a page of its own."""
    routes = await deps.api.pg_accounts.routes(merchant_id)
    accounts = [a for a in await deps.api.pg_accounts.list() if a.active]
    template = "pg_routes.html" if error else "fragments/settings_pg_routes.html"
    return page(request, who, template, merchant_id=merchant_id, routes=routes,
                accounts=accounts, error=error, status_code=status_code)  # fmt: skip


@router.get("/settings/pg-routes")
async def show_routes(
    request: Request, deps: Deps, who: Reader, merchant: IdParam = None
) -> Response:
    return await _routes_box(request, deps, who, _merchant(who, merchant))


@router.post("/settings/pg-routes")
async def save_routes(
    request: Request,
    deps: Deps,
    who: Writer,
    merchant_id: IdField = "",
    primary: IdField = "",
    secondary: IdField = "",
) -> Response:
    target = _merchant(who, merchant_id)
    try:
        await deps.api.pg_accounts.set_routes(
            target, primary=primary or DEFAULT, secondary=secondary or None, actor=who.actor
        )
    except ArspayError as exc:
        if exc.http_status >= 500 or exc.http_status == 404:
            raise
        return await _routes_box(request, deps, who, target, error=exc.message,
                                 status_code=exc.http_status)  # fmt: skip
    back = "/console/settings" if who.scope else f"/console/settings?merchant={target}"
    return RedirectResponse(back, status_code=303)
