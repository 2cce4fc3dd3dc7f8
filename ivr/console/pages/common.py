"""What every page module shares: the viewer's :class:`~ivr.store.scope.Scope` (every
read a page makes goes through it), the viewer's rows by id, pagination, and the
merchant picker an operator uses where an object must belong to someone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from ivr.console.access import Viewer
from ivr.domain.text import text_problem
from ivr.errors import InvalidInput, NotFound
from ivr.merchants import queries
from ivr.store.db import Database
from ivr.store.scope import Scope
from ivr.store.tables import Customer
from ivr.web.pagination import fetch_page
from ivr.web.problems import Problem

M = TypeVar("M")
PAGE = 25


def scope_of(viewer: Viewer) -> Scope:
    """The scope of every read a page makes for ``viewer`` (operators: every merchant)."""
    return Scope(viewer.scope)


async def owned(s: AsyncSession, model: type[M], object_id: str, viewer: Viewer, what: str) -> M:
    """The row if it exists and the viewer may see it; else 404 (never 403)."""
    row = await scope_of(viewer).get(s, model, object_id)
    if row is None:
        raise NotFound(f"{what} not found")
    return row


async def fetch_owned(db: Database, model: type[M], object_id: str, viewer: Viewer,
                      what: str) -> M:  # fmt: skip
    """:func:`owned`, read in a session of its own (for a handler that then acts)."""
    async with db.sessions() as s:
        return await owned(s, model, object_id, viewer, what)


def split_page(rows: Sequence[M], size: int) -> tuple[list[M], M | None]:
    """``rows`` read as one more than a page of ``size``: the page, and its last row when
    another page follows (``None`` on the last page)."""
    shown = list(rows[:size])
    return shown, (shown[-1] if len(rows) > size else None)


async def page_of(
    s: AsyncSession,
    query: Select[Any],
    id_column: InstrumentedAttribute[str],
    cursor: str | None,
    limit: int = PAGE,
) -> tuple[list[Any], str | None]:
    try:
        return await fetch_page(s, query, id_column, cursor or None, limit)
    except Problem:
        raise InvalidInput("bad page cursor") from None


async def customers_of(s: AsyncSession, viewer: Viewer, rows: list[Any]) -> dict[str, Customer]:
    """The customers of ``rows`` (anything with a ``customer_id``), by id: one query."""
    return await queries.customers_of(s, scope_of(viewer), rows)


@dataclass(frozen=True, slots=True)
class Listing:
    """One page of a list of rows that each name a customer, with the customers and
    the merchant names the list shows beside them."""

    rows: list[Any]
    next_cursor: str | None
    customers: dict[str, Customer]
    names: dict[str, str]


async def listing(
    db: Database, viewer: Viewer, query: Select[Any], id_column: InstrumentedAttribute[str],
    cursor: str | None,
) -> Listing:  # fmt: skip
    async with db.sessions() as s:
        rows, nxt = await page_of(s, query, id_column, cursor)
        return Listing(rows, nxt, await customers_of(s, viewer, rows),
                       await merchant_names(s, viewer))  # fmt: skip


async def merchant_names(s: AsyncSession, viewer: Viewer) -> dict[str, str]:
    """Merchant id → name, for the merchant column and picker operators see."""
    return await queries.merchant_names(s, scope_of(viewer))


def refused_text(*values: str) -> bool:
    """Whether any of a form's ``values`` is one the text guard refuses (ivr/domain/text.py)."""
    return any(text_problem(v, "") is not None for v in values)


def echoable(value: str) -> str:
    """``value`` to show back in a re-rendered form, or ``""`` when the text guard
    refuses it: a card number typed into a field is not sent back to the browser."""
    return "" if refused_text(value) else value


def acting_merchant(viewer: Viewer, chosen: str | None) -> str:
    """The merchant a new object belongs to: a merchant user's own, or the one an
    operator chose in the form."""
    if viewer.scope is not None:
        return viewer.scope
    if not chosen:
        raise InvalidInput("choose a merchant")
    return chosen
