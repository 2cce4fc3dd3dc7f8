"""``arspay merchants``, ``arspay keys``, ``arspay customers``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ivr.cli.app import app, emit, with_services
from ivr.merchants.policy import MerchantPolicy
from ivr.wiring import Services

merchants_app = typer.Typer(help="Merchants.", no_args_is_help=True)
keys_app = typer.Typer(help="Merchant API keys.", no_args_is_help=True)
customers_app = typer.Typer(help="A merchant's customers.", no_args_is_help=True)
app.add_typer(merchants_app, name="merchants")
app.add_typer(keys_app, name="keys")
app.add_typer(customers_app, name="customers")


@merchants_app.command("create")
def create_merchant(ctx: typer.Context, name: str = typer.Argument(..., help="상호")) -> None:
    """Create a merchant."""

    async def body(s: Services) -> None:
        m = await s.merchants.create(name)
        emit(ctx, "Merchant", [{"id": m.id, "name": m.name, "status": m.status}])

    with_services(ctx, body)


@merchants_app.command("list")
def list_merchants(ctx: typer.Context) -> None:
    """List merchants."""

    async def body(s: Services) -> None:
        rows = await s.merchants.list()
        emit(ctx, "Merchants", [{"id": m.id, "name": m.name, "status": m.status} for m in rows])

    with_services(ctx, body)


@merchants_app.command("policy")
def merchant_policy(
    ctx: typer.Context,
    merchant_id: str,
    set_: list[str] = typer.Option(
        [], "--set", help="KEY=JSON, e.g. max_installment_months=6 or senior_mode=true"
    ),
    unset: list[str] = typer.Option([], "--unset", help="KEY to remove (back to the default)"),
    file: Path | None = typer.Option(None, "--file", help="a JSON file replacing the policy"),
) -> None:
    """Show or change a merchant's call policy (installments, senior mode, agent key,
    interest-free table …; see docs/flows.md). Bad keys or values are refused."""
    changes: dict[str, Any] = {}
    for item in set_:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--set wants KEY=JSON, got {item!r}")
        try:
            changes[key] = json.loads(raw)
        except json.JSONDecodeError:
            changes[key] = raw  # a bare string such as agents,100,1
    for key in unset:
        changes[key] = None
    replace = False
    if file is not None:
        try:
            loaded = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise typer.BadParameter(f"--file: {exc}") from None
        if not isinstance(loaded, dict):
            raise typer.BadParameter("--file must hold a JSON object")
        changes, replace = loaded, True

    async def body(s: Services) -> None:
        if changes or replace:
            policy = await s.merchants.set_policy(
                merchant_id, changes, replace=replace, actor="cli"
            )
        else:
            policy = MerchantPolicy.parse((await s.merchants.get(merchant_id)).settings)
        emit(ctx, "Policy", [policy.model_dump(mode="json")])

    with_services(ctx, body)


@keys_app.command("create")
def create_key(
    ctx: typer.Context,
    merchant_id: str,
    name: str = typer.Option("default", help="a label for the key"),
) -> None:
    """Create an API key. The key is printed once and never again."""

    async def body(s: Services) -> None:
        k = await s.merchants.create_api_key(merchant_id, name, actor="cli")
        emit(ctx, "API key (shown once)", [{"id": k.id, "merchant_id": k.merchant_id,
                                           "key": k.key}])  # fmt: skip

    with_services(ctx, body)


@keys_app.command("revoke")
def revoke_key(ctx: typer.Context, merchant_id: str, key_id: str) -> None:
    """Revoke an API key."""

    async def body(s: Services) -> None:
        await s.merchants.revoke_api_key(merchant_id, key_id, actor="cli")

    with_services(ctx, body)
    typer.echo(f"{key_id} revoked")


@customers_app.command("create")
def create_customer(
    ctx: typer.Context,
    merchant_id: str,
    mobile: str = typer.Option(..., help="the payer's mobile number"),
    name: str = typer.Option("", help="the payer's name"),
    ref: str | None = typer.Option(None, help="the merchant's own customer id"),
) -> None:
    """Create a customer of a merchant."""

    async def body(s: Services) -> None:
        c = await s.customers.create(merchant_id, mobile=mobile, name=name, external_ref=ref)
        emit(ctx, "Customer", [{"id": c.id, "merchant_id": c.merchant_id, "mobile": c.mobile,
                                "name": c.name, "ref": c.external_ref}])  # fmt: skip

    with_services(ctx, body)
