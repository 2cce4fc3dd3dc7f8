"""A stand-in :class:`~ivr.pg_accounts.migration.Accounts` until the engine's book of
guarded gateways wires in: each account's gateway built from its settings (no
breaker), the default one given. The vault here cannot forward to another account, so
:meth:`PlainBook.vault_route` refuses any but the default: a migration *to* another
account needs the vault's account routes; one *to* the default works (the old keys are
deleted at their own accounts)."""

from __future__ import annotations

import inspect

from ivr.errors import Conflict
from ivr.gateways.contract import Gateway
from ivr.gateways.factory import ConnectedGateway, build_gateway
from ivr.pg_accounts.model import DEFAULT, account_key
from ivr.pg_accounts.store import PgAccounts
from vault.client import VaultClient


class VaultCannotRoute(Conflict, error_id="vault-cannot-route"):
    """The vault forwards to the default PG account only."""


def vault_routes(vault: VaultClient) -> bool:
    """Whether the vault's ``issue_billing_key`` takes an account route."""
    return "route" in inspect.signature(vault.issue_billing_key).parameters


class PlainBook:
    def __init__(self, accounts: PgAccounts, default: Gateway) -> None:
        self.accounts, self.default = accounts, default
        self._built: dict[str, tuple[str, ConnectedGateway]] = {}

    async def of(self, account_id: str | None) -> Gateway:
        key = account_key(account_id)
        if key == DEFAULT:
            return self.default
        account = await self.accounts.get(key)
        cached = self._built.get(key)
        if cached is None or cached[0] != account.version:
            if cached is not None:
                await cached[1].aclose()
            cached = (account.version, build_gateway(account.settings(self.accounts.base)))
            self._built[key] = cached
        return cached[1]

    async def vault_route(self, account_id: str | None) -> object | None:
        if account_key(account_id) == DEFAULT:
            return None
        raise VaultCannotRoute(
            f"the vault forwards to the default PG account only; {account_id} needs "
            "the vault's account routes"
        )

    async def aclose(self) -> None:
        for _, gateway in self._built.values():
            await gateway.aclose()
        self._built.clear()
