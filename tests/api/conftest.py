"""API tests: the FastAPI app over the engine's real services (SQLite and PostgreSQL
via the ``db`` fixture), the sandbox PG in-process over HTTP, the key-file vault, a
FakeClock; requests go through httpx's ASGI transport (no socket) except where a test
says otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ivr.api.deps import ApiDeps
from ivr.clock import FakeClock
from ivr.domain.ids import new_id
from ivr.gateways.contract import BillingKeyRequest
from ivr.runtime import Runtime, open_runtime
from ivr.settings import Settings, load_settings
from ivr.store.db import Database
from ivr.store.tables import Card
from ivr.web.app import create_app
from tests.flows.conftest import FakeBook
from tests.gateways.support import Sandbox, running_sandbox
from tests.gateways.support import card as card_data
from tests.stack import engine_env
from vault.card import CardData as VaultCard
from vault.factory import init_keys

VISA = "4111111111111111"


@dataclass
class Tenant:
    """One merchant with an API key, a customer and an active registered card."""

    merchant_id: str
    key: str
    customer_id: str
    card_id: str
    client: httpx.AsyncClient

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class Api:
    runtime: Runtime
    deps: ApiDeps
    app: FastAPI
    clock: FakeClock
    sandbox: Sandbox
    settings: Settings
    tenants: list[Tenant] = field(default_factory=list)

    @property
    def db(self) -> Database:
        return self.deps.db

    async def tenant(self, name: str) -> Tenant:
        sv = self.runtime.services
        merchant = await sv.merchants.create(name)
        key = await sv.merchants.create_api_key(merchant.id, "test", actor="test")
        customer = await sv.customers.create(merchant.id, mobile=f"0109{len(self.tenants):03d}5678")
        card_id = await add_card(self, merchant.id, customer.id, VISA)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://api.test",
            headers={"Authorization": f"Bearer {key.key}"},
        )
        t = Tenant(merchant.id, key.key, customer.id, card_id, client)
        self.tenants.append(t)
        return t


async def add_card(api: Api, merchant_id: str, customer_id: str, number: str) -> str:
    """A card registered at the sandbox PG (a billing key), as a finished call leaves it."""
    card_id, uid = new_id("card"), f"cu_{new_id('cus')}"
    await api.runtime.gateway.register_billing_key(BillingKeyRequest(uid, card_data(number)))
    meta = await api.runtime.vault.tokenize(
        merchant_id, VaultCard(pan=number, expiry="1230", birth="880101"), who="test"
    )
    async with api.db.transaction() as s:
        s.add(
            Card(
                id=card_id,
                merchant_id=merchant_id,
                customer_id=customer_id,
                vault_token=meta.token,
                fingerprint=None,
                bin6=number[:6],
                last4=number[-4:],
                issuer="테스트카드",
                card_type="check" if number.startswith("5") else "credit",
                owner_type="personal",
                billing_key_ref=uid,
                status="active",
                created_at=api.clock.now(),
            )
        )
    return card_id


def api_settings(tmp_path: Path, sandbox_url: str, **extra: str) -> Settings:
    env = engine_env(
        tmp_path,
        sandbox_url,
        ARSPAY_WEBHOOKS_ALLOW_PRIVATE_TARGETS="true",  # the test receivers are local
        **extra,
    )
    settings = load_settings(env=env)
    init_keys(settings)
    return settings


@asynccontextmanager
async def serving_api(
    db: Database, tmp_path: Path, env: Callable[[Sandbox], dict[str, str]] | None = None
) -> AsyncIterator[Api]:
    """The API over a runtime and the sandbox PG; ``env`` adds settings that name the
    sandbox (the PortOne V2 tests point the engine at its /v2 mount)."""
    async with running_sandbox(tmp_path / "pg-ledger.db") as sandbox:
        settings = api_settings(tmp_path, sandbox.url, **(env(sandbox) if env else {}))
        clock = FakeClock(datetime(2026, 11, 28, 3, 0, tzinfo=UTC))
        runtime = await open_runtime(settings, clock=clock, db=db, book=FakeBook())
        await runtime.services.dids.import_numbers([f"0505111{i:04d}" for i in range(20)])
        deps = ApiDeps.from_runtime(runtime)
        app = create_app(deps, key_cache_s=0.0)
        a = Api(runtime, deps, app, clock, sandbox, settings)
        try:
            yield a
        finally:
            for t in a.tenants:
                await t.client.aclose()
            await runtime.close()


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with serving_api(db, tmp_path) as a:
        yield a


def problem(r: httpx.Response) -> dict[str, Any]:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == r.status_code
    assert body["type"].endswith(body["code"])
    return body
