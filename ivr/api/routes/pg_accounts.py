"""PG accounts as a merchant sees them: the accounts its cards can be registered at —
the operators' (managed on the CLI and the console) and the merchant's own, for a PG
contract of its own (``POST /v1/pg-accounts``, ``PATCH …/{id}``) — and its routes, a
primary and an optional secondary. Secrets go in and never come out: every answer
masks the API key and says only whether a secret is set.

A route names an account by id; ``default`` is the engine's ``[gateway]`` settings.
New cards go to the primary, to the secondary while the primary's PG is down; a card
already registered stays at the account that holds its billing key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, SecretStr

from ivr.api import schemas as S
from ivr.api.route import actor
from ivr.api.routes.common import WRITE_ERRORS, Deps, Me
from ivr.api.routes.common import router as make_router
from ivr.errors import InvalidInput, NotFound
from ivr.pg_accounts.model import ACCOUNT_ID, DEFAULT, Account, mask
from ivr.pg_accounts.store import Routes

router = make_router("pg-accounts")

AccountId = Annotated[
    S.Text,
    Field(
        min_length=3,
        max_length=40,
        pattern=f"^(?:{ACCOUNT_ID.pattern})$",
        description=f"a PG account id (`{DEFAULT}`: the engine's [gateway] settings)",
    ),
]


class PgAccountOut(S._Out):
    id: str
    name: str
    kind: str = Field(description="sandbox | portone | portone_v2")
    status: str = Field(description="active (routable) | disabled")
    default: bool = Field(description="the engine's [gateway] settings")
    api_key: str = Field(description="the PG API key, masked (the last 4 characters at most)")
    updated_at: datetime | None
    owned: bool = Field(False, description="this merchant's own account (it may change it)")


Short = Annotated[S.Text, Field(max_length=100)]
Secret = Annotated[SecretStr, Field(max_length=200)]


class PgAccountOptions(S._In):
    """What the account's PG needs beside its keys (docs/portone.md "Per-PG fields")."""

    pg: Short | None = Field(None, description="PortOne pg selector, {PG} or {PG}.{MID}")
    channel_key: Short | None = Field(None, description="PortOne channel key (v1: required)")
    store_id: Short | None = Field(None, description="PortOne V2 store id")
    product_type: Literal["", "real", "digital"] | None = None
    buyer_email: Short | None = None


class PgAccountIn(S._In):
    id: AccountId
    name: Short | None = None
    kind: Literal["sandbox", "portone", "portone_v2"]
    base_url: Annotated[S.Text, Field(max_length=200)] | None = Field(
        None, description="empty: PortOne's API of the kind"
    )
    api_key: Short | None = Field(None, description="PortOne v1 REST API key (imp_key)")
    api_secret: Secret | None = Field(None, description="write-only: never shown again")
    webhook_secret: Secret | None = Field(None, description="write-only (V2 webhooks)")
    options: PgAccountOptions = Field(default_factory=PgAccountOptions)


class PgAccountPatch(S._In):
    name: Short | None = None
    base_url: Annotated[S.Text, Field(max_length=200)] | None = None
    api_key: Short | None = None
    api_secret: Secret | None = Field(None, description="write-only; omitted: kept")
    webhook_secret: Secret | None = Field(None, description="write-only; omitted: kept")
    options: PgAccountOptions | None = Field(None, description="replaces the options")
    status: Literal["active", "disabled"] | None = None


class PgRoutesOut(S._Out):
    primary: str = Field(description="where new cards are registered")
    secondary: str | None = Field(
        description="where new cards are registered while the primary's PG is down"
    )


class PgRoutesIn(S._In):
    primary: AccountId
    secondary: AccountId | None = None


def account_out(a: Account) -> PgAccountOut:
    return PgAccountOut(
        id=a.id,
        name=a.name,
        kind=a.kind,
        status=a.status.value,
        default=a.id == DEFAULT,
        api_key=mask(a.api_key),
        updated_at=a.updated_at,
        owned=a.merchant_id is not None,
    )


def _options(o: PgAccountOptions) -> dict[str, str]:
    return {k: v for k, v in o.model_dump().items() if v}


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def routes_out(r: Routes) -> PgRoutesOut:
    return PgRoutesOut(primary=r.primary, secondary=r.secondary)


@router.get("/pg-accounts", summary="The PG accounts this merchant's cards can be registered at")
async def list_accounts(d: Deps, me: Me) -> list[PgAccountOut]:
    return [account_out(a) for a in await d.pg_accounts.list(me.merchant_id) if a.active]


@router.post(
    "/pg-accounts",
    status_code=201,
    responses=WRITE_ERRORS,
    summary="Add this merchant's own PG account (its own contract with a PG); the "
    "secrets are sealed and never shown again",
)
async def create_account(body: PgAccountIn, d: Deps, me: Me) -> PgAccountOut:
    made = await d.pg_accounts.create(
        body.id,
        actor=actor(me),
        name=body.name or "",
        kind=body.kind,
        base_url=body.base_url or "",
        api_key=body.api_key or "",
        api_secret=_secret(body.api_secret),
        webhook_secret=_secret(body.webhook_secret),
        options=_options(body.options),
        merchant_id=me.merchant_id,
    )
    return account_out(made)


@router.get("/pg-accounts/{account_id}", summary="One PG account this merchant can route to")
async def get_account(account_id: str, d: Deps, me: Me) -> PgAccountOut:
    return account_out(await d.pg_accounts.get_for(me.merchant_id, account_id))


@router.patch(
    "/pg-accounts/{account_id}",
    responses=WRITE_ERRORS,
    summary="Change this merchant's own PG account (a secret left out is kept)",
)
async def update_account(account_id: str, body: PgAccountPatch, d: Deps, me: Me) -> PgAccountOut:
    changes: dict[str, object] = {
        k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None
    }
    for name in ("api_secret", "webhook_secret"):
        if name in changes:
            changes[name] = _secret(getattr(body, name))
    if body.options is not None:
        changes["options"] = _options(body.options)
    changed = await d.pg_accounts.update(
        account_id, actor=actor(me), merchant_id=me.merchant_id, **changes
    )
    return account_out(changed)


@router.get("/pg-routes", summary="This merchant's primary and secondary PG account")
async def get_routes(d: Deps, me: Me) -> PgRoutesOut:
    return routes_out(await d.pg_accounts.routes(me.merchant_id))


@router.put(
    "/pg-routes",
    responses=WRITE_ERRORS,
    summary="Set the primary and secondary PG account of new cards (audited); cards "
    "already registered stay where their billing key is",
)
async def set_routes(body: PgRoutesIn, d: Deps, me: Me) -> PgRoutesOut:
    for account_id in (body.primary, body.secondary):
        if account_id is not None:
            try:
                await d.pg_accounts.get_for(me.merchant_id, account_id)
            except NotFound:
                raise InvalidInput(f"PG account {account_id} does not exist") from None
    routes = await d.pg_accounts.set_routes(
        me.merchant_id, primary=body.primary, secondary=body.secondary, actor=actor(me)
    )
    return routes_out(routes)
