"""Helpers for the PortOne V2 tests: the V2 connector pointed at the sandbox's ``/v2``
mount, and a recorder of every V2 exchange the sandbox serves (for the conformance
test and for header checks)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ivr.gateways.portone_v2 import PortOneV2Config, PortOneV2Gateway
from tests.gateways.support import SECRET, Sandbox, running_sandbox

STORE = "store-arspay-test"
CHANNEL = "channel-key-arspay-test"
V2_DOCUMENT = Path(__file__).resolve().parents[1] / "data" / "portone" / "v2.openapi.json"


def connector_v2(url: str, **overrides: Any) -> PortOneV2Gateway:
    """The V2 connector for the sandbox at ``url`` (its ``/v2`` mount), or for
    ``base_url`` when given (a scripted server)."""
    options: dict[str, Any] = {"timeout_s": 2.0, "connect_timeout_s": 1.0, **overrides}
    options.setdefault("api_secret", SECRET)
    options.setdefault("base_url", f"{url}/v2")
    config = PortOneV2Config(store_id=STORE, channel_key=CHANNEL, **options)
    return PortOneV2Gateway(config)


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str  # the V2 path (without /v2)
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int
    answer: bytes

    def request_json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def answer_json(self) -> Any:
        return json.loads(self.answer)


@dataclass
class Recorder:
    exchanges: list[Exchange] = field(default_factory=list)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.path.startswith("/v2/"):
            return await handler(request)
        raw = await request.read()  # cached: the handler reads it again
        resp = await handler(request)
        answer = resp.body if isinstance(resp, web.Response) else b""
        self.exchanges.append(
            Exchange(request.method, request.path[len("/v2"):], dict(request.query),
                     dict(request.headers), raw, resp.status,
                     answer if isinstance(answer, bytes) else b"")
        )  # fmt: skip
        return resp


@asynccontextmanager
async def recorded_sandbox(
    ledger: Path, **overrides: Any
) -> AsyncIterator[tuple[Sandbox, Recorder]]:
    recorder = Recorder()
    async with running_sandbox(ledger, middlewares=[recorder.middleware], **overrides) as sbx:
        yield sbx, recorder
