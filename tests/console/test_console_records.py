"""Console record pages: customers, schedules and their timeline; and, for every page
of customers / cards / payments / schedules: merchant scoping (another merchant gets
404 on pages and actions), CSRF on every action, both languages, and that no page
shows a full card number or a full mobile number."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from ivr.store.tables import AuditLog, Card, Customer, PaymentIntent, Refund, Schedule
from tests.api.conftest import VISA, Tenant, add_card
from tests.console.conftest import Console, post
from tests.console.test_console_money import charge
from tests.stored import row_of

pytestmark = pytest.mark.anyio

FULL_MOBILE = "01090005678"  # the first tenant's customer (tests/api/conftest.py)


async def schedule(t: Tenant, card_id: str | None = None, **plan: object) -> str:
    body = {
        "customer_id": t.customer_id,
        "card_id": card_id or t.card_id,
        "amount": 30_000,
        "order_name": "월 회비",
        "mode": "auto",
        "plan": {"rule": {"every": "month", "day": 31}, "start": "2027-01-31", "count": 12,
                 **plan},
    }  # fmt: skip
    r = await t.client.post("/v1/schedules", json=body)
    assert r.status_code == 201, r.text
    sid: str = r.json()["id"]
    return sid


async def schedule_row(console: Console, sid: str) -> Schedule:
    return await row_of(console.api.db, Schedule, sid)


# ---------------------------------------------------------------------- customers


async def _created_customer(console: Console, r: httpx.Response) -> Customer:
    """The customer a console form created: its page is where ``r`` redirects."""
    assert r.status_code == 303
    return await row_of(
        console.api.db, Customer, r.headers["location"].split("/")[-1].split("?")[0]
    )


async def test_customers_list_search_and_detail(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    other = await console.api.runtime.services.customers.create(
        t.merchant_id, mobile="010-2222-4321", name="김영희", external_ref="M-0042"
    )
    r = await c.get("/console/customers")
    assert r.status_code == 200
    assert t.customer_id in r.text
    assert other.id in r.text
    assert "010-****-4321" in r.text
    assert "01022224321" not in r.text
    r = await c.get("/console/customers", params={"q": "M-0042"})
    assert other.id in r.text
    assert t.customer_id not in r.text
    r = await c.get("/console/customers", params={"q": "5678"})  # mobile last 4
    assert t.customer_id in r.text
    assert other.id not in r.text
    r = await c.get("/console/customers", params={"q": "no-such-ref"})
    assert t.customer_id not in r.text
    assert other.id not in r.text

    pid = await charge(t, 15_000, "치료비")
    sid = await schedule(t)
    r = await c.get(f"/console/customers/{t.customer_id}")
    assert r.status_code == 200
    assert "411111******1111" in r.text  # the card
    assert pid in r.text
    assert "15,000원" in r.text
    assert sid in r.text
    assert "매월 31일 · 총 12회 · 10:00 결제" in r.text
    assert "010-****-5678" in r.text


async def test_a_merchant_user_adds_a_customer(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    data = {"mobile": "010-3333-1234", "name": "홍길동", "external_ref": "EXT-1"}
    r = await post(c, "/console/customers/new", "/console/customers", data)
    assert r.status_code == 303
    cid = r.headers["location"].split("/")[-1].split("?")[0]
    page = await c.get(r.headers["location"])
    assert page.status_code == 200
    assert "고객을 등록했습니다." in page.text
    async with console.api.db.sessions() as s:
        row = await s.get(Customer, cid)
        assert row is not None
        assert (row.merchant_id, row.mobile, row.external_ref) == (
            t.merchant_id, "01033331234", "EXT-1")  # fmt: skip
        actor = await s.scalar(
            select(AuditLog.actor).where(
                AuditLog.action == "customer.create", AuditLog.object_id == cid
            )
        )
    assert actor is not None
    assert actor.startswith("console:")

    # bad input: shown on the form (422), what was typed kept, nothing created
    r = await post(c, "/console/customers/new", "/console/customers",
                   {"mobile": "02-123-4567", "name": "이순신"})  # fmt: skip
    assert r.status_code == 422
    assert "휴대폰 번호가 올바르지 않습니다" in r.text
    assert 'value="이순신"' in r.text
    r = await post(c, "/console/customers/new", "/console/customers",
                   {"mobile": "010-4444-1234", "external_ref": "EXT-1"})  # fmt: skip
    assert r.status_code == 422
    assert "이미 있습니다" in r.text
    async with console.api.db.sessions() as s:
        mobiles = set(
            await s.scalars(select(Customer.mobile).where(Customer.merchant_id == t.merchant_id))
        )
    assert mobiles == {FULL_MOBILE, "01033331234"}


async def test_an_operator_picks_the_merchant_of_a_new_customer(console: Console) -> None:
    a, _ = await console.tenant("행복치과")
    b, _ = await console.tenant("튼튼정형외과")
    await console.user("op@arspay.test")
    op = await console.login("op@arspay.test")
    form = await op.get("/console/customers/new")
    assert "행복치과" in form.text
    assert "튼튼정형외과" in form.text
    r = await post(op, "/console/customers/new", "/console/customers", {"mobile": "01055556666"})
    assert r.status_code == 422
    assert "가맹점을 선택하세요" in r.text
    r = await post(op, "/console/customers/new", "/console/customers",
                   {"mobile": "01055556666", "merchant_id": b.merchant_id})  # fmt: skip
    assert (await _created_customer(console, r)).merchant_id == b.merchant_id
    listing = await op.get("/console/customers")
    assert a.customer_id in listing.text
    assert b.customer_id in listing.text
    assert "행복치과" in listing.text
    assert "튼튼정형외과" in listing.text


async def test_a_merchant_user_cannot_add_a_customer_to_another_merchant(
    console: Console,
) -> None:
    a, _ = await console.tenant("행복치과")
    b, cb = await console.tenant("튼튼정형외과")
    r = await post(cb, "/console/customers/new", "/console/customers",
                   {"mobile": "01077778888", "merchant_id": a.merchant_id})  # fmt: skip
    assert (await _created_customer(console, r)).merchant_id == b.merchant_id


# ---------------------------------------------------------------------- schedules


async def test_schedule_pause_resume_and_cancel(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    sid = await schedule(t)
    path = f"/console/schedules/{sid}"
    listing = await c.get("/console/schedules")
    assert sid in listing.text
    assert "매월 31일" in listing.text
    assert "2027-01-31 10:00" in listing.text  # next run, Seoul time
    page = await c.get(path)
    assert page.status_code == 200
    assert 'data-testid="pause"' in page.text
    assert 'data-testid="resume"' not in page.text
    assert "2027-02-28 10:00" in page.text  # upcoming: day 31 in February

    r = await post(c, path, f"{path}/pause", {})
    assert r.status_code == 303
    assert r.headers["location"] == f"{path}?changed=1"
    assert (await schedule_row(console, sid)).status == "paused"
    page = await c.get(r.headers["location"])
    assert "상태를 변경했습니다." in page.text
    assert 'data-testid="resume"' in page.text
    assert 'data-testid="pause"' not in page.text

    r = await post(c, path, f"{path}/resume", {})
    assert r.status_code == 303
    assert (await schedule_row(console, sid)).status == "active"

    r = await post(c, path, f"{path}/cancel", {})  # the box not ticked
    assert r.status_code == 422
    assert "확인란을 선택하세요" in r.text
    assert (await schedule_row(console, sid)).status == "active"
    r = await post(c, path, f"{path}/cancel", {"confirm": "yes"})
    assert r.status_code == 303
    assert (await schedule_row(console, sid)).status == "cancelled"
    page = await c.get(path)
    assert 'data-testid="schedule-actions"' not in page.text
    async with console.api.db.sessions() as s:
        actions = list(
            await s.scalars(
                select(AuditLog.action)
                .where(AuditLog.object_id == sid, AuditLog.actor.like("console:%"))
                .order_by(AuditLog.id)
            )
        )
    assert actions == ["schedule.paused", "schedule.active", "schedule.cancelled"]


async def test_schedule_timeline_shows_charges_attempts_and_the_retry(console: Console) -> None:
    t, _ = await console.tenant("행복치과")
    soft = await add_card(console.api, t.merchant_id, t.customer_id, "4000000000009995")
    # daily at 13:00 Seoul from today (the clock is 12:00 Seoul, 2026-12-03)
    sid = await schedule(t, soft, rule={"every": "day"}, start="2026-12-03", at="13:00")
    console.api.clock.advance(timedelta(hours=2))
    scheduler = console.api.runtime.scheduler
    assert await scheduler.tick() == 1
    while await scheduler.run_jobs():
        pass
    async with console.api.db.sessions() as s:
        intents = list(
            await s.scalars(select(PaymentIntent).where(PaymentIntent.schedule_id == sid))
        )
    assert [i.status for i in intents] == ["failed"]
    c = await console.login(f"{t.merchant_id.lower()}@shop.test")  # the idle session ended
    page = await c.get(f"/console/schedules/{sid}")
    assert page.status_code == 200, page.text
    assert "1회차" in page.text
    assert "1번째 시도" in page.text
    assert intents[0].id in page.text
    assert "insufficient_funds" in page.text  # the attempt's decline code
    assert "일시적" in page.text  # and class
    # retried a day after the failed try (14:00 Seoul); the next cycle is due at 13:00
    assert '재시도 예정 <span data-testid="retry-at">2026-12-04 14:00</span>' in page.text
    assert "<li>2026-12-04 13:00</li>" in page.text
    c.cookies.set("arspay_lang", "en")
    page = await c.get(f"/console/schedules/{sid}")
    assert "Cycle 1" in page.text
    assert "Retry due" in page.text
    assert "Daily" in page.text


# ---------------------------------------------------------------------- every page


@dataclass(frozen=True)
class Ids:
    customer_id: str
    card_id: str
    payment_id: str
    schedule_id: str


async def objects_of(console: Console, t: Tenant) -> Ids:
    """One of each object for ``t``: a paid and partly refunded payment, a schedule."""
    pid = await charge(t, 20_000)
    r = await t.client.post(f"/v1/payments/{pid}/refunds", json={"amount": 5_000})
    assert r.status_code == 201
    return Ids(t.customer_id, t.card_id, pid, await schedule(t))


PAGES = [
    "/console/customers",
    "/console/customers?q=5678",
    "/console/customers/new",
    "/console/customers/{customer_id}",
    "/console/cards",
    "/console/cards?status=active",
    "/console/cards/{card_id}/delete",
    "/console/payments",
    "/console/payments?status=partially_refunded",
    "/console/payments/{payment_id}",
    "/console/schedules",
    "/console/schedules?status=active",
    "/console/schedules/{schedule_id}",
    "/console/account",
]
OWN_PAGES = [p for p in PAGES if "{" in p]
ACTIONS = [
    ("/console/cards/{card_id}/delete", {"confirm": "yes"}),
    ("/console/payments/{payment_id}/refund", {"amount": "1000"}),
    ("/console/schedules/{schedule_id}/pause", {}),
    ("/console/schedules/{schedule_id}/resume", {}),
    ("/console/schedules/{schedule_id}/cancel", {"confirm": "yes"}),
    ("/console/customers/{customer_id}/edit", {"name": "x", "mobile": "010-5555-7777"}),
    ("/console/customers/{customer_id}/delete", {"confirm": "yes"}),
]


async def snapshot(console: Console, ids: Ids) -> tuple[object, ...]:
    async with console.api.db.sessions() as s:
        card = await s.get(Card, ids.card_id)
        intent = await s.get(PaymentIntent, ids.payment_id)
        sch = await s.get(Schedule, ids.schedule_id)
        refunds = len(list(await s.scalars(select(Refund.id))))
        assert card
        assert intent
        assert sch
        return card.status, intent.refunded_amount, intent.status, sch.status, refunds


@pytest.mark.parametrize("path", OWN_PAGES)
async def test_another_merchant_gets_404_on_each_page(console: Console, path: str) -> None:
    a, ca = await console.tenant("행복치과")
    _, cb = await console.tenant("튼튼정형외과")
    ids = await objects_of(console, a)
    url = path.format(**ids.__dict__)
    assert (await ca.get(url)).status_code == 200
    r = await cb.get(url)
    assert r.status_code == 404
    assert 'data-testid="error"' in r.text
    assert "행복치과" not in r.text


@pytest.mark.parametrize(("path", "data"), ACTIONS)
async def test_another_merchant_gets_404_on_each_action(
    console: Console, path: str, data: dict[str, str]
) -> None:
    a, _ = await console.tenant("행복치과")
    _, cb = await console.tenant("튼튼정형외과")
    ids = await objects_of(console, a)
    before = await snapshot(console, ids)
    r = await post(cb, "/console/customers", path.format(**ids.__dict__), data)
    assert r.status_code == 404
    assert await snapshot(console, ids) == before


async def test_another_merchants_objects_are_not_listed(console: Console) -> None:
    a, _ = await console.tenant("행복치과")
    _, cb = await console.tenant("튼튼정형외과")
    ids = await objects_of(console, a)
    for path in [p for p in PAGES if "{" not in p]:
        r = await cb.get(path)
        assert r.status_code == 200, path
        for value in ids.__dict__.values():
            assert value not in r.text, (path, value)


@pytest.mark.parametrize(("path", "data"), ACTIONS)
async def test_each_action_needs_the_csrf_token(
    console: Console, path: str, data: dict[str, str]
) -> None:
    a, ca = await console.tenant("행복치과")
    ids = await objects_of(console, a)
    before = await snapshot(console, ids)
    url = path.format(**ids.__dict__)
    assert (await ca.post(url, data=data)).status_code == 403
    assert (await ca.post(url, data={**data, "csrf_token": "forged"})).status_code == 403
    assert await snapshot(console, ids) == before
    r = await ca.post("/console/customers", data={"mobile": "01012341234"})
    assert r.status_code == 403


async def pages_of(c: httpx.AsyncClient, ids: Ids) -> dict[str, httpx.Response]:
    return {p: await c.get(p.format(**ids.__dict__)) for p in PAGES}


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        (None, ["고객", "카드", "결제", "정기결제"]),
        ("en", ["Customers", "Cards", "Refund", "Cycle"]),
    ],
)
async def test_every_page_renders_in_both_languages(
    console: Console, lang: str | None, words: list[str]
) -> None:
    a, ca = await console.tenant("행복치과")
    ids = await objects_of(console, a)
    if lang:
        ca.cookies.set("arspay_lang", lang)
    shown = await pages_of(ca, ids)
    for path, r in shown.items():
        assert r.status_code == 200, (path, r.text)
        assert f'<html lang="{lang or "ko"}">' in r.text, path
    text = "".join(r.text for r in shown.values())
    for word in words:
        assert word in text, word
    if lang == "en":
        assert "KRW 20,000" in shown["/console/payments/{payment_id}"].text
        assert "Monthly on day 31" in shown["/console/schedules"].text


async def test_no_page_shows_a_full_card_or_mobile_number(console: Console) -> None:
    a, ca = await console.tenant("행복치과")
    ids = await objects_of(console, a)
    await console.user("op@arspay.test")
    op = await console.login("op@arspay.test")
    for who in (ca, op):
        for lang in ("ko", "en"):
            who.cookies.set("arspay_lang", lang)
            for path, r in (await pages_of(who, ids)).items():
                assert r.status_code == 200, path
                assert VISA not in r.text, path
                assert FULL_MOBILE not in r.text, path
                if "{" in path and "new" not in path:
                    assert "411111" not in r.text or "411111******1111" in r.text, path
    # the operator sees which merchant each row belongs to
    assert "행복치과" in (await op.get("/console/payments")).text


async def test_an_operator_acts_for_any_merchant(console: Console) -> None:
    a, _ = await console.tenant("행복치과")
    ids = await objects_of(console, a)
    await console.user("op@arspay.test")
    op = await console.login("op@arspay.test")
    page = f"/console/payments/{ids.payment_id}"
    r = await post(op, page, f"{page}/refund", {"amount": "1000"})
    assert r.status_code == 303
    page = f"/console/schedules/{ids.schedule_id}"
    assert (await post(op, page, f"{page}/pause", {})).status_code == 303
    async with console.api.db.sessions() as s:
        intent = await s.get(PaymentIntent, ids.payment_id)
        sch = await s.get(Schedule, ids.schedule_id)
        assert intent is not None
        assert sch is not None
    assert intent.refunded_amount == 6_000
    assert sch.status == "paused"
