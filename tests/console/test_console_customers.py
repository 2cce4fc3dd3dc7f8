"""The customer page edits and deletes a customer (#31 item 4): a new mobile cancels the
open requests; the delete needs its confirmation box and erases the cards' vault
records; both say why when refused."""

from __future__ import annotations

import pytest

from ivr.domain.states import CallRequestStatus
from ivr.store.tables import CallRequest, Card, Customer
from tests.console.conftest import Console, post

pytestmark = pytest.mark.anyio


async def test_edit_then_delete_a_customer_from_its_page(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    page = f"/console/customers/{t.customer_id}"
    creq = await t.client.post("/v1/registration-requests", json={"customer_id": t.customer_id})
    rid = creq.json()["id"]

    bad = await post(c, page, f"{page}/edit", {"name": "김민수", "mobile": "02-123-4567"})
    assert bad.status_code == 422
    assert "휴대폰 번호" in bad.text or "010" in bad.text
    r = await post(c, page, f"{page}/edit", {"name": "김민수", "mobile": "010-7777-8888"})
    assert r.status_code == 303
    shown = await c.get(r.headers["location"])
    assert "고객 정보를 수정했습니다." in shown.text
    assert "김민수" in shown.text
    async with console.api.db.sessions() as s:
        row = await s.get(Customer, t.customer_id)
        req = await s.get(CallRequest, rid)
    assert row is not None
    assert (row.name, row.mobile) == ("김민수", "01077778888")
    assert req is not None
    assert req.status == CallRequestStatus.cancelled.value

    r = await post(c, page, f"{page}/delete", {})  # the box not ticked
    assert r.status_code == 422
    assert "확인란을 선택해 주세요" in r.text
    before = (await console.api.runtime.vault.status()).records
    r = await post(c, page, f"{page}/delete", {"confirm": "yes"})
    assert r.status_code == 303
    shown = await c.get(r.headers["location"])
    assert 'data-testid="deleted"' in shown.text
    assert "김민수" not in shown.text
    assert 'data-testid="delete-form"' not in shown.text
    assert (await console.api.runtime.vault.status()).records == before - 1
    async with console.api.db.sessions() as s:
        row = await s.get(Customer, t.customer_id)
        card = await s.get(Card, t.card_id)
    assert row is not None
    assert row.deleted_at is not None
    assert card is not None
    assert card.status == "deleted"
    listing = await c.get("/console/customers")
    assert t.customer_id not in listing.text


async def test_the_english_page_has_the_forms(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    c.cookies.set("arspay_lang", "en")
    r = await c.get(f"/console/customers/{t.customer_id}")
    assert r.status_code == 200
    assert "Delete customer" in r.text
    assert "open call requests (their numbers stop answering" in r.text
    assert 'data-testid="edit-form"' in r.text
    assert 'data-testid="delete-form"' in r.text
