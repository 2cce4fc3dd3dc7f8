"""PG accounts as a merchant sees them: the accounts its cards can be registered at
(no credential in any form: those are the operators', managed on the CLI and the
console) and its own routes, a primary and an optional secondary.

A route names an account by id; ``default`` is the engine's ``[gateway]`` settings.
New cards go to the primary, to the secondary while the primary's PG is down; a card
already registered stays at the account that holds its billing key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

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
    )


def routes_out(r: Routes) -> PgRoutesOut:
    return PgRoutesOut(primary=r.primary, secondary=r.secondary)


@router.get("/pg-accounts", summary="The PG accounts this merchant's cards can be registered at")
async def list_accounts(d: Deps, me: Me) -> list[PgAccountOut]:
    return [account_out(a) for a in await d.pg_accounts.list() if a.active]


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
                await d.pg_accounts.get(account_id)
            except NotFound:
                raise InvalidInput(f"PG account {account_id} does not exist") from None
    routes = await d.pg_accounts.set_routes(
        me.merchant_id, primary=body.primary, secondary=body.secondary, actor=actor(me)
    )
    return routes_out(routes)
