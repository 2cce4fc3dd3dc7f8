"""The audit log: who did what to which object, newest first, filtered by action and
object id. A merchant user sees its merchant's rows only; an operator sees every row
with the merchant's name.

Details are written without card data or secrets by design; the page still shows them
compactly (``key=value``, long values cut) and masks any value under a key that names a
secret, in case a future writer slips."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ivr.console.access import Deps, Reader
from ivr.console.pages.common import PAGE, merchant_names, scope_of, split_page
from ivr.console.pages.fields import Before
from ivr.console.render import page
from ivr.merchants.queries import audit_log as audit_rows

router = APIRouter()
LOG_PAGE = PAGE * 2
VALUE_CHARS = 60
_SECRET_KEY = re.compile(
    r"(^|_)(secret|password|passwd|token|key|pan|cvc|cvv|pin|card_number|expiry)($|_)", re.I
)


def compact(details: dict[str, Any] | None) -> str:
    """``key=value key2=value2``; nested values as compact JSON, long ones cut."""
    parts = []
    for key, value in (details or {}).items():
        if _SECRET_KEY.search(str(key)):
            shown = "•••"
        elif isinstance(value, str):
            shown = value
        else:
            shown = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        if len(shown) > VALUE_CHARS:
            shown = shown[: VALUE_CHARS - 1] + "…"
        parts.append(f"{key}={shown}")
    return " ".join(parts)


@router.get("/audit")
async def audit_log(
    request: Request,
    deps: Deps,
    who: Reader,
    before: Before,
    action: Annotated[str, Query(max_length=60)] = "",
    object_id: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    action, object_id = action.strip(), object_id.strip()
    # the action, or every action under it (``bulk`` → ``bulk.submit``)
    q = audit_rows(scope_of(who), action=action, object_id=object_id, before=before)
    async with deps.api.db.sessions() as s:
        rows, last = split_page(list(await s.scalars(q.limit(LOG_PAGE + 1))), LOG_PAGE)
        names = await merchant_names(s, who)
    return page(request, who, "audit.html", rows=rows, names=names, action=action,
                object_id=object_id, compact=compact,
                next_before=last.id if last else None)  # fmt: skip
