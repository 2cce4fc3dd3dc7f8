"""What happens before a handler runs, and what an idempotent replay keeps: body-size
limits (413 without reading the body), 401s rate limited per source address and per
key prefix (429 + Retry-After), trusted proxies, the idempotency fingerprint over
method, path, query and body, no signing secret in replays, and the API docs from
packaged files with SRI (off by default)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from ivr.api import docs
from ivr.api.deps import ApiDeps
from ivr.store import migrate
from ivr.store.db import Database
from ivr.store.tables import IdempotencyKey
from ivr.web.app import create_app
from tests.api.conftest import Api, problem

pytestmark = pytest.mark.anyio
MB = 1024 * 1024


class Counted:
    """A request body that counts how much of it the server pulled."""

    def __init__(self, size: int, chunk: int = 64 * 1024) -> None:
        self.size = size
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.size:
            n = min(self.chunk, self.size - self.sent)
            self.sent += n
            yield b" " * n


def app_with(api: Api, **api_settings: object) -> httpx.AsyncClient:
    """A client of the same engine's API with other ``api.*`` settings."""
    settings = api.deps.settings.model_copy(update=api_settings)
    deps = ApiDeps(**{**api.deps.__dict__, "settings": settings})
    app = create_app(deps, key_cache_s=0.0)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test")


# ------------------------------------------------------------------ body size


