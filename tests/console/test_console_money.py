"""Console money pages: payments and refunds, cards and their deletion.

Refunds go through the same service as the API's refund route and reach the sandbox
PG; a refund larger than what is left is refused on the page with nothing changed; a
card deleted from the console is erased in the vault."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import func, select

from ivr.store.tables import AuditLog, Card, PaymentAttempt, PaymentIntent, Refund
from tests.api.conftest import Tenant
from tests.console.conftest import Console, post
from tests.stored import row_of
from vault.errors import TokenNotFound

pytestmark = pytest.mark.anyio

_REFUND_ID = re.compile(r'name="refund_id" value="([^"]+)"')


async def charge(t: Tenant, amount: int, order_name: str = "3월 진료비") -> str:
    """A payment made through the REST API (the sandbox PG approves the test card)."""
    r = await t.client.post(
        "/v1/charges", json={"card_id": t.card_id, "amount": amount, "order_name": order_name}
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "succeeded"
    pid: str = r.json()["id"]
    return pid


async def intent_of(console: Console, pid: str) -> PaymentIntent:
    return await row_of(console.api.db, PaymentIntent, pid)


async def refund_count(console: Console, pid: str) -> int:
    async with console.api.db.sessions() as s:
        n = await s.scalar(select(func.count()).select_from(Refund).where(Refund.intent_id == pid))
        return int(n or 0)


async def pg_order(console: Console, pid: str) -> dict[str, object]:
    """What the sandbox PG's own ledger holds for the payment's successful charge."""
    async with console.api.db.sessions() as s:
        order_id = await s.scalar(
            select(PaymentAttempt.order_id).where(
                PaymentAttempt.intent_id == pid, PaymentAttempt.status == "succeeded"
            )
        )
    assert order_id is not None
    view = await console.api.sandbox.ledger(order_id)
    [payment] = view["payments"]
    found: dict[str, object] = payment
    return found


async def refund(c: httpx.AsyncClient, pid: str, amount: str, reason: str = "") -> httpx.Response:
    page = f"/console/payments/{pid}"
    return await post(c, page, f"{page}/refund", {"amount": amount, "reason": reason})


async def test_partial_then_full_refund_through_the_console(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    pid = await charge(t, 60_000)
    shown = await c.get(f"/console/payments/{pid}")
    assert shown.status_code == 200
    assert "60,000원" in shown.text
    assert 'data-testid="refund-form"' in shown.text

    r = await refund(c, pid, "10,000", "부분 취소")
    assert r.status_code == 303
    assert r.headers["location"].startswith(f"/console/payments/{pid}?refunded=rf_")
    page = await c.get(r.headers["location"])
    assert page.status_code == 200
    assert "환불되었습니다." in page.text
    assert "부분 취소" in page.text
    intent = await intent_of(console, pid)
    assert (intent.status, intent.refunded_amount) == ("partially_refunded", 10_000)
    pg = await pg_order(console, pid)
    assert (pg["status"], pg["cancel_amount"]) == ("paid", 10_000)

    r = await refund(c, pid, "")  # empty: all that is left
    assert r.status_code == 303
    page = await c.get(r.headers["location"])
    assert "50,000원" in page.text
    assert 'data-testid="refund-form"' not in page.text  # nothing left to refund
    intent = await intent_of(console, pid)
    assert (intent.status, intent.refunded_amount) == ("refunded", 60_000)
    pg = await pg_order(console, pid)
    assert (pg["status"], pg["cancel_amount"]) == ("cancelled", 60_000)
    async with console.api.db.sessions() as s:
        actors = set(
            await s.scalars(
                select(AuditLog.actor).where(
                    AuditLog.object_id == pid, AuditLog.action.like("payment_intent.%refunded")
                )
            )
        )
    assert len(actors) == 1
    assert actors.pop().startswith("console:")


async def test_an_over_refund_is_refused_and_changes_nothing(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    pid = await charge(t, 30_000)
    assert (await refund(c, pid, "10000")).status_code == 303

    r = await refund(c, pid, "25000")
    assert r.status_code == 422
    assert "환불 가능 금액(20,000원)보다 큽니다" in r.text
    assert 'value="25000"' in r.text  # what was typed is kept
    c.cookies.set("arspay_lang", "en")
    r = await refund(c, pid, "25000")
    assert r.status_code == 422
    assert "larger than what is left to refund (KRW 20,000)" in r.text
    for bad in ("abc", "0", "-5", "1.5"):
        r = await refund(c, pid, bad)
        assert r.status_code == 422, bad
        assert "whole number" in r.text

    intent = await intent_of(console, pid)
    assert (intent.status, intent.refunded_amount) == ("partially_refunded", 10_000)
    assert await refund_count(console, pid) == 1
    pg = await pg_order(console, pid)
    assert pg["cancel_amount"] == 10_000


async def test_the_same_refund_form_sent_twice_refunds_once(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    pid = await charge(t, 30_000)
    page = await c.get(f"/console/payments/{pid}")
    found = _REFUND_ID.search(page.text)
    assert found
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    data = {"amount": "5000", "refund_id": found.group(1), "csrf_token": csrf.group(1)}
    first = await c.post(f"/console/payments/{pid}/refund", data=data)
    again = await c.post(f"/console/payments/{pid}/refund", data=data)
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert (await intent_of(console, pid)).refunded_amount == 5_000
    assert await refund_count(console, pid) == 1


async def test_a_failed_payment_offers_no_refund(console: Console) -> None:
    from tests.api.conftest import add_card

    t, c = await console.tenant("행복치과")
    soft = await add_card(console.api, t.merchant_id, t.customer_id, "4000000000009995")
    r = await t.client.post("/v1/charges", json={"card_id": soft, "amount": 5_000,
                                                 "order_name": "교재비"})  # fmt: skip
    pid = r.json()["id"]
    page = await c.get(f"/console/payments/{pid}")
    assert page.status_code == 200
    assert 'data-testid="refund-form"' not in page.text
    assert "일시적" in page.text  # the decline class of the attempt
    r = await refund(c, pid, "1000")
    assert r.status_code == 409
    assert "환불할 수 없습니다" in r.text
    assert await refund_count(console, pid) == 0


async def test_payments_list_filters_by_status(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    paid = await charge(t, 12_000, "수강료")
    refunded = await charge(t, 8_000, "교재비")
    assert (await refund(c, refunded, "")).status_code == 303
    r = await c.get("/console/payments")
    assert r.status_code == 200
    assert paid in r.text
    assert refunded in r.text
    assert "12,000원" in r.text
    assert "일시불" in r.text
    assert "API" in r.text
    r = await c.get("/console/payments", params={"status": "refunded"})
    assert refunded in r.text
    assert paid not in r.text


async def test_deleting_a_card_needs_confirmation_and_erases_it_in_the_vault(
    console: Console,
) -> None:
    t, c = await console.tenant("행복치과")
    listing = await c.get("/console/cards")
    assert listing.status_code == 200
    assert "411111******1111" in listing.text
    async with console.api.db.sessions() as s:
        card = await s.get(Card, t.card_id)
        assert card is not None
        token = card.vault_token
    await console.api.runtime.vault.metadata(token, t.merchant_id)  # stored

    path = f"/console/cards/{t.card_id}/delete"
    r = await post(c, path, path, {})  # the box not ticked
    assert r.status_code == 422
    assert "확인란을 선택하세요" in r.text
    async with console.api.db.sessions() as s:
        card = await s.get(Card, t.card_id)
        assert card is not None
        assert card.status == "active"
    await console.api.runtime.vault.metadata(token, t.merchant_id)  # still stored

    r = await post(c, path, path, {"confirm": "yes"})
    assert r.status_code == 303
    assert r.headers["location"] == f"/console/cards?deleted={t.card_id}"
    page = await c.get(r.headers["location"])
    assert "카드를 삭제했습니다." in page.text
    async with console.api.db.sessions() as s:
        card = await s.get(Card, t.card_id)
        assert card is not None
        assert card.status == "deleted"
        assert card.deleted_at is not None
        audited = await s.scalar(
            select(AuditLog.actor).where(
                AuditLog.action == "card.delete", AuditLog.object_id == t.card_id
            )
        )
    assert audited is not None
    assert audited.startswith("console:")
    with pytest.raises(TokenNotFound):
        await console.api.runtime.vault.metadata(token, t.merchant_id)
    deleted = await c.get("/console/cards", params={"status": "deleted"})
    assert t.card_id in deleted.text
    confirm = await c.get(path)
    assert confirm.status_code == 200
    assert 'data-testid="delete-form"' not in confirm.text


async def test_a_card_locked_for_phone_payments_is_shown_and_unlocked(console: Console) -> None:
    """Issue #26: the card a guesser locked (too many wrong birth dates in payment calls)
    shows as locked with until when; the merchant lifts the lock from the list."""
    from datetime import timedelta

    from ivr.cards.verification import VerifyLimits

    t, c = await console.tenant("행복치과")
    _other, oc = await console.tenant("다른가게")
    listing = await c.get("/console/cards")
    assert 'data-testid="phone-locked"' not in listing.text
    limits = VerifyLimits(max_failures=5, window=timedelta(hours=24))
    await console.api.runtime.deps.verification.lock(t.card_id, limits, actor="engine:call:x")
    listing = await c.get("/console/cards")
    assert 'data-testid="phone-locked"' in listing.text
    assert "전화 결제 잠김" in listing.text
    path = f"/console/cards/{t.card_id}/unlock"
    assert (await post(oc, "/console/cards", path, {})).status_code == 404  # not theirs
    r = await post(c, "/console/cards", path, {})
    assert r.status_code == 303
    assert r.headers["location"] == f"/console/cards?unlocked={t.card_id}"
    page = await c.get(r.headers["location"])
    assert "카드의 전화 결제 잠금을 해제했습니다." in page.text
    assert 'data-testid="phone-locked"' not in page.text
    assert await console.api.runtime.deps.verification.is_locked(t.card_id) is None
    async with console.api.db.sessions() as s:
        actor = await s.scalar(
            select(AuditLog.actor).where(
                AuditLog.action == "card.verify_unlock", AuditLog.object_id == t.card_id
            )
        )
    assert actor is not None
    assert actor.startswith("console:")


async def test_the_payment_page_links_the_pg_receipt(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    pid = await charge(t, 27_000)
    async with console.api.db.sessions() as s:
        url = await s.scalar(
            select(PaymentAttempt.receipt_url).where(PaymentAttempt.intent_id == pid)
        )
    assert url is not None
    assert url.startswith(f"{console.api.sandbox.url}/sandbox/receipts/")
    shown = await c.get(f"/console/payments/{pid}")
    assert shown.status_code == 200
    assert f'href="{url}" data-testid="receipt"' in shown.text
    assert 'rel="noopener noreferrer"' in shown.text
