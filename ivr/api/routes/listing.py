"""One page of a ``GET`` list, the same for every resource: the query's rows after the
cursor, each through its view, as a :class:`~ivr.api.schemas.Page`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from ivr.api import schemas as S
from ivr.api.deps import ApiDeps
from ivr.api.routes.common import PageQuery
from ivr.web.pagination import fetch_page

Out = TypeVar("Out")


async def listed(
    d: ApiDeps,
    asked: PageQuery,
    page: type[S.Page[Out]],
    query: Select[Any],
    id_column: InstrumentedAttribute[str],
    view: Callable[[Any], Out],
) -> S.Page[Out]:
    """The ``asked`` page of ``query`` (already scoped to the merchant) as ``page``:
    rows by ``id_column``, each shown through ``view``."""
    async with d.db.sessions() as s:
        rows, nxt = await fetch_page(s, query, id_column, asked.cursor, asked.limit)
    return page.of([view(r) for r in rows], nxt)
