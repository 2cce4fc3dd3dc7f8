"""Console pages for operations: bulk jobs (upload, live progress, result file), the DID
pool (operators only), the SMS outbox and the audit log."""

from __future__ import annotations

import csv
import io
import re

import httpx
import pytest
from sqlalchemy import func, select

from ivr.console.pages.audit import compact
from ivr.store.tables import AuditLog, Did, Job
from tests.console.conftest import Console, csrf_of, post

pytestmark = pytest.mark.anyio

_UPLOAD_ID = re.compile(r'name="upload_id" value="([^"]+)"')
HEADER = "card_id,amount,order_name,installment_months,ref"


async def upload(
    c: httpx.AsyncClient,
    content: bytes,
    filename: str = "charges.csv",
    content_type: str = "text/csv",
    **fields: str,
) -> httpx.Response:
    """Send the upload form as the browser does: the CSRF token and the form's one-time
    job id as fields of the multipart body."""
    shown = await c.get("/console/bulk")
    assert shown.status_code == 200, shown.text
    found = _UPLOAD_ID.search(shown.text)
    assert found
    data = {"csrf_token": csrf_of(shown.text), "upload_id": found.group(1), "kind": "charges"}
    return await c.post("/console/bulk", data={**data, **fields},
                        files={"file": (filename, content, content_type)})  # fmt: skip


async def bulk_jobs(console: Console) -> int:
    async with console.api.db.sessions() as s:
        return await s.scalar(select(func.count()).select_from(Job).where(Job.kind == "bulk")) or 0


async def audit_actions(console: Console, action: str) -> list[AuditLog]:
    """Console users' audit rows of ``action`` (the fixture's own setup is not theirs)."""
    async with console.api.db.sessions() as s:
        return list(
            await s.scalars(
                select(AuditLog).where(
                    AuditLog.action == action, AuditLog.actor.startswith("console:")
                )
            )
        )


# --------------------------------------------------------------------------- bulk jobs


