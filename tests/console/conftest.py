"""Console tests: the console app mounted in the API app over the engine's real
services (SQLite and PostgreSQL via the ``db`` fixture), driven through httpx's ASGI
transport with cookies like a browser; the browser tests (Playwright + Debian's
Chromium) are in ``test_console_browser.py`` and the real-call one under tests/e2e."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from ivr.api.deps import ApiDeps
from ivr.clock import FakeClock
from ivr.console.web import ConsoleDeps
from ivr.runtime import open_runtime
from ivr.store.db import Database
from ivr.web.app import create_app
from tests.api.conftest import Api, Tenant, api_settings
from tests.flows.conftest import FakeBook
from tests.gateways.support import running_sandbox

PASSWORD = "correct horse battery"
# Every HTML page and fragment any console test received (httpx and the browser), for
# the suite-wide card scan in test_zz_card_scan.py: (url, body).
RENDERED: list[tuple[str, str]] = []


async def _keep_html(response: httpx.Response) -> None:
    if response.headers.get("content-type", "").startswith("text/html"):
        await response.aread()
        RENDERED.append((str(response.url), response.text))


BASE = "http://console.test"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no csrf_token in the page"
    return found.group(1)


@dataclass
class Console:
    api: Api
    deps: ConsoleDeps
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self) -> httpx.AsyncClient:
        c = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.api.app),
            base_url=BASE,
            follow_redirects=False,
            event_hooks={"response": [_keep_html]},
        )
        self.clients.append(c)
        return c

    async def user(self, email: str, *, merchant_id: str | None = None) -> str:
        role = "merchant" if merchant_id else "operator"
        u = await self.deps.users.create(email, PASSWORD, role=role, merchant_id=merchant_id)  # type: ignore[arg-type]
        return u.id

    async def login(self, email: str, password: str = PASSWORD) -> httpx.AsyncClient:
        c = self.client()
        r = await try_login(c, email, password)
        assert r.status_code == 303, r.text
        return c

    async def tenant(self, name: str) -> tuple[Tenant, httpx.AsyncClient]:
        """A merchant (API key, customer, card) and a logged-in merchant user."""
        t = await self.api.tenant(name)
        email = f"{t.merchant_id.lower()}@shop.test"
        await self.user(email, merchant_id=t.merchant_id)
        return t, await self.login(email)


async def try_login(c: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    form = await c.get("/console/login")
    assert form.status_code == 200
    return await c.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text)},
    )


async def post(
    c: httpx.AsyncClient, page: str, action: str, data: dict[str, str]
) -> httpx.Response:
    """Submit a form the way the browser does: the CSRF token read from ``page``."""
    shown = await c.get(page)
    assert shown.status_code == 200, shown.text
    return await c.post(action, data={**data, "csrf_token": csrf_of(shown.text)})


@pytest.fixture
async def console(db: Database, tmp_path: Path) -> AsyncIterator[Console]:
    async with running_sandbox(tmp_path / "pg-ledger.db") as sandbox:
        settings = api_settings(tmp_path, sandbox.url)
        clock = FakeClock(datetime(2026, 12, 3, 3, 0, tzinfo=UTC))
        runtime = await open_runtime(settings, clock=clock, db=db, book=FakeBook())
        await runtime.services.dids.import_numbers([f"0505111{i:04d}" for i in range(20)])
        deps = ApiDeps.from_runtime(runtime)
        cdeps = ConsoleDeps.from_runtime(runtime, deps)
        app = create_app(deps, key_cache_s=0.0, console=cdeps)
        c = Console(Api(runtime, deps, app, clock, sandbox, settings), cdeps)
        try:
            yield c
        finally:
            for client in c.clients:
                await client.aclose()
            for t in c.api.tenants:
                await t.client.aclose()
            await runtime.close()
