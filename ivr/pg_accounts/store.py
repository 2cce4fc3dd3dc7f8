"""PG accounts in the engine database and merchants' routes to them.

An account's secrets (API secret, webhook secret) are sealed (:mod:`ivr.store.sealing`)
with the account id as associated data; they leave this module only inside an
:class:`~ivr.pg_accounts.model.Account` (repr without them) on its way to a gateway, and
are shown masked. Every change is audited, without secrets. ``default`` is the
``[gateway]`` settings: listed, routable, never stored nor changed here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ivr.audit import audit
from ivr.clock import Clock
from ivr.domain.text import check_text
from ivr.errors import Conflict, InvalidInput, NotFound
from ivr.gateways.config import GatewaySettings
from ivr.pg_accounts.model import (
    ACCOUNT_ID,
    DEFAULT,
    KINDS,
    OPTIONS,
    Account,
    AccountStatus,
    account_key,
    default_account,
    default_url,
    stored_id,
)
from ivr.store.db import Database
from ivr.store.scope import Scope
from ivr.store.sealing import SealingKey
from ivr.store.tables import Merchant, PgAccount

SECRETS = ("api_secret", "webhook_secret")


def accounts_key(gw: GatewaySettings, var_dir: Path) -> SealingKey:
    return SealingKey(gw.accounts_key_file or var_dir / "pg-accounts.key", "pg account")


@dataclass(frozen=True)
class Routes:
    """Where a merchant's new cards go: ``primary``, else ``secondary`` while the
    primary's breaker is open."""

    primary: str
    secondary: str | None


