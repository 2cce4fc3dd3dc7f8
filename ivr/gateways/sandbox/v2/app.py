"""The V2 mount's aiohttp sub-application: its gate (latency, ``Authorization:
PortOne <API secret>``, else 401 ``UNAUTHORIZED``), its table, its routes. It shares the
parent's state (``request.config_dict[STATE]``): ledger, fault plan, card table."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from ivr.gateways.sandbox.state import STATE, SandboxState
from ivr.gateways.sandbox.v2 import answers, billing, payments
from ivr.gateways.sandbox.v2 import records as r

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def v2_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    st = request.config_dict[STATE]
    if st.config.latency_ms:
        await asyncio.sleep(st.config.latency_ms / 1000)
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme != "PortOne" or not hmac.compare_digest(
        secret.encode(), st.config.imp_secret.encode()
    ):
        return answers.error(401, "UNAUTHORIZED", "인증 정보가 올바르지 않습니다.")
    return await handler(request)


def create_v2_app(state: SandboxState) -> web.Application:
    """Mounted by :func:`ivr.gateways.sandbox.app.create_app` with its state; the V2
    table is created once the parent opened the ledger (its startup runs first)."""
    app = web.Application(middlewares=[v2_gate])

    async def schema(_: web.Application) -> None:
        await state.ledger.run(lambda: r.create_schema(state.ledger.db))

    app.on_startup.append(schema)
    app.router.add_post("/billing-keys", billing.issue)
    app.router.add_get("/billing-keys", billing.get_many)
    app.router.add_get("/billing-keys/{billing_key}", billing.get_one)
    app.router.add_delete("/billing-keys/{billing_key}", billing.delete)
    app.router.add_post("/payments/{payment_id}/billing-key", payments.with_billing_key)
    app.router.add_post("/payments/{payment_id}/instant", payments.instant)
    app.router.add_post("/payments/{payment_id}/cancel", payments.cancel)
    app.router.add_get("/payments/{payment_id}", payments.get)
    return app
