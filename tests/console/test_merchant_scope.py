"""Every read the API and the console serve goes through the merchant scope.

Merchant scoping lives in one place, :class:`ivr.store.scope.Scope`: it adds the
``merchant_id`` filter of each merchant-owned table a read names and marks the
statement with the tables it scoped. Here the engine is watched (``before_cursor_execute``)
while a merchant's console user opens every console page and its API key reads every
API resource: a SELECT naming a merchant-owned table without the scope's mark for it
fails the test — a new query that forgets the scope is caught, wherever it is written.
The walk covers every GET route of both apps (a route added without ids to fill in
fails too). A structural check keeps the queries out of the web layer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import event
from sqlalchemy.engine import Engine

from ivr.api.app import ROUTERS as API_ROUTERS
from ivr.console.pages import ROUTERS as CONSOLE_ROUTERS
from ivr.store.scope import MARK
from ivr.store.tables import Base
from ivr.webhooks.events import emit_in
from tests.api.test_api_authz import TABLE, a_objects, request_kw
from tests.console.conftest import Console

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
MERCHANT_TABLES = frozenset(
    {t.name for t in Base.metadata.sorted_tables if "merchant_id" in t.c} | {"merchants"}
)
# Read before the scope is known, to learn who is asking (an API key by its hash, a
# console session by its cookie): these name a merchant-owned table on purpose.
WHO_IS_ASKING = frozenset({"api_keys", "console_users", "console_sessions"})
# Bulk jobs keep their merchant in the jobs' payload (the scope knows that column): on
# the bulk pages and routes, the jobs table is merchant-owned too.
BULK_PATHS = ("/console/bulk", "/v1/bulk-jobs")
_NAMED = re.compile(r'\b(?:FROM|JOIN)\s+"?([a-z_]+)"?', re.IGNORECASE)

_serving: ContextVar[str | None] = ContextVar("serving", default=None)


def test_no_query_is_written_in_the_web_layer() -> None:
    places = sorted((ROOT / "ivr/console/pages").glob("*.py"))
    places += sorted((ROOT / "ivr/api/routes").glob("*.py"))
    writing = [str(p.relative_to(ROOT)) for p in places if "select(" in p.read_text()]
    assert writing == [], "queries belong to the read models (ivr/*/queries.py)"


class Watch:
    """The SELECTs that named a merchant-owned table the scope did not mark."""

    def __init__(self) -> None:
        self.unscoped: list[tuple[str, str, list[str]]] = []
        self.seen = 0

    def __call__(self, conn: Any, cursor: Any, statement: str, parameters: Any,
                 context: Any, executemany: bool) -> None:  # fmt: skip
        where = _serving.get()
        if where is None or not statement.lstrip().upper().startswith("SELECT"):
            return
        owned = MERCHANT_TABLES | ({"jobs"} if where.startswith(BULK_PATHS) else set())
        named = set(_NAMED.findall(statement)) & owned
        if not named or named & WHO_IS_ASKING:
            return
        self.seen += 1
        marked = context.execution_options.get(MARK, frozenset()) if context else frozenset()
        missing = sorted(named - marked)
        if missing:
            self.unscoped.append((where, " ".join(statement.split())[:300], missing))

    @contextmanager
    def serving(self, where: str | None) -> Iterator[None]:
        token = _serving.set(where)
        try:
            yield
        finally:
            _serving.reset(token)


@pytest.fixture
def watch() -> Iterator[Watch]:
    w = Watch()
    event.listen(Engine, "before_cursor_execute", w)
    try:
        yield w
    finally:
        event.remove(Engine, "before_cursor_execute", w)


def _get_paths(routers: Any, prefix: str) -> list[str]:
    return sorted(
        prefix + r.path
        for router in routers
        for r in router.routes
        if isinstance(r, APIRoute) and "GET" in r.methods
    )


async def test_every_read_goes_through_the_scope(console: Console, watch: Watch) -> None:
    api = console.api
    t, page = await console.tenant("행복치과")
    other, _ = await console.tenant("푸른학원")  # rows a forgotten filter would show
    ids = await a_objects(api, t)
    await a_objects(api, other)
    async with api.db.transaction() as s:
        await emit_in(s, api.clock, t.merchant_id, "payment.succeeded", {"id": ids["payment_id"]})
    consent = await page.get("/console/consent")
    found = re.search(r'href="/console/consent/([^"/]+)"', consent.text)
    ids["record_id"] = found.group(1) if found else "cr_none"
    ids["to"] = "ko"
    ids["account_id"] = "default"  # a PG account (operators' pages: 403 to a merchant)
    ids["kind"] = "charges"  # a bulk kind (its template)

    walked = []
    paths = _get_paths(API_ROUTERS, "") + _get_paths(CONSOLE_ROUTERS, "/console")
    # The login and language pages end or change the session: last.
    paths.sort(key=lambda p: p.startswith(("/console/login", "/console/lang")))
    for path in paths:
        url = path.format(**ids)  # a KeyError: a new route needs its ids here
        client = t.client if path.startswith("/v1") else page
        with watch.serving(url):
            r = await client.get(url)
        assert r.status_code < 500, f"{url}: {r.status_code} {r.text[:300]}"
        walked.append((url, r.status_code))
    assert watch.seen > 50, walked  # the walk really read merchant-owned tables
    assert watch.unscoped == [], "\n".join(map(str, watch.unscoped))


async def test_every_write_checks_ownership_through_the_scope(
    console: Console, watch: Watch
) -> None:
    """The write paths too: merchant B sends every POST, PATCH and DELETE of the API
    with A's ids (404 each, see ``tests/api/test_api_authz.py``) while the engine is
    watched — an ownership check written by hand (``s.get`` and a comparison) instead of
    :meth:`Scope.get` / :meth:`Scope.one` names a merchant-owned table unmarked."""
    a, _ = await console.tenant("행복치과")
    b, _ = await console.tenant("푸른학원")
    ids = await a_objects(console.api, a)
    writes = [row for row in TABLE if row.method != "GET"]
    for row in writes:
        with watch.serving(f"{row.method} {row.path}"):
            r = await b.client.request(row.method, row.path.format(**ids), **request_kw(row, ids))
        assert r.status_code == (201 if row.listing else 404) or (
            row.listing and r.status_code == 200
        ), f"{row.method} {row.path}: {r.status_code} {r.text[:200]}"
    assert watch.seen > len(writes)  # the writes really read merchant-owned rows
    assert watch.unscoped == [], "\n".join(map(str, watch.unscoped))


async def test_a_forgotten_scope_is_caught(console: Console, watch: Watch) -> None:
    """The watch itself: a read that skips the scope is reported."""
    from sqlalchemy import select

    from ivr.store.tables import Customer

    t, _ = await console.tenant("행복치과")
    with watch.serving("a forgetful read"):
        async with console.api.db.sessions() as s:
            await s.scalars(select(Customer).where(Customer.id == t.customer_id))
    assert [where for where, _, _ in watch.unscoped] == ["a forgetful read"]
