"""Helpers shared by the resource modules."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.api.deps import ApiDeps
from ivr.api.route import ApiRoute, deps, principal
from ivr.errors import NotFound
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
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    400: {"description": "malformed Idempotency-Key"},
    409: {"description": "conflict, or a duplicate of a request still running"},
    413: {"description": "the body is larger than api.max_body_bytes (bulk: api.max_upload_bytes)"},
}


def router(tag: str) -> APIRouter:
    return APIRouter(prefix="/v1", tags=[tag], route_class=ApiRoute)


async def owned(s: AsyncSession, model: type[M], object_id: str, merchant_id: str, what: str) -> M:
    """The row if it exists and belongs to the merchant; else 404 (never 403: another
    merchant's ids are not even confirmed to exist)."""
    row = await Scope.of(merchant_id).get(s, model, object_id)
    if row is None:
        raise NotFound(f"{what} {object_id} not found")
    return row


async def existing(s: AsyncSession, model: type[M], object_id: str, merchant_id: str) -> M | None:
    """The object a retried idempotent request already created, if any."""
    return await Scope.of(merchant_id).get(s, model, object_id)
