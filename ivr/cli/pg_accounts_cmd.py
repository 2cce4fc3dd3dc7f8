"""``arspay pg-accounts`` (the PG accounts cards are registered at) and ``arspay
merchants pg-routes`` (a merchant's primary and secondary account).

Secrets never travel on the command line: a process's arguments are readable by every
user of the machine (``ps``, ``/proc/<pid>/cmdline``) and end up in shell histories.
The API secret and the webhook secret come from ``--api-secret-stdin`` /
``--webhook-secret-stdin`` (a line each, in that order), from the environment
(:data:`API_SECRET_ENV`, :data:`WEBHOOK_SECRET_ENV`), or from a hidden prompt
(``--ask-secrets``); a secret not given is none for ``add`` and kept for ``set``.
Everything printed shows them masked (:meth:`~ivr.pg_accounts.model.Account.shown`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from ivr.cli.app import app, emit, with_services
from ivr.cli.merchants_cmd import merchants_app
from ivr.errors import InvalidInput
from ivr.pg_accounts.model import KINDS, OPTIONS, Account
from ivr.pg_accounts.store import Routes
from ivr.wiring import Services

pg_app = typer.Typer(
    help="PG accounts (connector, credentials, channel); secrets are shown masked.",
    no_args_is_help=True,
)
app.add_typer(pg_app, name="pg-accounts")

# Not ARSPAY_GATEWAY_…: that prefix belongs to the [gateway] settings (the default account)
API_SECRET_ENV = "ARSPAY_NEW_PG_API_SECRET"  # noqa: S105 (variable names, not secrets)
WEBHOOK_SECRET_ENV = "ARSPAY_NEW_PG_WEBHOOK_SECRET"  # noqa: S105
ACTOR = "cli"
LISTED = ("id", "name", "kind", "status", "api_key", "api_secret", "webhook_secret")

_NAME = typer.Option(None, "--name", help="a label (default: the id)")
_URL = typer.Option(None, "--base-url", help="the PG's API URL (default: the kind's)")
_KEY = typer.Option(None, "--api-key", help="the API key (an identifier: REST API key / imp_…)")
_PG = typer.Option(None, "--pg", help="PortOne v1: the PG (ksnet, nice …)")
_CHANNEL = typer.Option(None, "--channel-key", help="PortOne: the channel key")
_STORE = typer.Option(None, "--store-id", help="PortOne V2: the store id")
_PRODUCT = typer.Option(None, "--product-type", help="PortOne V2: the product type")
_EMAIL = typer.Option(None, "--buyer-email", help="PortOne V2: the buyer e-mail it sends")
_API_STDIN = typer.Option(False, "--api-secret-stdin", help="read the API secret from stdin")
_HOOK_STDIN = typer.Option(
    False, "--webhook-secret-stdin", help="read the webhook secret from stdin (after the API's)"
)
_ASK = typer.Option(False, "--ask-secrets", help="ask for the secrets (hidden; empty: none/keep)")


def shown(a: Account) -> dict[str, Any]:
    """One account, masked, for ``show``/``add``/``set``."""
    row = a.shown()
    options = row.pop("options")
    return {**row, **{name: options.get(name, "") for name in OPTIONS if options.get(name)}}


def listed(a: Account) -> dict[str, Any]:
    row = a.shown()
    return {name: row[name] for name in LISTED}


def secrets(*, api_stdin: bool, hook_stdin: bool, ask: bool) -> dict[str, str]:
    """The secrets given, by field name (``""``: not given): stdin lines, else a hidden
    prompt, else the environment."""
    found = {
        "api_secret": os.environ.get(API_SECRET_ENV, ""),
        "webhook_secret": os.environ.get(WEBHOOK_SECRET_ENV, ""),
    }
    if api_stdin or hook_stdin:
        for name, wanted in (("api_secret", api_stdin), ("webhook_secret", hook_stdin)):
            if wanted:
                found[name] = sys.stdin.readline().strip()
                if not found[name]:
                    raise typer.BadParameter(f"--{name.replace('_', '-')}-stdin: stdin is empty")
    elif ask:
        for name, label in (("api_secret", "API secret"), ("webhook_secret", "Webhook secret")):
            value: str = typer.prompt(
                f"{label} (empty: none or unchanged)",
                default="",
                show_default=False,
                hide_input=True,
                confirmation_prompt=True,
            )
            found[name] = value.strip()
    return found


def options(given: dict[str, str | None], current: dict[str, str] | None = None) -> dict[str, str]:
    """The account's options: ``current`` with each option given replaced (``""``: removed)."""
    merged = dict(current or {})
    for name, value in given.items():
        if value is not None:
            merged[name] = value.strip()
    return {k: v for k, v in merged.items() if v}


@pg_app.command("list")
def list_accounts(ctx: typer.Context) -> None:
    """List the accounts (``default``: the gateway settings), secrets masked."""

    async def body(s: Services) -> None:
        emit(ctx, "PG accounts", [listed(a) for a in await s.pg_accounts.list()])

    with_services(ctx, body)


