"""Helpers shared by the resource modules."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.api.deps import ApiDeps
from ivr.api.route import ApiRoute, deps, new_object_id, principal
from ivr.merchants.service import Principal
from ivr.store.scope import Scope

M = TypeVar("M")

Deps = Annotated[ApiDeps, Depends(deps)]
Me = Annotated[Principal, Depends(principal)]
Cursor = Annotated[
    str | None, Query(max_length=200, description="next_cursor of the previous page")
]
Limit = Annotated[int, Query(ge=1, le=100, description="page size")]

ERRORS: dict[int | str, dict[str, Any]] = {  # all application/problem+json (app.py)
    401: {"description": "missing or invalid API key"},
    404: {"description": "no such object (or not yours)"},
    422: {"description": "the request does not match the schema, or its values are refused"},
    429: {
        "description": "rate limited, or too many requests with an invalid API key from this "
        "address (see Retry-After)"
    },
    500: {"description": "internal error"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {  # besides ERRORS, on every write
    400: {"description": "malformed Idempotency-Key"},
    409: {"description": "conflict, or a duplicate of a request still running"},
    413: {"description": "the body is larger than api.max_body_bytes (bulk: api.max_upload_bytes)"},
}


def router(tag: str) -> APIRouter:
    """The router of one resource: every route answers :data:`ERRORS` too."""
    return APIRouter(prefix="/v1", tags=[tag], route_class=ApiRoute, responses=ERRORS)


@dataclass(frozen=True)
class PageQuery:
    """The page a ``GET`` list asks for."""

    cursor: str | None
    limit: int


def _paging(cursor: Cursor = None, limit: Limit = 20) -> PageQuery:
    return PageQuery(cursor, limit)


Paging = Annotated[PageQuery, Depends(_paging)]
ByCustomer = Annotated[str | None, Query(max_length=40)]  # a list's customer_id filter


def value(state: StrEnum | None) -> str | None:
    """A state filter's stored value (``None``: any)."""
    return None if state is None else state.value


async def owned(s: AsyncSession, model: type[M], object_id: str, merchant_id: str, what: str) -> M:
    """The row if it exists and belongs to the merchant; else 404 (never 403: another
    merchant's ids are not even confirmed to exist)."""
    return await Scope.of(merchant_id).one(s, model, object_id, what)


async def retried(
    request: Request, d: ApiDeps, me: Principal, model: type[M], prefix: str
) -> tuple[str, M | None]:
    """The id of the object a create request makes (:func:`new_object_id`), and that
    object if a retry of the request finds it made already."""
    rid = new_object_id(request, prefix)
    async with d.db.sessions() as s:
        return rid, await Scope.of(me.merchant_id).get(s, model, rid)
