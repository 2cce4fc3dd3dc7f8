"""Test-only endpoints under ``/sandbox/`` (no token; not part of PortOne's API).

``GET /sandbox/health``; ``GET /sandbox/ledger?merchant_uid=…`` (the order's payment,
how many charge requests arrived for it and how many were answered from the ledger);
``GET /sandbox/ledger/summary`` (counts and sums over the whole ledger, tokens issued,
faults injected); ``POST /sandbox/tokens/revoke`` (every access token becomes invalid).
"""

from __future__ import annotations

from aiohttp import web

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
    out.update({f"injected_{k}": v for k, v in st.faults.items()})
    return web.json_response(out)


async def revoke_tokens(request: web.Request) -> web.Response:
    request.app[STATE].tokens.revoke_all()
    return web.json_response({"revoked": True})