async def test_a_30_mb_json_body_is_answered_413_without_being_read(api: Api) -> None:
    a = await api.tenant("행복치과")
    for headers in ({"Content-Length": str(30 * MB)}, {}):  # declared, and chunked
        body = Counted(30 * MB)
        r = await a.client.post(
            "/v1/customers",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 413, r.text
        p = problem(r)
        assert p["code"] == "payload-too-large"
        assert "api.max_body_bytes" in p["detail"]
        limit = api.deps.settings.max_body_bytes
        assert body.sent <= (limit + body.chunk if not headers else body.chunk), body.sent


async def test_bulk_submissions_have_their_own_larger_limit(api: Api) -> None:
    a = await api.tenant("행복치과")
    big = "x" * (2 * MB)  # over max_body_bytes (1 MiB), under max_upload_bytes (20 MiB)
    csv = f"card_id,amount,order_name\n{a.card_id},1000,{big}\n".encode()
    r = await a.client.post("/v1/bulk-jobs/upload", files={"file": ("c.csv", csv)})
    # read and parsed (the CSV reader refuses a 2 MB field): not refused for its size
    assert r.status_code == 422, r.text
    assert "bulk CSV is malformed" in problem(r)["detail"]
    r = await a.client.post("/v1/customers", json={"mobile": "010-2222-3333", "name": big})
    assert r.status_code == 413
    upload = Counted(25 * MB)
    r = await a.client.post(
        "/v1/bulk-jobs/upload",
        content=upload,
        headers={"Content-Length": str(25 * MB), "Content-Type": "multipart/form-data; b=x"},
    )
    assert r.status_code == 413
    assert "api.max_upload_bytes" in problem(r)["detail"]
    assert upload.sent <= upload.chunk


# ------------------------------------------------------------------ 401s


async def test_invalid_keys_are_rate_limited_per_source_address(api: Api) -> None:
    a = await api.tenant("행복치과")
    budget = api.deps.settings.auth_failures_per_minute
    c = app_with(api)
    attacker = {"X-Forwarded-For": "203.0.113.7"}  # via the (trusted) local proxy
    for n in range(budget):
        r = await c.get("/v1/customers", headers={**attacker, "Authorization": f"Bearer ak_x_{n}"})
        assert r.status_code == 401
    r = await c.get("/v1/customers", headers={**attacker, "Authorization": "Bearer ak_x_y"})
    assert r.status_code == 429
    assert problem(r)["code"] == "rate-limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    r = await c.get("/v1/customers", headers=attacker)  # no key at all: the same budget
    assert r.status_code == 429
    # not even a right key is looked at from that address until the budget refills
    r = await c.get("/v1/customers", headers={**attacker, **a.auth})
    assert r.status_code == 429
    # another address is not affected
    r = await c.get("/v1/customers", headers={"X-Forwarded-For": "198.51.100.9", **a.auth})
    assert r.status_code == 200
    # IPv6: counted per /64
    for n in range(budget):
        addr = f"2001:db8:1:2::{n + 1:x}"
        r = await c.get("/v1/customers", headers={"X-Forwarded-For": addr})
        assert r.status_code == 401
    r = await c.get("/v1/customers", headers={"X-Forwarded-For": "2001:db8:1:2:ffff::1"})
    assert r.status_code == 429
    await c.aclose()


async def test_failures_with_one_key_prefix_are_limited_but_never_lock_out_its_holder(
    api: Api,
) -> None:
    a = await api.tenant("행복치과")
    prefix = a.key.split("_")[1]
    budget = api.deps.settings.auth_failures_per_minute
    c = app_with(api)
    for n in range(budget):  # from many addresses: the per-address budget never runs out
        h = {"X-Forwarded-For": f"192.0.2.{n + 1}", "Authorization": f"Bearer ak_{prefix}_x{n}"}
        assert (await c.get("/v1/customers", headers=h)).status_code == 401
    h = {"X-Forwarded-For": "192.0.2.200", "Authorization": f"Bearer ak_{prefix}_guess"}
    r = await c.get("/v1/customers", headers=h)
    assert r.status_code == 429
    assert "retry-after" in r.headers
    r = await c.get("/v1/customers", headers={"X-Forwarded-For": "192.0.2.201", **a.auth})
    assert r.status_code == 200  # the right key still works
    await c.aclose()


async def test_forwarded_headers_count_only_from_trusted_proxies(api: Api) -> None:
    budget = api.deps.settings.auth_failures_per_minute
    c = app_with(api, trusted_proxies="10.9.9.9")  # the test client (127.0.0.1) is not one
    for n in range(budget):
        r = await c.get("/v1/customers", headers={"X-Forwarded-For": f"192.0.2.{n + 1}"})
        assert r.status_code == 401
    r = await c.get("/v1/customers", headers={"X-Forwarded-For": "192.0.2.250"})
    assert r.status_code == 429  # every one of them was counted against 127.0.0.1
    await c.aclose()


# ------------------------------------------------------------------ idempotency


async def test_the_fingerprint_covers_the_query_string(api: Api) -> None:
    a = await api.tenant("행복치과")
    h = {"Idempotency-Key": "cus-query"}
    body = {"mobile": "010-2222-3333", "name": "김철수"}
    first = await a.client.post("/v1/customers?source=a&x=1", json=body, headers=h)
    assert first.status_code == 201
    same = await a.client.post("/v1/customers?x=1&source=a", json=body, headers=h)
    assert same.status_code == 201  # the same parameters in another order: the same request
    assert same.headers["idempotent-replayed"] == "true"
    other = await a.client.post("/v1/customers?source=b&x=1", json=body, headers=h)
    assert other.status_code == 422
    assert problem(other)["code"] == "idempotency-key-reused"
    other = await a.client.post("/v1/customers", json=body, headers=h)
    assert other.status_code == 422


async def test_a_key_stored_before_the_query_counted_still_replays(api: Api) -> None:
    """Keys stored by the previous version (no version mark) are compared the old way
    until they expire, so a retry across the upgrade is not refused."""
    from ivr.api.idempotency import legacy_fingerprint

    a = await api.tenant("행복치과")
    h = {"Idempotency-Key": "cus-legacy"}
    body = {"mobile": "010-2222-3333", "name": "김철수"}
    first = await a.client.post("/v1/customers", json=body, headers=h)
    raw = json.dumps(body).encode()
    async with api.db.transaction() as s:
        row = await s.get(IdempotencyKey, (a.merchant_id, "cus-legacy"))
        assert row is not None
        assert row.fingerprint.startswith("v")
        row.fingerprint = legacy_fingerprint("POST", "/v1/customers", "application/json", raw)
    again = await a.client.post("/v1/customers", json=body, headers=h)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


async def _replay_rows(db: Database) -> str:
    async with db.sessions() as s:
        rows = (await s.execute(select(IdempotencyKey.response_body))).scalars().all()
    return "\n".join(r or "" for r in rows)


async def test_replays_of_webhook_secrets_withhold_them(api: Api) -> None:
    a = await api.tenant("행복치과")
    h = {"Idempotency-Key": "whe-1"}
    body = {"url": "https://hooks.example/arspay"}
    first = await a.client.post("/v1/webhook-endpoints", json=body, headers=h)
    assert first.status_code == 201
    secret = first.json()["secret"]
    assert secret.startswith("whsec_")
    assert first.json()["secret_withheld"] is False
    replay = await a.client.post("/v1/webhook-endpoints", json=body, headers=h)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    assert replay.json()["secret"] is None
    assert replay.json()["secret_withheld"] is True
    path = f"/v1/webhook-endpoints/{first.json()['id']}/rotate-secret"
    rotated = await a.client.post(path, headers={"Idempotency-Key": "rot-1"})
    new = rotated.json()["secret"]
    assert new.startswith("whsec_")
    replay = await a.client.post(path, headers={"Idempotency-Key": "rot-1"})
    assert replay.json() == {"endpoint_id": first.json()["id"], "secret": None,
                             "secret_withheld": True}  # fmt: skip
    kept = await _replay_rows(api.db)
    assert secret not in kept
    assert new not in kept
    assert "whsec_" not in kept


async def test_the_upgrade_scrubs_secrets_from_replays_stored_before_it(
    empty_db_url: str,
) -> None:
    db = Database(empty_db_url)
    try:
        await migrate.upgrade(db, "0008")
        now = datetime(2026, 12, 6, tzinfo=UTC)
        answer = {"id": "whe_1", "url": "https://h.example", "secret": "whsec_c2VjcmV0"}
        async with db.transaction() as s:
            await s.execute(
                text("INSERT INTO merchants (id, name, status, settings, created_at) "
                     "VALUES ('mer_1', 'm', 'active', '{}', :now)"),
                {"now": now},
            )  # fmt: skip
            s.add(IdempotencyKey(merchant_id="mer_1", key="k", fingerprint="f" * 64,
                                 method="POST", path="/v1/webhook-endpoints", resource_id="r",
                                 state="done", locked_until=now, response_status=201,
                                 response_body=json.dumps(answer), response_headers={},
                                 created_at=now, expires_at=now))  # fmt: skip
        await migrate.upgrade(db)
        kept = json.loads(await _replay_rows(db))
        assert kept == {**answer, "secret": None, "secret_withheld": True}
    finally:
        await db.close()


# ------------------------------------------------------------------ docs


def _sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def test_every_docs_asset_matches_its_pinned_integrity() -> None:
    for name, pinned in docs.ASSETS.items():
        assert _sri((docs.STATIC / name).read_bytes()) == pinned, name


async def test_docs_are_off_by_default_and_openapi_json_stays(api: Api) -> None:
    c = app_with(api)
    assert (await c.get("/docs")).status_code == 404
    assert (await c.get("/redoc")).status_code == 404
    r = await c.get("/openapi.json")
    assert r.status_code == 200
    assert r.json()["info"]["title"] == "arspay"
    await c.aclose()


async def test_enabled_docs_load_only_packaged_files_pinned_by_sri(api: Api) -> None:
    c = app_with(api, docs_enabled=True)
    r = await c.get("/docs")
    assert r.status_code == 200
    page = r.text
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page)  # nothing from elsewhere
    assert "<script>" not in page  # no inline script
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    tags = re.findall(r'(?:src|href)="([^"]+)" integrity="([^"]+)" crossorigin', page)
    assert {Path(u).name for u, _ in tags} == {
        "swagger-ui.css", "swagger-ui-bundle.js", "docs-init.js"
    }  # fmt: skip
    for url, integrity in tags:
        asset = await c.get(url)
        assert asset.status_code == 200
        assert _sri(asset.content) == integrity
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert (await c.get("/docs/assets/swagger-ui/LICENSE")).status_code == 404
    assert (await c.get("/docs/assets/../app.py")).status_code == 404
    init = (await c.get("/docs/assets/docs-init.js")).text
    assert '"/openapi.json"' in init
    assert "queryConfigEnabled: false" in init
    await c.aclose()
