"""The console in a real browser: Playwright driving Debian's Chromium against the
engine's API app served by uvicorn on a TCP port (console mounted at /console).

One journey per test, with screenshots of the main pages saved as artifacts
(``build/artifacts/console/``), and every HTML document and htmx fragment the browser
received scanned for the test card numbers: nothing may show more than BIN + last 4.
The real-call journey (SIPp through Asterisk, the request turning ``completed`` on the
page) is in tests/e2e/test_console_call.py.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import re
from collections.abc import AsyncIterator

import pytest
from openpyxl import Workbook, load_workbook
from playwright.async_api import Page, expect

from ivr.console import totp
from ivr.domain.states import CallRequestStatus
from tests.api.conftest import VISA
from tests.console.browser import Browser, artifacts_dir, open_browser, scan_for
from tests.console.conftest import PASSWORD, RENDERED, Console
from tests.stack import serving

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
CARDS = (VISA,)
TIMEOUT_MS = 10_000
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
async def site(console: Console) -> AsyncIterator[str]:
    """The API app (with the console) served for real; the bulk and SMS workers run."""
    rt = console.api.runtime
    workers = [
        asyncio.create_task(rt.bulk.charges.run(poll_s=0.2)),
        asyncio.create_task(rt.sms.run()),
    ]
    try:
        async with serving(console.api.app, console.api.settings.api) as url:
            yield url
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with open_browser(artifacts_dir()) as b:
        yield b
        await b.settle()
        assert not b.unread, f"responses the card scan could not read: {b.unread}"
        RENDERED.extend(b.seen_html)
        hits = scan_for(b.seen_html, CARDS)
        assert not hits, f"a page showed a full card number: {hits}"


async def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    await page.goto("/console/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_login_create_a_payment_request_and_watch_it_complete(
    console: Console, site: str, browser: Browser
) -> None:
    tenant, _ = await console.tenant("행복치과")
    email = f"{tenant.merchant_id.lower()}@shop.test"
    page = await browser.new_page(site)

    await page.goto("/console/")
    await expect(page).to_have_url(re.compile(r"/console/login\?next=/console/"))
    await browser.screenshot(page, "login")
    await log_in(page, email, "wrong password!!")
    await expect(page.get_by_test_id("login-error")).to_be_visible()
    await log_in(page, email)
    await expect(page.get_by_test_id("who")).to_contain_text(email)
    await browser.screenshot(page, "dashboard")

    await page.click("a[href='/console/call-requests']")
    await page.get_by_test_id("new-request").click()
    form = page.get_by_test_id("new-request-form")
    await form.locator("select[name=kind]").select_option("payment")
    await form.locator("input[name=product_name]").fill("임플란트 상담료")
    await form.locator("input[name=amount]").fill("55000")
    await form.locator("button[type=submit]").click()
    await expect(page).to_have_url(re.compile(r"/console/call-requests/creq_"), timeout=TIMEOUT_MS)
    request_id = page.url.rsplit("/", 1)[1]
    status = page.get_by_test_id("request-status")
    await expect(status).to_have_text("문자 발송")
    await browser.screenshot(page, "call-request")

    # The payer calls: the page follows without a reload (htmx polling).
    marker = await page.evaluate("window.__arspay_marker = Math.random()")
    requests = console.api.runtime.services.requests
    await requests.transition(request_id, CallRequestStatus.in_call, actor="test")
    await expect(status).to_have_text("통화 중", timeout=TIMEOUT_MS)
    await requests.transition(request_id, CallRequestStatus.completed, actor="test")
    await expect(status).to_have_text("완료", timeout=TIMEOUT_MS)
    assert await page.evaluate("window.__arspay_marker") == marker  # same document
    await expect(page.get_by_test_id("cancel-request")).to_have_count(0)  # nothing to cancel
    await page.wait_for_timeout(2500)  # the finished request stopped polling (286)
    await browser.screenshot(page, "call-request-completed")

    await page.click("a[href='/console/call-requests']")
    await expect(page.get_by_test_id("call-requests")).to_contain_text("완료")
    await browser.screenshot(page, "call-requests")

    await page.get_by_role("link", name="English").click()
    await expect(page.locator("nav.side")).to_contain_text("Call requests")
    await expect(page.get_by_test_id("call-requests")).to_contain_text("completed")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_merchant_cannot_open_another_merchants_pages_in_the_browser(
    console: Console, site: str, browser: Browser
) -> None:
    a, _ = await console.tenant("행복치과")
    b, _ = await console.tenant("튼튼정형외과")
    made = await a.client.post(
        "/v1/payment-requests",
        json={"customer_id": a.customer_id, "product_name": "치료비", "amount": 30000},
    )
    assert made.status_code == 201, made.text
    page = await browser.new_page(site)
    await log_in(page, f"{b.merchant_id.lower()}@shop.test")
    await expect(page.get_by_test_id("who")).to_be_visible()
    response = await page.goto(f"/console/call-requests/{made.json()['id']}")
    assert response is not None
    assert response.status == 404
    await expect(page.get_by_test_id("error")).to_be_visible()
    await page.goto("/console/call-requests")
    await expect(page.get_by_test_id("call-requests")).not_to_contain_text(made.json()["id"])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_lockout_in_the_browser(console: Console, site: str, browser: Browser) -> None:
    await console.user("op@arspay.test")
    page = await browser.new_page(site)
    for _ in range(console.api.settings.console.lockout_failures):
        await log_in(page, "op@arspay.test", "wrong password!!")
        await expect(page.get_by_test_id("login-error")).to_be_visible()
    await log_in(page, "op@arspay.test")
    await expect(page.get_by_test_id("login-error")).to_contain_text("잠")
    await browser.screenshot(page, "lockout")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_refund_a_payment_and_a_bulk_upload_with_one_bad_row(
    console: Console, site: str, browser: Browser
) -> None:
    tenant, _ = await console.tenant("행복치과")
    charged = await tenant.client.post(
        "/v1/charges",
        json={"card_id": tenant.card_id, "amount": 60_000, "order_name": "교정 상담"},
    )
    assert charged.status_code == 201, charged.text
    payment_id = charged.json()["id"]
    page = await browser.new_page(site)
    await log_in(page, f"{tenant.merchant_id.lower()}@shop.test")
    await expect(page.get_by_test_id("who")).to_be_visible()

    # a partial refund, in the browser
    await page.click("a[href='/console/payments']")
    await expect(page.get_by_test_id("payments")).to_contain_text("60,000원")
    await browser.screenshot(page, "payments")
    await page.click(f"a[href='/console/payments/{payment_id}']")
    form = page.get_by_test_id("refund-form")
    await form.locator("input[name=amount]").fill("15000")
    await form.locator("input[name=reason]").fill("부분 환불")
    await page.get_by_test_id("refund").click()
    await expect(page.get_by_test_id("flash")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.get_by_test_id("refunded")).to_have_text("15,000원")
    await expect(page.get_by_test_id("left")).to_have_text("45,000원")
    await browser.screenshot(page, "payment-refunded")
    [ledger] = (await console.api.sandbox.ledger(charged.json()["attempts"][0]["order_id"]))[
        "payments"
    ]
    assert ledger["cancel_amount"] == 15_000  # the PG's own record

    # a bulk CSV with one bad row: the good rows are charged, the bad one reported
    rows_in = "\n".join([
        "card_id,amount,order_name,installment_months,ref",
        f"{tenant.card_id},1000,회비,0,good1",
        f"{tenant.card_id},abc,회비,0,bad1",
        f"{tenant.card_id},2000,회비,0,good2",
    ]) + "\n"  # fmt: skip
    await page.click("a[href='/console/bulk']")
    upload = page.get_by_test_id("bulk-upload")
    await upload.get_by_test_id("bulk-file").set_input_files(
        {"name": "charges.csv", "mimeType": "text/csv", "buffer": rows_in.encode()}
    )
    await browser.screenshot(page, "bulk")
    await upload.get_by_test_id("bulk-submit").click()
    await expect(page).to_have_url(re.compile(r"/console/bulk/bulk_"), timeout=TIMEOUT_MS)
    await expect(page.get_by_test_id("bulk-status")).to_have_text("완료", timeout=30_000)
    await expect(page.get_by_test_id("bulk-invalid")).to_contain_text("bad1")
    await browser.screenshot(page, "bulk-job")
    async with page.expect_download() as waiting:
        await page.get_by_test_id("bulk-result").click()
    download = await waiting.value
    result = (await download.path()).read_text(encoding="utf-8-sig")
    rows = {r["ref"]: r for r in csv.DictReader(io.StringIO(result))}
    assert set(rows) == {"good1", "bad1", "good2"}, result
    assert (rows["good1"]["result"], rows["good2"]["result"]) == ("succeeded", "succeeded")
    assert rows["bad1"]["result"] != "succeeded"
    assert "amount" in rows["bad1"]["error"]

    # the same from Excel: an .xlsx with a half-won amount; its result file is an .xlsx
    book = Workbook()
    for r in (
        ["card_id", "amount", "order_name", "installment_months", "ref"],
        [tenant.card_id, 3000.0, "회비", 0, "xgood"],
        [tenant.card_id, 3000.5, "회비", 0, "xbad"],
    ):
        book.active.append(r)
    sheet_bytes = io.BytesIO()
    book.save(sheet_bytes)
    await page.click("a[href='/console/bulk']")
    upload = page.get_by_test_id("bulk-upload")
    await upload.get_by_test_id("bulk-file").set_input_files(
        {"name": "charges.xlsx", "mimeType": XLSX, "buffer": sheet_bytes.getvalue()}
    )
    await upload.get_by_test_id("bulk-submit").click()
    await expect(page).to_have_url(re.compile(r"/console/bulk/bulk_"), timeout=TIMEOUT_MS)
    await expect(page.get_by_test_id("bulk-status")).to_have_text("완료", timeout=30_000)
    await expect(page.get_by_test_id("bulk-invalid")).to_contain_text("xbad")
    async with page.expect_download() as waiting:
        await page.get_by_test_id("bulk-result").click()
    download = await waiting.value
    assert download.suggested_filename.endswith(".xlsx")
    saved = (await download.path()).read_bytes()  # a temp name: no .xlsx for openpyxl
    header, *got = list(load_workbook(io.BytesIO(saved)).active.values)
    results = {r[header.index("ref")]: r[header.index("result")] for r in got}
    assert results == {"xgood": "succeeded", "xbad": "invalid"}, results

    # the other main pages, for the record (screenshots) and the card scan
    for name in ("customers", "cards", "schedules", "webhooks", "sms", "consent", "settings",
                 "audit"):  # fmt: skip
        await page.goto(f"/console/{name}")
        await expect(page.locator("main h1")).to_be_visible()
        await browser.screenshot(page, name)
    await expect(page.locator("main")).to_contain_text("console:")  # the audit log


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_two_step_login_set_up_and_used_in_the_browser(
    console: Console, site: str, browser: Browser
) -> None:
    """Set up from the account page (the QR code renders under the CSP), log out, log
    in again: the password leads to the code form, the right code to the page asked."""
    await console.user("op@arspay.test")
    page = await browser.new_page(site)
    await log_in(page, "op@arspay.test")
    await page.get_by_test_id("who").click()
    await expect(page).to_have_url(re.compile(r"/console/account$"))
    await page.get_by_test_id("mfa-setup-link").click()
    qr = page.get_by_test_id("mfa-qr")
    await expect(qr).to_be_visible()
    assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")
    await browser.screenshot(page, "account-2fa-setup")
    key = (await page.get_by_test_id("mfa-secret").inner_text()).replace(" ", "")
    secret = base64.b32decode(key + "=" * (-len(key) % 8))
    clock = console.api.clock

    def code() -> str:
        return totp.hotp(secret, totp.step_at(clock.now().timestamp()))

    await page.get_by_test_id("mfa-enroll").locator("input[name=code]").fill(code())
    await page.get_by_test_id("mfa-enroll").locator("button[type=submit]").click()
    await expect(page.get_by_test_id("notice")).to_be_visible()
    await expect(page.get_by_test_id("mfa-state")).to_contain_text("사용 중")

    await page.get_by_role("button", name="로그아웃").click()
    await page.goto("/console/payments")
    await page.fill("input[name=email]", "op@arspay.test")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.get_by_test_id("mfa-code")).to_be_visible()
    await browser.screenshot(page, "login-code")
    clock.advance(30)  # the set-up's code is spent
    await page.fill("input[name=code]", code())
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/console/payments$"))
    await expect(page.get_by_test_id("who")).to_contain_text("op@arspay.test")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_an_operator_adds_a_pg_account_and_routes_a_merchant_to_it(
    console: Console, site: str, browser: Browser
) -> None:
    """The PG accounts page and the routes box htmx loads into a merchant's settings; the
    secret typed in never comes back in any page or fragment."""
    secret = "sk_live_CANARY_browser_0123456789"
    tenant, _ = await console.tenant("행복치과")
    await console.user("op@arspay.test")
    page = await browser.new_page(site)
    await log_in(page, "op@arspay.test")
    await page.click("a[href='/console/pg-accounts']")
    form = page.get_by_test_id("pg-account-new")
    await form.locator("input[name=account_id]").fill("backup-pg")
    await form.locator("select[name=kind]").select_option("sandbox")
    await form.locator("input[name=api_key]").fill("test-key")
    await form.locator("input[name=api_secret]").fill(secret)
    await form.locator("button[type=submit]").click()
    await expect(page.get_by_test_id("flash")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.get_by_test_id("breaker")).to_have_text("호출 없음")
    await expect(page.locator("input[name=api_secret]")).to_have_value("")
    await browser.screenshot(page, "pg-account")

    await page.goto(f"/console/settings?merchant={tenant.merchant_id}")
    routes = page.get_by_test_id("pg-routes-form")  # loaded by htmx
    await expect(routes).to_be_visible(timeout=TIMEOUT_MS)
    await routes.locator("select[name=primary]").select_option("backup-pg")
    await routes.locator("button[type=submit]").click()
    await expect(page.get_by_test_id("pg-primary")).to_have_value("backup-pg", timeout=TIMEOUT_MS)
    await browser.screenshot(page, "pg-routes")
    pg = console.api.runtime.services.pg_accounts
    assert (await pg.routes(tenant.merchant_id)).primary == "backup-pg"
    await browser.settle()
    assert not [url for url, body in browser.seen_html if secret in body or secret[-8:] in body]