class PgAccounts:
    def __init__(self, db: Database, clock: Clock, key: SealingKey, base: GatewaySettings) -> None:
        self.db, self.clock, self.key, self.base = db, clock, key, base
        self.default = default_account(base)

    # ------------------------------------------------------------------ reading

    def _load(self, row: PgAccount) -> Account:
        secrets: dict[str, str] = json.loads(self.key.open(row.secrets_sealed, row.id))
        return Account(
            id=row.id,
            name=row.name,
            kind=row.kind,
            base_url=row.base_url,
            api_key=row.api_key,
            api_secret=secrets.get("api_secret", ""),
            webhook_secret=secrets.get("webhook_secret", ""),
            options={k: str(v) for k, v in row.options.items()},
            status=AccountStatus(row.status),
            created_at=row.created_at,
            updated_at=row.updated_at,
            merchant_id=row.merchant_id,
        )

    async def get(self, account_id: str | None) -> Account:
        """The account (``None``: ``default``); NotFound when there is none."""
        return await self._get(Scope.everyone(), account_id)

    async def get_for(self, merchant_id: str, account_id: str | None) -> Account:
        """``get``, for a merchant: another merchant's own account is NotFound."""
        return await self._get(Scope.of(merchant_id), account_id)

    async def _get(self, scope: Scope, account_id: str | None) -> Account:
        account_id = account_key(account_id)
        if account_id == DEFAULT:
            return self.default
        query = scope.shared(select(PgAccount).where(PgAccount.id == account_id), PgAccount)
        async with self.db.sessions() as s:
            row = await s.scalar(query)
        if row is None:
            raise NotFound(f"PG account {account_id} not found")
        return self._load(row)

    async def list(self, merchant_id: str | None = None) -> list[Account]:
        """Every account (``merchant_id``: those that merchant may see and route to)."""
        scope = Scope.everyone() if merchant_id is None else Scope.of(merchant_id)
        query = scope.shared(select(PgAccount).order_by(PgAccount.id), PgAccount)
        async with self.db.sessions() as s:
            rows = (await s.scalars(query)).all()
        return [self.default, *(self._load(r) for r in rows)]

    async def routes(self, merchant_id: str) -> Routes:
        async with self.db.sessions() as s:
            m = await Scope.of(merchant_id).one(s, Merchant, merchant_id, "merchant")
        return Routes(primary=account_key(m.pg_primary_id), secondary=m.pg_secondary_id)

    # ------------------------------------------------------------------ changing

    def _check(self, account: Account) -> None:
        # the texts a person types and the pages show (not the key, the secrets or the
        # channel and store ids: identifiers the PG issues, PortOne v1's key all digits)
        check_text(account.name, "name")
        check_text(account.base_url, "base_url")
        if account.kind not in KINDS:
            raise InvalidInput(f"PG account kind must be one of {', '.join(KINDS)}")
        unknown = set(account.options) - set(OPTIONS)
        if unknown:
            raise InvalidInput(f"unknown PG account options: {', '.join(sorted(unknown))}")
        account.settings(self.base)  # what the settings would refuse, refused here

    def _seal(self, account: Account) -> str:
        values = {name: getattr(account, name) for name in SECRETS}
        return self.key.seal(json.dumps(values).encode(), account.id)

    async def create(
        self,
        account_id: str,
        *,
        actor: str,
        name: str = "",
        kind: str,
        base_url: str = "",
        api_key: str = "",
        api_secret: str = "",
        webhook_secret: str = "",
        options: dict[str, str] | None = None,
        merchant_id: str | None = None,
    ) -> Account:
        """A new account: the operators' (offered to every merchant), or with
        ``merchant_id`` that merchant's own (only it sees it and routes to it)."""
        check_text(account_id, "PG account id")
        if account_id == DEFAULT or ACCOUNT_ID.fullmatch(account_id) is None:
            raise InvalidInput(
                "PG account id: 3-40 lowercase letters, digits and '-' (not 'default')"
            )
        if kind not in KINDS:
            raise InvalidInput(f"PG account kind must be one of {', '.join(KINDS)}")
        now = self.clock.now()
        account = Account(
            id=account_id,
            name=name.strip() or account_id,
            kind=kind,
            base_url=base_url.strip() or default_url(kind),
            api_key=api_key.strip(),
            api_secret=api_secret,
            webhook_secret=webhook_secret,
            options={k: v for k, v in (options or {}).items() if v},
            created_at=now,
            updated_at=now,
            merchant_id=merchant_id,
        )
        self._check(account)
        async with self.db.transaction() as s:
            if merchant_id is not None:
                await Scope.of(merchant_id).one(s, Merchant, merchant_id, "merchant")
            # ids are one namespace (every merchant's and the operators')
            if await Scope.everyone().get(s, PgAccount, account_id) is not None:
                raise Conflict(f"PG account {account_id} exists")
            s.add(
                PgAccount(
                    id=account.id, name=account.name, kind=account.kind,
                    base_url=account.base_url, api_key=account.api_key,
                    secrets_sealed=self._seal(account), options=account.options,
                    status=account.status.value, created_at=now, updated_at=now,
                    merchant_id=merchant_id,
                )
            )  # fmt: skip
            audit(s, self.clock, actor=actor, action="pg_account.create",
                  object_type="pg_account", object_id=account_id, merchant_id=merchant_id,
                  details={"kind": kind, "base_url": account.base_url})  # fmt: skip
        return account

    async def update(
        self, account_id: str, *, actor: str, merchant_id: str | None = None, **changes: Any
    ) -> Account:
        """Change fields (``name``, ``base_url``, ``api_key``, the secrets, ``options``
        — replaced as a whole —, ``status``); a secret given as ``""`` or left out is
        kept. The audit names the fields changed, never their values. ``merchant_id``:
        a merchant changing its own account (any other is NotFound to it)."""
        if account_key(account_id) == DEFAULT:
            raise Conflict("the default PG account is the [gateway] settings: change those")
        allowed = {"name", "base_url", "api_key", "options", "status", *SECRETS}
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidInput(f"unknown PG account fields: {', '.join(sorted(unknown))}")
        async with self.db.transaction() as s:
            # a merchant changes its own accounts only; an operator (None) any
            row = await Scope(merchant_id).get(s, PgAccount, account_id, lock=True)
            if row is None:
                raise NotFound(f"PG account {account_id} not found")
            current = self._load(row)
            values = {k: v for k, v in changes.items() if not (k in SECRETS and not v)}
            if "status" in values:
                values["status"] = _status(values["status"])
            if "options" in values:
                values["options"] = {k: v for k, v in (values["options"] or {}).items() if v}
            now = self.clock.now()
            fields = {**current.__dict__, **values, "updated_at": now}
            account = Account(**fields)
            self._check(account)
            if account.status is AccountStatus.disabled:
                await _refuse_if_routed(s, account_id)
            row.name, row.base_url, row.api_key = account.name, account.base_url, account.api_key
            row.options, row.status = account.options, account.status.value
            row.secrets_sealed, row.updated_at = self._seal(account), now
            audit(s, self.clock, actor=actor, action="pg_account.update",
                  object_type="pg_account", object_id=account_id, merchant_id=row.merchant_id,
                  details={"fields": sorted(values)})  # fmt: skip
        return account

    async def set_routes(
        self, merchant_id: str, *, primary: str, secondary: str | None, actor: str
    ) -> Routes:
        if secondary is not None and account_key(secondary) == account_key(primary):
            raise InvalidInput("the secondary PG account must differ from the primary")
        for account_id in (primary, secondary):
            if account_id is not None and not (await self.get_for(merchant_id, account_id)).active:
                raise Conflict(f"PG account {account_id} is disabled")
        async with self.db.transaction() as s:
            m = await Scope.of(merchant_id).one(s, Merchant, merchant_id, "merchant", lock=True)
            m.pg_primary_id = stored_id(account_key(primary))
            # NULL is "no secondary", so ``default`` as a secondary is stored by its name
            m.pg_secondary_id = secondary or None
            audit(s, self.clock, actor=actor, action="merchant.pg_routes",
                  object_type="merchant", object_id=merchant_id, merchant_id=merchant_id,
                  details={"primary": account_key(primary), "secondary": secondary})  # fmt: skip
        return Routes(primary=account_key(primary), secondary=secondary)


def _status(value: Any) -> AccountStatus:
    try:
        return AccountStatus(value)
    except ValueError:
        raise InvalidInput("PG account status must be active or disabled") from None


async def _refuse_if_routed(s: Any, account_id: str) -> None:
    """A disabled account takes no new cards: refuse while a merchant routes to it."""
    used = await s.scalar(
        select(Merchant.id)
        .where((Merchant.pg_primary_id == account_id) | (Merchant.pg_secondary_id == account_id))
        .limit(1)
    )
    if used is not None:
        raise Conflict(f"PG account {account_id} is a route of merchant {used}: change that first")
