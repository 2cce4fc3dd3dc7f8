"""The list pages filtered by one status (payments, schedules, cards, call requests):
what they are asked (:data:`Asked`), one page of rows (:func:`status_rows`), and the
page rendered with what every such template takes (``fragments/status_list.html``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute
from starlette.requests import Request
from starlette.responses import Response

from ivr.console.access import Deps, Viewer
from ivr.console.pages.common import Listing, listing, scope_of
from ivr.console.pages.fields import CursorParam, StatusParam
from ivr.console.render import page


@dataclass(frozen=True, slots=True)
class StatusPage:
    """A list page's query string: ``?status=`` (any text: one that is no status lists
    all) and ``?cursor=`` (the page after it; none for the first)."""

    status: str | None
    cursor: str | None


def status_page(status: StatusParam = None, cursor: CursorParam = None) -> StatusPage:
    return StatusPage(status, cursor)


Asked = Annotated[StatusPage, Depends(status_page)]


async def status_rows(
    deps: Deps, who: Viewer, asked: StatusPage, *, query: Callable[..., Select[Any]],
    id_column: InstrumentedAttribute[str], statuses: list[str],
) -> Listing:  # fmt: skip
    """``query(scope, status=...)`` filtered by the asked status when it is one of
    ``statuses`` (anything else lists all): one page of it from the asked cursor."""
    chosen = asked.status if asked.status in statuses else None
    q = query(scope_of(who), status=chosen)
    return await listing(deps.api.db, who, q, id_column, asked.cursor)


async def status_list(
    request: Request, deps: Deps, who: Viewer, template: str, asked: StatusPage, *,
    query: Callable[..., Select[Any]], id_column: InstrumentedAttribute[str],
    statuses: list[str], **values: Any,
) -> Response:  # fmt: skip
    """The :func:`status_rows` page rendered by ``template`` with its rows, customers,
    merchant names and filter, plus ``values``."""
    found = await status_rows(deps, who, asked, query=query, id_column=id_column,
                              statuses=statuses)  # fmt: skip
    return page(request, who, template, rows=found.rows, customers=found.customers,
                names=found.names, next_cursor=found.next_cursor, status=asked.status or "",
                statuses=statuses, **values)  # fmt: skip
