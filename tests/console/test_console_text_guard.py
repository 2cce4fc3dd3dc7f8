"""The free-text guard in the console's forms: a card number (or a hidden character)
typed into a form is refused with a message saying why, is not sent back in the
re-rendered form, and is stored nowhere."""

from __future__ import annotations

import pytest

from tests.console.conftest import Console, post
from tests.stored import stored

pytestmark = pytest.mark.anyio

FORMS = ["4000.0566.5566.5556", "４０００ ０５６６ ５５６６ ５５５６", "4000 0566 5566 5556"]


async def test_the_customer_form_refuses_a_card_number_and_stores_nothing(
    console: Console,
) -> None:
    t, c = await console.tenant("행복치과")
    for bad in [*FORMS, "홍\u202e길동", "a\x00b"]:
        for field in ("name", "external_ref"):
            data = {"mobile": "010-2222-3333", field: bad}
            r = await post(c, "/console/customers/new", "/console/customers", data)
            assert r.status_code == 422, r.text
            assert "카드번호(13자리 이상의 숫자)" in r.text
            assert bad not in r.text
            assert "4000056655665556" not in r.text.replace(" ", "")
    # the refund form too
    paid = await t.client.post(
        "/v1/charges", json={"card_id": t.card_id, "amount": 9_000, "order_name": "진료비"}
    )
    page = f"/console/payments/{paid.json()['id']}"
    for bad in FORMS:
        r = await post(c, page, f"{page}/refund", {"amount": "1000", "reason": bad})
        assert r.status_code == 422, r.text
        assert bad not in r.text
    assert await stored(console.api.db, [*FORMS, "4000056655665556", "홍\u202e길동"]) == []
