"""A scripted PortOne stand-in on loopback for the error-mapping tests (v1 and V2
paths): ``getToken`` always works; every other route answers what the test scripted (or
hangs/drops)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None  # JSON-encoded unless it is bytes
    drop: bool = False  # cut the connection instead of answering
    delay_s: float = 0.0


@dataclass
class FakePg:
    url: str
    calls: Counter[str] = field(default_factory=Counter)


ROUTES = {
    "POST /subscribe/customers/{rest}": ("POST", "/subscribe/customers/{rest}"),
    "POST /subscribe/payments/again": ("POST", "/subscribe/payments/again"),
    "POST /subscribe/payments/onetime": ("POST", "/subscribe/payments/onetime"),
    "POST /payments/cancel": ("POST", "/payments/cancel"),
    "GET /payments/find/{rest}": ("GET", "/payments/find/{rest}"),
    "GET /payments/findAll/{rest}": ("GET", "/payments/findAll/{rest}"),
    # PortOne V2
    "POST /billing-keys": ("POST", "/billing-keys"),
    "GET /billing-keys": ("GET", "/billing-keys"),
    "GET /billing-keys/{rest}": ("GET", "/billing-keys/{rest}"),
    "DELETE /billing-keys/{rest}": ("DELETE", "/billing-keys/{rest}"),
    "POST /payments/{rest}/billing-key": ("POST", "/payments/{rest}/billing-key"),
    "POST /payments/{rest}/instant": ("POST", "/payments/{rest}/instant"),
    "POST /payments/{rest}/cancel": ("POST", "/payments/{rest}/cancel"),
    "GET /payments/{rest}": ("GET", "/payments/{rest}"),
}


@asynccontextmanager
async def scripted_pg(script: dict[str, Reply]) -> AsyncIterator[FakePg]:
    app = web.Application()
    fake = FakePg(url="")

    async def token(request: web.Request) -> web.Response:
        fake.calls["POST /users/getToken"] += 1
        body = {"access_token": "fake-token", "now": 1_000, "expired_at": 2_800}
        return web.json_response({"code": 0, "message": None, "response": body})

    def handler(name: str) -> Any:
        async def answer(request: web.Request) -> web.StreamResponse:
            fake.calls[name] += 1
            reply = script.get(name, Reply(500))
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            if reply.drop:
                assert request.transport is not None
                request.transport.abort()
                return web.Response(status=204)
            if isinstance(reply.body, bytes):
                return web.Response(status=reply.status, body=reply.body)
            return web.json_response(reply.body, status=reply.status)

        return answer

    app.router.add_post("/users/getToken", token)
    for name, (method, path) in ROUTES.items():
        app.router.add_route(method, path, handler(name))
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    try:
        yield fake
    finally:
        await server.close()
