"""Test-only endpoints under ``/sandbox/`` (no token; not part of PortOne's API).

``GET /sandbox/health``; ``GET /sandbox/ledger?merchant_uid=…`` (the order's payment,
how many charge requests arrived for it and how many were answered from the ledger);
``GET /sandbox/ledger/summary`` (counts and sums over the whole ledger, tokens issued,
faults injected); ``POST /sandbox/tokens/revoke`` (every access token becomes invalid);
``POST /sandbox/faults`` (a deterministic trigger: ``{endpoint, ordering, delay_ms,
count, match}``, see :mod:`.faults`), ``GET`` lists the pending ones, ``DELETE`` clears.
"""

from __future__ import annotations

from aiohttp import web

from ivr.errors import InvalidInput
from ivr.gateways.sandbox.state import STATE


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def ledger(request: web.Request) -> web.Response:
    merchant_uid = request.query.get("merchant_uid")
    if not merchant_uid:
        return web.json_response({"error": "merchant_uid is required"}, status=400)
    return web.json_response(await request.app[STATE].ledger.order_view(merchant_uid))


async def summary(request: web.Request) -> web.Response:
    st = request.app[STATE]
    out: dict[str, int] = dict(await st.ledger.summary())
    out["tokens_issued"] = st.tokens.issued
    out.update({f"injected_{k}": v for k, v in st.plan.counts.items()})
    return web.json_response(out)


async def revoke_tokens(request: web.Request) -> web.Response:
    request.app[STATE].tokens.revoke_all()
    return web.json_response({"revoked": True})


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response([t.view() for t in request.app[STATE].plan.triggers])


async def add_fault(request: web.Request) -> web.Response:
    try:
        data = await request.json()
        if not isinstance(data, dict):
            raise InvalidInput("body must be a JSON object")
        trigger = request.app[STATE].plan.add(data)
    except ValueError:
        return web.json_response({"error": "body is not JSON"}, status=400)
    except InvalidInput as exc:
        return web.json_response({"error": exc.message}, status=400)
    return web.json_response(trigger.view(), status=201)


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].plan.clear()
    return web.json_response({"cleared": True})