async def test_bulk_csv_upload_runs_and_the_result_file_holds_every_row(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    lines = [HEADER, f"{t.card_id},1000,회비,0,good1", f"{t.card_id},abc,회비,0,bad1",
             f"{t.card_id},2000,회비,0,good2", "card_missing,3000,회비,0,gone"]  # fmt: skip
    r = await upload(c, "\n".join(lines).encode())
    assert r.status_code == 303, r.text
    job_page = r.headers["location"]
    bulk_id = job_page.rsplit("/", 1)[1]
    assert bulk_id.startswith("bulk_")

    shown = await c.get(job_page)
    assert shown.status_code == 200
    assert 'data-testid="bulk-upload"' not in shown.text
    assert f'hx-get="/console/bulk/{bulk_id}/progress"' in shown.text  # live while running
    assert "amount must be an integer" in shown.text  # the invalid row, reported at once
    live = await c.get(job_page + "/progress", headers={"HX-Request": "true"})
    assert live.status_code == 200
    assert "진행 중" in live.text

    await console.api.runtime.bulk.charges.run(until_idle=True)

    live = await c.get(job_page + "/progress", headers={"HX-Request": "true"})
    assert live.status_code == 286  # htmx stops polling
    assert "완료" in live.text
    assert 'data-testid="bulk-processed">3<' in live.text
    shown = await c.get(job_page)
    assert "hx-get" not in shown.text.split('data-testid="bulk-progress"', 1)[1].split(">")[0]
    assert 'data-testid="bulk-result"' in shown.text
    listing = await c.get("/console/bulk")
    assert bulk_id in listing.text
    assert 'hx-get="/console/bulk/rows"' not in listing.text
    assert (await c.get("/console/bulk/rows")).status_code == 286

    r = await c.get(job_page + "/results.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == f'attachment; filename="{bulk_id}.csv"'
    rows = {row["ref"]: row for row in csv.DictReader(io.StringIO(r.text))}
    assert set(rows) == {"good1", "bad1", "good2", "gone"}
    assert rows["bad1"]["result"] == "invalid"
    assert "amount" in rows["bad1"]["error"]
    assert rows["bad1"]["row"] == "2"
    assert rows["gone"]["result"] == "invalid"
    assert rows["gone"]["error"]
    for ref in ("good1", "good2"):
        assert rows[ref]["result"] == "succeeded"
        assert rows[ref]["intent_id"].startswith("pi_")
        assert rows[ref]["approval_no"]
    assert "4111111111111111" not in r.text

    assert await bulk_jobs(console) == 1
    [submitted] = await audit_actions(console, "bulk.submit")
    assert submitted.actor.startswith("console:")
    assert submitted.object_id == bulk_id


async def test_a_form_sent_twice_makes_one_job(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    shown = await c.get("/console/bulk")
    found = _UPLOAD_ID.search(shown.text)
    assert found
    data = {"csrf_token": csrf_of(shown.text), "upload_id": found.group(1), "kind": "charges"}
    body = f"{HEADER}\n{t.card_id},1000,회비,0,r1\n".encode()
    first = await c.post("/console/bulk", data=data, files={"file": ("a.csv", body, "text/csv")})
    again = await c.post("/console/bulk", data=data, files={"file": ("a.csv", body, "text/csv")})
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert await bulk_jobs(console) == 1


@pytest.mark.parametrize(
    ("filename", "content_type", "content", "says"),
    [
        ("empty.csv", "text/csv", b"", "빈 파일"),
        ("blank.csv", "text/csv", b"\n \n", "빈 파일"),
        ("sheet.xlsx", "application/vnd.ms-excel", b"PK\x03\x04garbage", ".xlsx workbook"),
        ("sheet.xls", "application/vnd.ms-excel", b"\xd0\xcf\x11\xe0", "엑셀(.xlsx)"),
        ("garbage.csv", "text/csv", b"\xff\xfe\x00\x81\x90binary", "UTF-8"),
        ("wrong.csv", "text/csv", b"a,b\n1,2\n", "header"),
        ("broken.json", "application/json", b"[{", "malformed"),
        ("header-only.csv", "text/csv", HEADER.encode() + b"\n", "no rows"),
    ],
)
async def test_a_bad_file_is_refused_on_the_page_and_nothing_is_submitted(
    console: Console, filename: str, content_type: str, content: bytes, says: str
) -> None:
    _, c = await console.tenant("행복치과")
    r = await upload(c, content, filename, content_type)
    assert r.status_code == 422
    assert 'data-testid="error"' in r.text
    assert says in r.text
    assert 'data-testid="bulk-upload"' in r.text  # the form is there to try again
    assert await bulk_jobs(console) == 0
    assert await audit_actions(console, "bulk.submit") == []


async def test_the_upload_needs_the_csrf_token(console: Console) -> None:
    t, c = await console.tenant("행복치과")
    files = {"file": ("a.csv", f"{HEADER}\n{t.card_id},1000,회비,0,r\n".encode(), "text/csv")}
    r = await c.post("/console/bulk", data={"kind": "charges"}, files=files)
    assert r.status_code == 403
    r = await c.post("/console/bulk", data={"kind": "charges", "csrf_token": "forged"}, files=files)
    assert r.status_code == 403
    assert await bulk_jobs(console) == 0


async def test_an_operator_uploads_for_a_merchant_and_sees_every_job(console: Console) -> None:
    t, _ = await console.tenant("행복치과")
    await console.user("op@arspay.test")
    op = await console.login("op@arspay.test")
    body = f"{HEADER}\n{t.card_id},1000,회비,0,r1\n".encode()
    r = await upload(op, body)
    assert r.status_code == 422
    assert "choose a merchant" in r.text
    r = await upload(op, body, merchant_id=t.merchant_id)
    assert r.status_code == 303
    listing = await op.get("/console/bulk")
    assert r.headers["location"].rsplit("/", 1)[1] in listing.text
    assert "행복치과" in listing.text


async def test_merchant_b_gets_404_for_merchant_as_bulk_job(console: Console) -> None:
    a, ca = await console.tenant("행복치과")
    _, cb = await console.tenant("튼튼정형외과")
    r = await upload(ca, f"{HEADER}\n{a.card_id},1000,회비,0,r1\n".encode())
    job = r.headers["location"]
    bulk_id = job.rsplit("/", 1)[1]
    for path in (job, job + "/progress", job + "/results.csv"):
        assert (await ca.get(path)).status_code == 200, path
        assert (await cb.get(path)).status_code == 404, path
    assert bulk_id not in (await cb.get("/console/bulk")).text
    assert bulk_id not in (await cb.get("/console/bulk/rows")).text
    # nor can b make its form land on a's job (the form's one-time id)
    r = await upload(cb, f"{HEADER}\n{a.card_id},1000,회비,0,r1\n".encode(), upload_id=bulk_id)
    assert r.status_code == 404
    assert await bulk_jobs(console) == 1


# --------------------------------------------------------------------------- DID pool


async def test_the_did_page_is_for_operators_only(console: Console) -> None:
    _, c = await console.tenant("행복치과")
    assert (await c.get("/console/dids")).status_code == 403
    r = await post(c, "/console/bulk", "/console/dids/import", {"numbers": "0505-222-0000"})
    assert r.status_code == 403
    r = await post(c, "/console/bulk", "/console/dids/05051110000/status", {"status": "disabled"})
    assert r.status_code == 403
    async with console.api.db.sessions() as s:
        assert await s.get(Did, "05052220000") is None
        did = await s.get(Did, "05051110000")
        assert did is not None
        assert did.status == "active"


async def test_an_operator_imports_numbers_and_disables_one(console: Console) -> None:
    t, _ = await console.tenant("행복치과")
    await console.user("op@arspay.test")
    op = await console.login("op@arspay.test")
    made = await t.client.post("/v1/payment-requests", json={
        "customer_id": t.customer_id, "product_name": "치료비", "amount": 53_000})  # fmt: skip
    assert made.status_code == 201, made.text
    shown = await op.get("/console/dids")
    assert shown.status_code == 200
    assert 'data-testid="did-total">20<' in shown.text
    assert made.json()["id"] in shown.text  # the active lease, with its request
    assert "010-****-5678" in shown.text
    assert "01090005678" not in shown.text

    before = await audit_actions(console, "did.import")
    r = await post(op, "/console/dids", "/console/dids/import",
                   {"numbers": "0505-222-0100\nhello\n010-1234-5678\n"})  # fmt: skip
    assert r.status_code == 422
    assert "2: " in r.text
    assert "3: " in r.text
    assert "hello" in r.text
    assert "0505-222-0100" in r.text  # the text is kept for correcting
    async with console.api.db.sessions() as s:
        assert await s.get(Did, "05052220100") is None  # nothing imported
    assert await audit_actions(console, "did.import") == before

    r = await post(op, "/console/dids", "/console/dids/import",
                   {"numbers": "0505-222-0000..0505-222-0002\n0505-111-0000\n"})  # fmt: skip
    assert r.status_code == 303
    shown = await op.get(r.headers["location"])
    assert "3개를 추가했습니다 (1개는 이미 있음)" in shown.text
    assert 'data-testid="did-total">23<' in shown.text
    assert "0505-222-0002" in shown.text
    [imported] = await audit_actions(console, "did.import")
    assert imported.details["added"] == 3
    assert imported.actor.startswith("console:")

    r = await post(op, "/console/dids", "/console/dids/05052220001/status", {"status": "disabled"})
    assert r.status_code == 303
    async with console.api.db.sessions() as s:
        did = await s.get(Did, "05052220001")
        assert did is not None
        assert did.status == "disabled"
    assert [a.object_id for a in await audit_actions(console, "did.disable")] == ["05052220001"]
    r = await post(op, "/console/dids", "/console/dids/05052220001/status", {"status": "active"})
    assert r.status_code == 303
    r = await post(op, "/console/dids", "/console/dids/05059990000/status", {"status": "active"})
    assert r.status_code == 404
    r = await op.post("/console/dids/05052220001/status", data={"status": "disabled"})
    assert r.status_code == 403  # no token
    async with console.api.db.sessions() as s:
        did = await s.get(Did, "05052220001")
        assert did is not None
        assert did.status == "active"


# --------------------------------------------------------------------------- SMS outbox


async def test_a_payment_requests_sms_is_in_the_outbox(console: Console) -> None:
    a, ca = await console.tenant("행복치과")
    _, cb = await console.tenant("튼튼정형외과")
    r = await a.client.post("/v1/payment-requests", json={
        "customer_id": a.customer_id, "product_name": "치료비", "amount": 53_000})  # fmt: skip
    assert r.status_code == 201, r.text
    did = r.json()["did"]  # as dialled: 0505-111-0000
    shown = await ca.get("/console/sms")
    assert shown.status_code == 200
    assert did in shown.text
    assert "53,000원" in shown.text
    assert "치료비" in shown.text
    assert "010-****-5678" in shown.text
    assert "01090005678" not in shown.text
    assert r.json()["id"] in shown.text  # linked to its call request
    assert did not in (await ca.get("/console/sms?kind=receipt")).text
    assert did in (await ca.get("/console/sms?kind=payment&status=pending")).text
    assert did not in (await cb.get("/console/sms")).text  # b sees its own outbox only
    await console.user("op@arspay.test")
    op = await console.login("op@arspay.test")
    shown = await op.get("/console/sms")
    assert did in shown.text
    assert "행복치과" in shown.text


# --------------------------------------------------------------------------- audit log


async def test_the_audit_log_is_scoped_and_filtered(console: Console) -> None:
    a, ca = await console.tenant("행복치과")
    b, cb = await console.tenant("튼튼정형외과")
    made = await upload(ca, f"{HEADER}\n{a.card_id},1000,회비,0,r1\n".encode())
    bulk_id = made.headers["location"].rsplit("/", 1)[1]
    theirs = await b.client.post("/v1/payment-requests", json={
        "customer_id": b.customer_id, "product_name": "x", "amount": 1000})  # fmt: skip
    await console.user("op@arspay.test")
    op = await console.login("op@arspay.test")
    await post(op, "/console/dids", "/console/dids/import", {"numbers": "0505-333-0000"})

    mine = await ca.get("/console/audit")
    assert mine.status_code == 200
    assert bulk_id in mine.text
    assert "bulk.submit" in mine.text
    assert "rows=1 invalid=0" in mine.text
    assert theirs.json()["id"] not in mine.text  # b's rows
    assert "did.import" not in mine.text  # operator rows without a merchant
    assert bulk_id not in (await cb.get("/console/audit")).text

    only = await ca.get("/console/audit", params={"action": "bulk"})
    assert bulk_id in only.text
    assert "console.login" not in only.text
    only = await ca.get("/console/audit", params={"object_id": bulk_id})
    assert "bulk.submit" in only.text
    assert "console.login" not in only.text
    assert bulk_id not in (await ca.get("/console/audit", params={"action": "bulk.x"})).text
    everything = await op.get("/console/audit")
    assert all(x in everything.text for x in ("did.import", bulk_id, theirs.json()["id"]))


def test_audit_details_are_compact_and_never_show_a_secret() -> None:
    shown = compact({"rows": 3, "keys": ["a", "b"], "secret": "whsec_x", "api_key": "k",
                     "why": "x" * 100})  # fmt: skip
    assert shown.startswith('rows=3 keys=["a","b"] secret=••• api_key=••• why=xxx')
    assert "whsec_x" not in shown
    assert len(shown) < 160
    assert compact(None) == ""


# --------------------------------------------------------------------------- languages


@pytest.mark.parametrize("lang", ["ko", "en"])
async def test_every_page_renders_in_both_languages(console: Console, lang: str) -> None:
    t, c = await console.tenant("행복치과")
    await console.user("op@arspay.test")
    op = await console.login("op@arspay.test")
    job = (await upload(c, f"{HEADER}\n{t.card_id},1000,회비,0,r1\n".encode())).headers["location"]
    await t.client.post("/v1/payment-requests", json={
        "customer_id": t.customer_id, "product_name": "치료비", "amount": 1000})  # fmt: skip
    titles = {"/console/bulk": ("대량 작업", "Bulk jobs"), job: ("결과 파일", "Result file"),
              "/console/sms": ("문자 발송함", "SMS outbox"),
              "/console/alimtalk": ("알림톡 발송함", "KakaoTalk Alimtalk outbox"),
              "/console/audit": ("감사 로그", "Audit log")}  # fmt: skip
    pages = [(c, path, title) for path, title in titles.items()]
    pages += [(op, path, title) for path, title in titles.items()]
    pages.append((op, "/console/dids", ("DID 번호", "DID pool")))
    for client, path, (ko, en) in pages:
        if lang == "en":
            client.cookies.set("arspay_lang", "en")
        r = await client.get(path)
        assert r.status_code == 200, (path, r.text)
        assert (ko if lang == "ko" else en) in r.text, path
