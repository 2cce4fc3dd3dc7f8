"""The list pages filtered by one status (payments, schedules, cards): the filter, one
page of rows through :func:`listing`, and the page rendered with what every such
template takes (``fragments/status_list.html``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute
from starlette.requests import Request
from starlette.responses import Response

from ivr.console.access import Deps, Viewer
from ivr.console.pages.common import listing, scope_of
from ivr.console.render import page


async def status_list(
    request: Request, deps: Deps, who: Viewer, template: str, *,
    query: Callable[..., Select[Any]], id_column: InstrumentedAttribute[str],
    statuses: list[str], status: str | None, cursor: str | None, **values: Any,
) -> Response:  # fmt: skip
    """``query(scope, status=...)`` filtered by ``status`` when it is one of ``statuses``
    (anything else lists all), one page of it from ``cursor``, rendered by ``template``
    with the page's rows, customers, merchant names and filter, plus ``values``."""
    chosen = status if status in statuses else None
    found = await listing(deps.api.db, who, query(scope_of(who), status=chosen), id_column, cursor)
    return page(request, who, template, rows=found.rows, customers=found.customers,
                names=found.names, next_cursor=found.next_cursor, status=status or "",
                statuses=statuses, **values)  # fmt: skip
