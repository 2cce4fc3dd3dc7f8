"""Bulk uploads from Excel through the API: an .xlsx and a CP949 CSV, each with a bad
row reported per row; the result file comes back in the uploaded format; templates."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import Workbook, load_workbook

from ivr.bulk.charge_rows import FIELDS as CHARGE_FIELDS
from ivr.bulk.registrations import FIELDS as REGISTRATION_FIELDS
from tests.api.conftest import Api, problem

pytestmark = pytest.mark.anyio
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def workbook(*rows: list[object]) -> bytes:
    book = Workbook()
    for r in rows:
        book.active.append(r)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


async def test_an_xlsx_upload_reports_the_bad_row_and_results_come_back_as_xlsx(
    api: Api,
) -> None:
    a = await api.tenant("행복치과")
    data = workbook(
        ["card_id", "amount", "order_name", "installment_months", "ref"],
        [a.card_id, 30000.0, "1월 회비", 0, "good1"],
        [None, None, None, None, None],
        [a.card_id, 30000.5, "1월 회비", 0, "bad1"],
        [a.card_id, 20000, "1월 회비", None, "@SUM(A1)"],
    )
    r = await a.client.post("/v1/bulk-jobs/upload", files={"file": ("charges.xlsx", data, XLSX)})
    assert r.status_code == 201, r.text
    job = r.json()
    assert [(x["row"], x["ref"]) for x in job["invalid_rows"]] == [(2, "bad1")]
    assert "amount" in job["invalid_rows"][0]["error"]
    await api.runtime.bulk.charges.run(until_idle=True)

    r = await a.client.get(f"/v1/bulk-jobs/{job['id']}/results")
    assert r.status_code == 200
    assert r.headers["content-type"] == XLSX
    assert f'filename="{job["id"]}.xlsx"' in r.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(r.content)).active
    header, *rows = list(sheet.values)
    got = {row[header.index("ref")]: row for row in rows}
    assert set(got) == {"good1", "bad1", "'@SUM(A1)"}  # a formula-like ref is escaped
    assert got["good1"][header.index("result")] == "succeeded"
    assert got["good1"][header.index("amount")] == 30000
    assert got["bad1"][header.index("result")] == "invalid"
    r = await a.client.get(f"/v1/bulk-jobs/{job['id']}/results", params={"format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(r.text)))) == 3


async def test_a_cp949_csv_upload_gets_a_cp949_result_file(api: Api) -> None:
    a = await api.tenant("행복치과")
    text = (
        "card_id,amount,order_name,ref\n"
        f'{a.card_id},"1,000",1월 회비,홍길동\n'
        f"{a.card_id},abc,1월 회비,김영희\n"
    )
    data = text.encode("cp949")
    r = await a.client.post("/v1/bulk-jobs/upload", files={"file": ("c.csv", data, "text/csv")})
    assert r.status_code == 201, r.text
    job = r.json()
    assert [(x["row"], x["ref"]) for x in job["invalid_rows"]] == [(2, "김영희")]
    await api.runtime.bulk.charges.run(until_idle=True)
    r = await a.client.get(f"/v1/bulk-jobs/{job['id']}/results")
    assert "euc-kr" in r.headers["content-type"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode("cp949"))))
    assert [(x["ref"], x["result"]) for x in rows] == [
        ("홍길동", "succeeded"),
        ("김영희", "invalid"),
    ]
    r = await a.client.get(f"/v1/bulk-jobs/{job['id']}/results", params={"format": "xlsx"})
    assert r.headers["content-type"] == XLSX


async def test_a_file_neither_utf8_nor_cp949_is_refused_and_nothing_submitted(api: Api) -> None:
    a = await api.tenant("행복치과")
    data = f"card_id,amount,order_name\n{a.card_id},1000,x\xff\xfe\n".encode("latin-1")
    r = await a.client.post("/v1/bulk-jobs/upload", files={"file": ("c.csv", data)})
    assert r.status_code == 422
    assert "UTF-8 or CP949" in problem(r)["detail"]
    bomb = b"PK\x03\x04" + b"\0" * 64
    r = await a.client.post("/v1/bulk-jobs/upload", files={"file": ("c.xlsx", bomb)})
    assert r.status_code == 422
    assert ".xlsx" in problem(r)["detail"]
    await api.runtime.bulk.charges.run(until_idle=True)
    assert (await a.client.get("/v1/payments")).json()["data"] == []


@pytest.mark.parametrize(
    ("kind", "fields"), [("charges", CHARGE_FIELDS), ("registrations", REGISTRATION_FIELDS)]
)
async def test_templates_for_each_kind(api: Api, kind: str, fields: tuple[str, ...]) -> None:
    a = await api.tenant("행복치과")
    r = await a.client.get(f"/v1/bulk-templates/{kind}", params={"format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.decode("utf-8-sig").splitlines() == [",".join(fields)]
    r = await a.client.get(f"/v1/bulk-templates/{kind}")
    assert r.headers["content-type"] == XLSX
    assert f"arspay-bulk-{kind}.xlsx" in r.headers["content-disposition"]
    assert list(load_workbook(io.BytesIO(r.content)).active.values) == [fields]
    r = await a.client.get("/v1/bulk-templates/refunds")
    assert r.status_code == 422
