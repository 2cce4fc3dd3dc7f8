"""``arspay console``: console users (the first operator is created here)."""

from __future__ import annotations

import os

import typer

from ivr.cli.app import app, emit, with_services
from ivr.console.users import ROLES, ConsoleUsers, Role, User
from ivr.errors import InvalidInput
from ivr.wiring import Services

console_app = typer.Typer(help="Admin console users.", no_args_is_help=True)
app.add_typer(console_app, name="console")

PASSWORD_ENV = "ARSPAY_NEW_USER_PASSWORD"  # noqa: S105 (a variable name, not a password)


def _password() -> str:
    """From ``ARSPAY_NEW_USER_PASSWORD`` (scripts) or asked twice, hidden (people).
    Not ``ARSPAY_CONSOLE_…``: that prefix belongs to the ``console`` settings section."""
    given = os.environ.get(PASSWORD_ENV)
    if given:
        return given
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


def _role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise InvalidInput(f"role must be one of {', '.join(ROLES)}")


def _row(u: User) -> dict[str, str]:
    return {"id": u.id, "email": u.email, "role": u.role, "merchant_id": u.merchant_id or ""}


def _users(s: Services) -> ConsoleUsers:
    return s.console_users


@console_app.command("add-user")
def add_user(
    ctx: typer.Context,
    email: str,
    role: str = typer.Option(..., help="operator | merchant"),
    merchant: str | None = typer.Option(None, help="merchant id (role merchant)"),
) -> None:
    """Create a console user. The password comes from ARSPAY_NEW_USER_PASSWORD or a
    hidden prompt; it is stored as an argon2id hash."""
    _role(role)
    password = _password()

    async def body(s: Services) -> None:
        u = await _users(s).create(email, password, role=_role(role), merchant_id=merchant)
        emit(ctx, "Console user", [_row(u)])

    with_services(ctx, body)


@console_app.command("users")
def list_users(ctx: typer.Context, merchant: str | None = typer.Option(None)) -> None:
    """List active console users."""

    async def body(s: Services) -> None:
        rows = await _users(s).list(merchant)
        emit(ctx, "Console users", [_row(u) for u in rows])

    with_services(ctx, body)


@console_app.command("set-password")
def set_password(ctx: typer.Context, user_id: str) -> None:
    """Set a user's password (also lifts a lockout)."""
    password = _password()

    async def body(s: Services) -> None:
        await _users(s).set_password(user_id, password, actor="cli")

    with_services(ctx, body)
    typer.echo(f"{user_id}: password set")


@console_app.command("disable")
def disable(ctx: typer.Context, user_id: str) -> None:
    """Disable a user (their sessions stop working at once)."""

    async def body(s: Services) -> None:
        await _users(s).disable(user_id, actor="cli")

    with_services(ctx, body)
    typer.echo(f"{user_id} disabled")


@console_app.command("reset-2fa")
def reset_2fa(ctx: typer.Context, user_id: str) -> None:
    """Remove a user's second factor (a lost or stolen phone) and end their sessions;
    where console.require_2fa covers them, they set up a new one at their next login."""

    async def body(s: Services) -> None:
        await s.console_mfa.remove(user_id, actor="cli")
        await s.console_sessions.close_all(user_id)

    with_services(ctx, body)
    typer.echo(f"{user_id}: second factor removed, sessions ended")