@pg_app.command("show")
def show_account(ctx: typer.Context, account_id: str) -> None:
    """Show one account, secrets masked."""

    async def body(s: Services) -> None:
        emit(ctx, "PG account", [shown(await s.pg_accounts.get(account_id))])

    with_services(ctx, body)


@pg_app.command("add")
def add_account(
    ctx: typer.Context,
    account_id: str = typer.Argument(..., help="3-40 of a-z, 0-9, '-' (e.g. ksnet-main)"),
    kind: str = typer.Option(..., "--kind", help=" | ".join(KINDS)),
    name: str | None = _NAME,
    base_url: str | None = _URL,
    api_key: str | None = _KEY,
    pg: str | None = _PG,
    channel_key: str | None = _CHANNEL,
    store_id: str | None = _STORE,
    product_type: str | None = _PRODUCT,
    buyer_email: str | None = _EMAIL,
    api_secret_stdin: bool = _API_STDIN,
    webhook_secret_stdin: bool = _HOOK_STDIN,
    ask_secrets: bool = _ASK,
) -> None:
    """Add an account. Secrets: --api-secret-stdin / --webhook-secret-stdin, the
    ARSPAY_NEW_PG_API_SECRET / ARSPAY_NEW_PG_WEBHOOK_SECRET variables, or --ask-secrets
    (never as arguments: other users of the machine can read those)."""
    given = secrets(api_stdin=api_secret_stdin, hook_stdin=webhook_secret_stdin, ask=ask_secrets)
    opts = options({"pg": pg, "channel_key": channel_key, "store_id": store_id,
                    "product_type": product_type, "buyer_email": buyer_email})  # fmt: skip

    async def body(s: Services) -> None:
        made = await s.pg_accounts.create(
            account_id, actor=ACTOR, name=name or "", kind=kind, base_url=base_url or "",
            api_key=api_key or "", options=opts, **given,
        )  # fmt: skip
        emit(ctx, "PG account", [shown(made)])

    with_services(ctx, body)


@pg_app.command("set")
def set_account(
    ctx: typer.Context,
    account_id: str,
    name: str | None = _NAME,
    base_url: str | None = _URL,
    api_key: str | None = _KEY,
    pg: str | None = _PG,
    channel_key: str | None = _CHANNEL,
    store_id: str | None = _STORE,
    product_type: str | None = _PRODUCT,
    buyer_email: str | None = _EMAIL,
    api_secret_stdin: bool = _API_STDIN,
    webhook_secret_stdin: bool = _HOOK_STDIN,
    ask_secrets: bool = _ASK,
    enable: bool | None = typer.Option(
        None, "--enable/--disable", help="take new cards, or not (refused while it is a route)"
    ),
) -> None:
    """Change an account: the options given (an option given as "" is removed), the
    secrets given (the others kept), its status."""
    changes: dict[str, Any] = {
        k: v
        for k, v in secrets(
            api_stdin=api_secret_stdin, hook_stdin=webhook_secret_stdin, ask=ask_secrets
        ).items()
        if v
    }
    for field, value in (("name", name), ("base_url", base_url), ("api_key", api_key)):
        if value is not None:
            changes[field] = value
    if enable is not None:
        changes["status"] = "active" if enable else "disabled"
    given = {"pg": pg, "channel_key": channel_key, "store_id": store_id,
             "product_type": product_type, "buyer_email": buyer_email}  # fmt: skip

    async def body(s: Services) -> None:
        if any(v is not None for v in given.values()):
            current = await s.pg_accounts.get(account_id)
            changes["options"] = options(given, current.options)
        if not changes:
            raise InvalidInput("nothing to change (see --help)")
        changed = await s.pg_accounts.update(account_id, actor=ACTOR, **changes)
        emit(ctx, "PG account", [shown(changed)])

    with_services(ctx, body)


def _routes(merchant_id: str, r: Routes) -> dict[str, Any]:
    return {"merchant_id": merchant_id, "primary": r.primary, "secondary": r.secondary}


@merchants_app.command("pg-routes")
def pg_routes(
    ctx: typer.Context,
    merchant_id: str,
    primary: str | None = typer.Option(None, "--primary", help="the account new cards go to"),
    secondary: str | None = typer.Option(
        None, "--secondary", help="the account new cards go to while the primary's PG is down"
    ),
    no_secondary: bool = typer.Option(False, "--no-secondary", help="remove the secondary"),
) -> None:
    """Show or set the PG accounts a merchant's new cards are registered at (``default``:
    the gateway settings)."""
    if secondary is not None and no_secondary:
        raise typer.BadParameter("--secondary and --no-secondary exclude each other")

    async def body(s: Services) -> None:
        routes = await s.pg_accounts.routes(merchant_id)
        if primary is not None or secondary is not None or no_secondary:
            routes = await s.pg_accounts.set_routes(
                merchant_id,
                primary=routes.primary if primary is None else primary,
                secondary=None if no_secondary else (secondary or routes.secondary),
                actor=ACTOR,
            )
        emit(ctx, "PG routes", [_routes(merchant_id, routes)])

    with_services(ctx, body)
