"""The DID pool (operators only): usage, the numbers with their status and when each was
last leased, the active leases, importing numbers and enabling or disabling one.

A merchant user gets 403 here (the page is an operator page, not another merchant's
object). Imports go through :func:`~ivr.dids.numbers.parse_dids` (the CLI's parser:
one number or range per line) and :meth:`DidPool.import_numbers`; any bad line refuses
the whole import (422, every bad line named). Both actions are audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from ivr.console.access import Deps, Reader, Viewer, Writer
from ivr.console.pages.common import split_page
from ivr.console.render import page
from ivr.dids import queries
from ivr.dids.numbers import parse_dids
from ivr.dids.pool import NEVER
from ivr.domain.states import DidStatus
from ivr.errors import InvalidInput
from ivr.phone import PhoneError, normalize

router = APIRouter()
NUMBERS_PAGE = 100
SHOWN_LEASES = 200
SHOWN_ERRORS = 20
MAX_TEXT = 200_000


def dial(number: str) -> str:
    """A DID as people dial it (``0505-111-0000``); stored digits if it does not parse."""
    try:
        return normalize(number).display
    except PhoneError:
        return number


async def _page(
    request: Request,
    deps: Deps,
    who: Viewer,
    *,
    after: str = "",
    q: str = "",
    text: str = "",
    errors: list[str] | None = None,
    flash: str = "",
) -> Response:
    who.operator_only()
    now = deps.api.clock.now()
    stats = await deps.dids.stats()
    leases = await deps.dids.active_leases()
    digits = "".join(c for c in q if c in "0123456789")
    async with deps.api.db.sessions() as s:
        found = await queries.numbers(s, digits=digits, after=after, limit=NUMBERS_PAGE + 1)
        numbers, last = split_page(found, NUMBERS_PAGE)
        in_use = await queries.leases_in_use(s, [d.number for d in numbers], now)
    return page(
        request, who, "dids.html", stats=stats, leases=leases[:SHOWN_LEASES],
        lease_total=len(leases), numbers=numbers, in_use=in_use, dial=dial, q=q,
        next_after=last.number if last else None, text=text, errors=errors or [],
        flash=flash, never=NEVER, status_code=422 if errors else 200,
    )  # fmt: skip


@router.get("/dids")
async def show_pool(
    request: Request,
    deps: Deps,
    who: Reader,
    after: Annotated[str, Query(max_length=16)] = "",
    q: Annotated[str, Query(max_length=32)] = "",
    added: Annotated[str, Query(max_length=7)] = "",
    existing: Annotated[str, Query(max_length=7)] = "",
) -> Response:
    flash = ""
    if added.isdecimal() and existing.isdecimal():
        flash = who.t("dids.imported", added=int(added), existing=int(existing))
    return await _page(request, deps, who, after=after, q=q, flash=flash)


def check_lines(text: str) -> tuple[list[str], list[str]]:
    """Every number the text names (one number or range per line) and the errors of
    its bad lines; a number is imported only if there is no error at all."""
    errors: list[str] = []
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for n, line in enumerate(lines, start=1):
        try:
            parse_dids([line])
        except InvalidInput as exc:
            errors.append(f"{n}: {exc.message}")
    if errors:
        return [], errors
    try:
        return parse_dids(lines), []  # the whole: no numbers at all, too many
    except InvalidInput as exc:
        return [], [exc.message]


@router.post("/dids/import")
async def import_numbers(
    request: Request,
    deps: Deps,
    who: Writer,
    numbers: Annotated[str, Form(max_length=MAX_TEXT)] = "",
) -> Response:
    who.operator_only()
    found, errors = check_lines(numbers)
    if errors:
        shown = errors[:SHOWN_ERRORS]
        if len(errors) > SHOWN_ERRORS:
            shown.append(f"… (+{len(errors) - SHOWN_ERRORS})")
        return await _page(request, deps, who, text=numbers, errors=shown)
    added = await deps.dids.import_numbers(found, actor=who.actor)  # audited with it
    return RedirectResponse(
        f"/console/dids?added={added}&existing={len(found) - added}", status_code=303
    )


@router.post("/dids/{number}/status")
async def set_status(
    number: str,
    deps: Deps,
    who: Writer,
    status: Annotated[str, Form(max_length=16)],
) -> Response:
    who.operator_only()
    try:
        target = DidStatus(status)
    except ValueError:
        raise InvalidInput("status must be active or disabled") from None
    digits = "".join(c for c in number if c in "0123456789")[:16]
    await deps.dids.set_status(digits, target, actor=who.actor)  # 404 if not in the pool
    return RedirectResponse("/console/dids", status_code=303)
