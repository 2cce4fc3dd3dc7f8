"""The console's bulk page with Excel: an .xlsx upload with a bad row, its result file
as .xlsx, a CP949 CSV's as CP949, and the templates."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook

from ivr.bulk.charge_rows import FIELDS
from tests.api.test_api_bulk_excel import XLSX, workbook
from tests.console.conftest import Console
from tests.console.test_console_ops import HEADER, upload

pytestmark = pytest.mark.anyio


async def test_an_xlsx_upload_with_a_bad_row_and_its_xlsx_result(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    data = workbook(
        HEADER.split(","),
        [t.card_id, 1000, "회비", 0, "good1"],
        [t.card_id, 1000.5, "회비", 0, "bad1"],
        [t.card_id, 2000.0, "회비", None, "good2"],
    )
    r = await upload(c, data, "charges.xlsx", XLSX)
    assert r.status_code == 303, r.text
    job_page = r.headers["location"]
    bulk_id = job_page.rsplit("/", 1)[1]
    shown = await c.get(job_page)
    assert "amount must be an integer" in shown.text
    await console.api.runtime.bulk.charges.run(until_idle=True)
    r = await c.get(job_page + "/results")
    assert r.status_code == 200
    assert r.headers["content-type"] == XLSX
    assert r.headers["content-disposition"] == f'attachment; filename="{bulk_id}.xlsx"'
    header, *rows = list(load_workbook(io.BytesIO(r.content)).active.values)
    result = {row[header.index("ref")]: row[header.index("result")] for row in rows}
    assert result == {"good1": "succeeded", "bad1": "invalid", "good2": "succeeded"}
    r = await c.get(job_page + "/results.csv")
    assert r.headers["content-type"].startswith("text/csv")


async def test_a_cp949_csv_result_is_cp949(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    body = f"{HEADER}\n{t.card_id},1000,회비,0,홍길동\n".encode("cp949")
    r = await upload(c, body, "charges.csv")
    assert r.status_code == 303, r.text
    r = await c.get(r.headers["location"] + "/results")
    assert "euc-kr" in r.headers["content-type"]
    assert "홍길동" in r.content.decode("cp949")


async def test_templates_are_linked_and_served(console: Console) -> None:
    _, c = await console.tenant("행복치과")
    page = await c.get("/console/bulk")
    for kind in ("charges", "registrations"):
        for fmt in ("csv", "xlsx"):
            assert f'href="/console/bulk/templates/{kind}?format={fmt}"' in page.text
    r = await c.get("/console/bulk/templates/charges", params={"format": "csv"})
    assert r.status_code == 200
    assert r.content.decode("utf-8-sig").strip() == ",".join(FIELDS)
    r = await c.get("/console/bulk/templates/charges")
    assert r.headers["content-type"] == XLSX
    assert list(load_workbook(io.BytesIO(r.content)).active.values) == [FIELDS]
    assert (await c.get("/console/bulk/templates/refunds")).status_code == 404
