"""Console access: login, lockout, sessions, CSRF, roles and merchant scoping."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ivr.store.tables import AuditLog, ConsoleSession, ConsoleUser
from tests.console.conftest import PASSWORD, Console, csrf_of, post, try_login

pytestmark = pytest.mark.anyio


async def test_login_opens_a_session_whose_token_is_stored_hashed(console: Console) -> None:
    await console.user("op@arspay.test")
    c = await console.login("op@arspay.test")
    token = c.cookies.get("arspay_console")
    assert token
    r = await c.get("/console/")
    assert r.status_code == 200
    assert "op@arspay.test" in r.text
    async with console.api.db.sessions() as s:
        ids = [row.id for row in (await s.execute(ConsoleSession.__table__.select())).all()]
    assert len(ids) == 1
    assert token not in ids[0]  # only a digest is kept


async def test_pages_need_a_login(console: Console) -> None:
    c = console.client()
    r = await c.get("/console/call-requests")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login?next=/console/call-requests"
    r = await c.get("/console/call-requests/rows", headers={"HX-Request": "true"})
    assert r.status_code == 401
    assert r.headers["hx-redirect"].startswith("/console/login")


async def test_wrong_password_and_unknown_email_get_the_same_answer(console: Console) -> None:
    await console.user("op@arspay.test")
    a = await try_login(console.client(), "op@arspay.test", "wrong password!!")
    b = await try_login(console.client(), "nobody@arspay.test", "wrong password!!")
    assert a.status_code == b.status_code == 401
    assert "arspay_console" not in a.cookies
    assert "arspay_console" not in b.cookies


async def test_lockout_after_repeated_failures_refuses_even_the_right_password(
    console: Console,
) -> None:
    await console.user("op@arspay.test")
    limit = console.api.settings.console.lockout_failures
    for _ in range(limit):
        r = await try_login(console.client(), "op@arspay.test", "wrong password!!")
        assert r.status_code == 401
    r = await try_login(console.client(), "op@arspay.test", PASSWORD)
    assert r.status_code == 429
    async with console.api.db.sessions() as s:
        failed = await s.scalars(
            AuditLog.__table__.select().where(AuditLog.action == "console.login_failed")
        )
        assert len(list(failed)) == limit
    console.api.clock.advance(timedelta(minutes=console.api.settings.console.lockout_minutes))
    assert (await try_login(console.client(), "op@arspay.test", PASSWORD)).status_code == 303


async def test_a_post_without_the_csrf_token_is_refused(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    data = {"customer_id": t.customer_id, "kind": "payment", "product_name": "치료비",
            "amount": "50000"}  # fmt: skip
    r = await c.post("/console/call-requests", data=data)
    assert r.status_code == 403
    r = await c.post("/console/call-requests", data={**data, "csrf_token": "forged"})
    assert r.status_code == 403
    page = await c.get("/console/call-requests/new")
    r = await c.post(
        "/console/call-requests",
        data={**data, "csrf_token": csrf_of(page.text)},
        headers={"Origin": "http://evil.test"},
    )
    assert r.status_code == 403  # right token, foreign origin
    r = await post(c, "/console/call-requests/new", "/console/call-requests", data)
    assert r.status_code == 303  # the form as the page gives it


async def test_the_login_form_refuses_a_post_without_its_token(console: Console) -> None:
    await console.user("op@arspay.test")
    c = console.client()
    r = await c.post("/console/login", data={"email": "op@arspay.test", "password": PASSWORD})
    assert r.status_code in (403, 422)
    r = await c.post(
        "/console/login",
        data={"email": "op@arspay.test", "password": PASSWORD, "csrf_token": "x"},
    )
    assert r.status_code == 403
    assert "arspay_console" not in r.cookies


async def test_logout_ends_the_session(console: Console) -> None:
    await console.user("op@arspay.test")
    c = await console.login("op@arspay.test")
    r = await post(c, "/console/", "/console/logout", {})
    assert r.status_code == 303
    assert (await c.get("/console/")).status_code == 303


async def test_idle_sessions_end(console: Console) -> None:
    await console.user("op@arspay.test")
    c = await console.login("op@arspay.test")
    console.api.clock.advance(timedelta(minutes=console.api.settings.console.session_idle_minutes))
    assert (await c.get("/console/")).status_code == 303


async def test_a_disabled_user_is_logged_out_at_once(console: Console) -> None:
    uid = await console.user("op@arspay.test")
    c = await console.login("op@arspay.test")
    await console.deps.users.disable(uid, actor="test")
    assert (await c.get("/console/")).status_code == 303
    async with console.api.db.sessions() as s:
        row = await s.get(ConsoleUser, uid)
        assert row is not None
        assert row.status == "disabled"


async def test_a_merchant_user_cannot_open_another_merchants_request(console: Console) -> None:
    a, ca = await console.tenant("행복치과")
    _, cb = await console.tenant("튼튼정형외과")
    made = await post(ca, "/console/call-requests/new", "/console/call-requests",
                      {"customer_id": a.customer_id, "kind": "payment",
                       "product_name": "치료비", "amount": "50000"})  # fmt: skip
    assert made.status_code == 303
    path = made.headers["location"]
    assert (await ca.get(path)).status_code == 200
    assert (await cb.get(path)).status_code == 404
    assert (await cb.get(path + "/live")).status_code == 404
    r = await post(cb, "/console/", path + "/cancel", {})
    assert r.status_code == 404
    # b cannot create a request for a's customer either
    r = await post(cb, "/console/call-requests/new", "/console/call-requests",
                   {"customer_id": a.customer_id, "kind": "payment", "product_name": "x",
                    "amount": "1000"})  # fmt: skip
    assert r.status_code == 404
    listing = await cb.get("/console/call-requests")
    assert path.rsplit("/", 1)[1] not in listing.text


async def test_security_headers(console: Console) -> None:
    await console.user("op@arspay.test")
    c = await console.login("op@arspay.test")
    r = await c.get("/console/")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    cookie = (await try_login(console.client(), "op@arspay.test", PASSWORD)).headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()


async def test_a_form_missing_a_field_gets_an_error_page_not_json(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    r = await post(c, "/console/call-requests/new", "/console/call-requests",
                   {"customer_id": t.customer_id, "kind": "payment"})  # fmt: skip
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("text/html")
    assert "입력값이 올바르지 않습니다" in r.text
