"""The free-text guard at the API and in bulk files: every request-body string refuses
card-like digit runs (however separated) and control/bidi/invisible characters, with
the field named and the value never echoed — and nothing of it is stored: every row of
every table, and on SQLite the database file and its WAL, are searched for it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.conftest import Api, problem
from tests.stored import stored

pytestmark = pytest.mark.anyio

# card numbers as a person pastes them (none of them registered anywhere in the test)
FORMS = [
    "4000056655665556",
    "4000 0566 5566 5556",
    "4000.0566.5566.5556",
    "4000-0566-5566-5556",
    "４０００　０５６６　５５６６　５５５６",  # full-width digits and spaces
]
CHARS = ["abc\x00def", "invoice\u202etxt", "zero\u200bwidth"]
NEEDLES = [*FORMS, "4000056655665556", *CHARS]


def bodies(a: Any, bad: str) -> list[tuple[str, dict[str, Any], str]]:
    """(path, JSON body, the field that carries ``bad``) for every free-text field."""
    plan = {"rule": {"every": "month", "day": 1}, "start": "2027-01-01", "count": 2}
    return [
        ("/v1/customers", {"mobile": "010-2222-3333", "name": bad}, "name"),
        ("/v1/customers", {"mobile": "010-2222-3333", "external_ref": bad}, "external_ref"),
        ("/v1/registration-requests", {"customer_id": a.customer_id, "product_name": bad},
         "product_name"),
        ("/v1/payment-requests", {"customer_id": a.customer_id, "product_name": bad,
                                  "amount": 9_000}, "product_name"),
        ("/v1/charges", {"card_id": a.card_id, "amount": 9_000, "order_name": bad}, "order_name"),
        ("/v1/schedules", {"customer_id": a.customer_id, "card_id": a.card_id, "amount": 9_000,
                           "order_name": bad, "plan": plan}, "order_name"),
        ("/v1/webhook-endpoints", {"url": f"https://hooks.example/{bad}"}, "url"),
        ("/v1/webhook-endpoints", {"url": "https://hooks.example/x", "event_types": [bad]},
         "event_types"),
    ]  # fmt: skip


async def test_every_free_text_field_refuses_card_numbers_and_hidden_characters(
    api: Api,
) -> None:
    a = await api.tenant("행복치과")
    paid = await a.client.post(
        "/v1/charges", json={"card_id": a.card_id, "amount": 9_000, "order_name": "진료비"}
    )
    assert paid.status_code == 201
    for bad in [*FORMS, *CHARS]:
        cases = bodies(a, bad)
        cases.append((f"/v1/payments/{paid.json()['id']}/refunds", {"reason": bad}, "reason"))
        for path, body, field in cases:
            r = await a.client.post(path, json=body)
            assert r.status_code == 422, (path, field, bad, r.text)
            p = problem(r)
            assert p["code"] == "validation-failed"
            assert p["detail"].startswith(f"{field} must not contain"), p
            assert next(e["loc"][-1] for e in p["errors"]) in (field, "0")
            assert bad not in r.text
            assert "4000056655665556" not in r.text
    assert await stored(api.db, NEEDLES) == []


async def test_bulk_rows_refuse_them_in_any_text_column_and_keep_none(api: Api) -> None:
    """The bug: a refused row's ``ref`` and a valid row's ``order_name`` were stored
    in the bulk job's payload as typed."""
    a = await api.tenant("행복치과")
    rows = [{"ref": f"r{n}", "card_id": a.card_id, "amount": 1_000, "order_name": bad}
            for n, bad in enumerate([*FORMS, *CHARS])]  # fmt: skip
    rows += [{"ref": bad, "card_id": a.card_id, "amount": 1_000, "order_name": "회비"}
             for bad in [*FORMS, *CHARS]]  # fmt: skip
    rows.append({"ref": "ok", "card_id": a.card_id, "amount": 1_000, "order_name": "회비"})
    r = await a.client.post("/v1/bulk-jobs", json={"rows": rows})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["progress"]["valid"] == 1
    errors = [row["error"] for row in job["invalid_rows"]]
    assert len(errors) == len(rows) - 1
    assert all(" must not contain " in e for e in errors), errors
    assert {row["ref"] for row in job["invalid_rows"][len(FORMS) + len(CHARS) :]} == {""}

    # the same as a CSV upload, registrations too
    csv = "ref,card_id,amount,order_name\n" + "".join(
        f'"{bad}",{a.card_id},1000,"회비 {bad}"\n' for bad in FORMS
    )
    r = await a.client.post("/v1/bulk-jobs/upload", files={"file": ("c.csv", csv.encode())},
                            data={"format": "csv"})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["progress"]["invalid"] == len(FORMS)
    reg = json.dumps(
        [{"mobile": "010-3333-4444", "name": bad, "ref": "x"} for bad in FORMS]
        + [{"mobile": "010-3333-4444", "external_ref": bad} for bad in CHARS]
    )
    r = await a.client.post("/v1/bulk-jobs/upload", files={"file": ("r.json", reg.encode())},
                            data={"format": "json", "kind": "registrations"})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["progress"]["invalid"] == len(FORMS) + len(CHARS)
    assert await stored(api.db, NEEDLES) == []


async def test_an_unknown_bulk_column_named_like_a_card_number_is_not_echoed(api: Api) -> None:
    a = await api.tenant("행복치과")
    csv = f"card_id,amount,order_name,4000056655665556\n{a.card_id},1000,회비,x\n"
    r = await a.client.post("/v1/bulk-jobs/upload", files={"file": ("c.csv", csv.encode())},
                            data={"format": "csv"})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["invalid_rows"][0]["error"] == "unknown column(s)"
    assert await stored(api.db, NEEDLES) == []
