"""Secure cookies and HSTS (``console.secure_cookies``): on when the console is served
over TLS or behind a TLS proxy the engine trusts, and whenever it listens beyond
loopback; off only for plain-HTTP development on loopback, or when set to ``never``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from ivr.api.deps import ApiDeps
from ivr.clock import FakeClock
from ivr.console.web import ConsoleDeps
from ivr.runtime import open_runtime
from ivr.store.db import Database
from ivr.web.app import create_app
from tests.api.conftest import api_settings
from tests.console.conftest import PASSWORD, csrf_of
from tests.flows.conftest import FakeBook
from tests.gateways.support import running_sandbox

pytestmark = pytest.mark.anyio
EMAIL = "op@arspay.test"


@asynccontextmanager
async def console_app(db: Database, tmp_path: Path, **env: str) -> AsyncIterator[FastAPI]:
    async with running_sandbox(tmp_path / "pg-ledger.db") as sandbox:
        settings = api_settings(tmp_path, sandbox.url, **env)
        clock = FakeClock(datetime(2026, 12, 3, 3, 0, tzinfo=UTC))
        runtime = await open_runtime(settings, clock=clock, db=db, book=FakeBook())
        try:
            deps = ApiDeps.from_runtime(runtime)
            cdeps = ConsoleDeps.from_runtime(runtime, deps)
            if not await cdeps.users.list():
                await cdeps.users.create(EMAIL, PASSWORD, role="operator")
            yield create_app(deps, key_cache_s=0.0, console=cdeps)
        finally:
            await runtime.close()


def client(app: FastAPI, base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)


def cookie_flags(r: httpx.Response, name: str) -> set[str]:
    for line in r.headers.get_list("set-cookie"):
        if line.startswith(name + "="):
            return {part.strip().split("=")[0].lower() for part in line.split(";")[1:]}
    raise AssertionError(f"no {name} cookie in {r.headers.get_list('set-cookie')}")


async def login(c: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    form = await c.get("/console/login", headers=headers)
    token = csrf_of(form.text)
    return await c.post(
        "/console/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
        headers={**headers, "Cookie": f"arspay_login_csrf={token}"},
    )


async def test_served_over_tls_cookies_are_secure_and_hsts_is_sent(
    db: Database, tmp_path: Path
) -> None:
    async with console_app(db, tmp_path) as app:
        c = client(app, "https://console.test")
        form = await c.get("/console/login")
        assert "secure" in cookie_flags(form, "arspay_login_csrf")
        assert form.headers["strict-transport-security"].startswith("max-age=31536000")
        r = await login(c, {})
        assert r.status_code == 303, r.text
        flags = cookie_flags(r, "arspay_console")
        assert {"secure", "httponly", "samesite"} <= flags
        assert "strict-transport-security" in (await c.get("/health")).headers  # the API too
        await c.aclose()


async def test_behind_a_trusted_tls_proxy_too_but_not_an_untrusted_one(
    db: Database, tmp_path: Path
) -> None:
    tls = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"}
    async with console_app(db, tmp_path) as app:  # the local proxy (127.0.0.1) is trusted
        c = client(app, "http://console.test")
        r = await login(c, tls)
        assert r.status_code == 303, r.text
        assert "secure" in cookie_flags(r, "arspay_console")
        assert "strict-transport-security" in r.headers
        plain = await c.get("/console/login")  # plain HTTP on loopback: development
        assert "secure" not in cookie_flags(plain, "arspay_login_csrf")
        assert "strict-transport-security" not in plain.headers
        await c.aclose()
    async with console_app(db, tmp_path / "b", ARSPAY_API_TRUSTED_PROXIES="10.0.0.1") as app:
        c = client(app, "http://console.test")
        r = await c.get("/console/login", headers=tls)
        assert "secure" not in cookie_flags(r, "arspay_login_csrf")
        assert "strict-transport-security" not in r.headers
        await c.aclose()


async def test_listening_beyond_loopback_cookies_are_secure_even_over_plain_http(
    db: Database, tmp_path: Path
) -> None:
    async with console_app(db, tmp_path, ARSPAY_API_HOST="0.0.0.0") as app:  # noqa: S104
        c = client(app, "http://console.test")
        r = await login(c, {})
        assert "secure" in cookie_flags(r, "arspay_console")
        await c.aclose()


@pytest.mark.parametrize(("mode", "secure"), [("always", True), ("never", False)])
async def test_always_and_never(db: Database, tmp_path: Path, mode: str, secure: bool) -> None:
    async with console_app(db, tmp_path, ARSPAY_CONSOLE_SECURE_COOKIES=mode) as app:
        for base in ("http://console.test", "https://console.test"):
            c = client(app, base)
            r = await login(c, {})
            assert ("secure" in cookie_flags(r, "arspay_console")) is secure
            assert ("strict-transport-security" in r.headers) is secure
            await c.aclose()
