"""The sandbox PG's aiohttp application: routes, token check, latency, lifetime.

    app = create_app(SandboxConfig(imp_key="k", imp_secret="s", ledger_path=path))

The ledger opens and closes with the app (``cleanup_ctx``). Every PortOne path waits
``latency_ms`` and, except ``/users/getToken``, requires a valid access token (401 with
the envelope otherwise). ``/sandbox/*`` is test-only and unauthenticated. PortOne V2
is mounted at ``/v2`` (:mod:`ivr.gateways.sandbox.v2`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from ivr.gateways.sandbox import billing, inspect, payments, receipts
from ivr.gateways.sandbox import http as h
from ivr.gateways.sandbox.config import SandboxConfig
from ivr.gateways.sandbox.faults import FaultPlan
from ivr.gateways.sandbox.ledger import Ledger
from ivr.gateways.sandbox.state import STATE, SandboxState
from ivr.gateways.sandbox.tokens import TokenStore
from ivr.gateways.sandbox.v2.app import create_v2_app

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OPEN_PATHS = ("/users/getToken",)


async def get_token(request: web.Request) -> web.Response:
    st = request.app[STATE]
    try:
        data = await h.read_body(request)
    except h.BadRequest as exc:
        return h.bad_request(str(exc))
    if not st.tokens.credentials_ok(data.get("imp_key"), data.get("imp_secret")):
        return h.envelope(-1, "[UNAUTHORIZED] imp_key, imp_secret 인증에 실패했습니다.", status=401)
    token, now, expired_at = st.tokens.issue()
    return h.ok({"access_token": token, "now": now, "expired_at": expired_at})


@web.middleware
async def portone_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(("/sandbox/", "/v2/")):  # /v2: its own gate (v2/app.py)
        return await handler(request)
    st = request.app[STATE]
    if st.config.latency_ms:
        await asyncio.sleep(st.config.latency_ms / 1000)
    if request.path not in _OPEN_PATHS and not st.tokens.valid(request.headers):
        return h.envelope(-1, "[UNAUTHORIZED] 인증 토큰이 없거나 만료되었습니다.", status=401)
    return await handler(request)


def create_app(config: SandboxConfig) -> web.Application:
    app = web.Application(middlewares=[portone_gate])
    app[STATE] = SandboxState(
        config=config,
        ledger=Ledger(config.ledger_path),
        tokens=TokenStore(config.imp_key, config.imp_secret, config.token_ttl_s),
        plan=FaultPlan(config.fault_specs(), random.Random(config.seed)),  # not secrets
    )

    async def ledger_lifetime(app: web.Application) -> AsyncIterator[None]:
        await app[STATE].ledger.open()
        yield
        pending = list(app[STATE].background)  # requests still being recorded: let them
        if pending:
            await asyncio.wait(pending, timeout=10)
        await app[STATE].ledger.close()

    app.cleanup_ctx.append(ledger_lifetime)
    app.router.add_post("/users/getToken", get_token)
    app.router.add_post("/subscribe/customers/{customer_uid}", billing.register)
    app.router.add_get("/subscribe/customers/{customer_uid}", billing.view)
    app.router.add_delete("/subscribe/customers/{customer_uid}", billing.delete)
    app.router.add_post("/subscribe/payments/again", billing.again)
    app.router.add_post("/subscribe/payments/onetime", billing.onetime)
    app.router.add_post("/payments/cancel", payments.cancel)
    app.router.add_get("/payments/find/{merchant_uid}", payments.find)
    app.router.add_get("/payments/find/{merchant_uid}/{payment_status}", payments.find)
    app.router.add_get("/payments/findAll/{merchant_uid}", payments.find_all)
    app.router.add_get("/payments/findAll/{merchant_uid}/{payment_status}", payments.find_all)
    app.router.add_get("/sandbox/health", inspect.health)
    app.router.add_get("/sandbox/receipts/{imp_uid}", receipts.page)
    app.router.add_get("/sandbox/ledger", inspect.ledger)
    app.router.add_get("/sandbox/ledger/summary", inspect.summary)
    app.router.add_post("/sandbox/tokens/revoke", inspect.revoke_tokens)
    app.router.add_get("/sandbox/faults", inspect.list_faults)
    app.router.add_post("/sandbox/faults", inspect.add_fault)
    app.router.add_delete("/sandbox/faults", inspect.clear_faults)
    app.add_subapp("/v2", create_v2_app(app[STATE]))  # PortOne V2, same ledger and card table
    return app
