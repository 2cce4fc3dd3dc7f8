"""Issue #9 acceptance on the real stack: in Debian's Chromium (Playwright), a merchant
user logs in to the console, creates a payment request, sees its SMS in the outbox,
and — while SIPp places the payer's call through the real Asterisk with real DTMF —
watches the request turn ``completed`` without reloading the page. Every page the
browser received is scanned for the card number; screenshots are saved as artifacts.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect

from ivr.api.deps import ApiDeps
from ivr.console.web import ConsoleDeps
from ivr.store.tables import CallRequest
from ivr.web.app import create_app
from tests.console.browser import Browser, artifacts_dir, open_browser, scan_for
from tests.stack import serving

# the call stack fixtures of the call tests (pytest finds fixtures imported into a module)
from .test_calls import BIRTH, CANARY_NEEDLES, Calls, Dialogue, calls  # noqa: F401

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery"


@pytest.fixture
async def site(
    calls: Calls,  # noqa: F811
) -> AsyncIterator[tuple[str, ConsoleDeps]]:
    rt = calls.runtime
    deps = ApiDeps.from_runtime(rt)
    console = ConsoleDeps.from_runtime(rt, deps)
    async with serving(create_app(deps, console=console), rt.services.settings.api) as url:
        yield url, console


async def test_payment_request_from_the_console_completes_live_during_a_real_call(
    calls: Calls,  # noqa: F811
    site: tuple[str, ConsoleDeps],
) -> None:
    url, console = site
    await calls.register_directly("4111111111111111")
    email = "clinic@shop.test"
    await console.users.create(email, PASSWORD, role="merchant", merchant_id=calls.merchant_id)
    async with open_browser(artifacts_dir()) as browser:
        await _journey(browser, url, email, calls)
        await browser.settle()
        assert not browser.unread
        assert scan_for(browser.seen_html, CANARY_NEEDLES) == []


async def _journey(browser: Browser, url: str, email: str, stack: Calls) -> None:
    page = await browser.new_page(url)
    await page.goto("/console/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.get_by_test_id("who")).to_contain_text(email)

    await page.goto("/console/call-requests/new")
    form = page.get_by_test_id("new-request-form")
    await form.locator("select[name=kind]").select_option("payment")
    await form.locator("input[name=product_name]").fill("스케일링")
    await form.locator("input[name=amount]").fill("30000")
    await form.locator("button[type=submit]").click()
    await expect(page).to_have_url(re.compile(r"/console/call-requests/creq_"), timeout=10_000)
    request_id = page.url.rsplit("/", 1)[1]
    async with stack.db.sessions() as s:
        req = await s.get(CallRequest, request_id)
    assert req is not None

    sms = await browser.new_page(url)  # the same login (one browser context per page: log in)
    await sms.goto("/console/login")
    await sms.fill("input[name=email]", email)
    await sms.fill("input[name=password]", PASSWORD)
    await sms.click("button[type=submit]")
    await sms.goto("/console/sms")
    dashed = f"{req.did[:4]}-{req.did[4:7]}-{req.did[7:]}"
    body = sms.locator("main")
    await expect(body).to_contain_text(re.compile(f"({req.did}|{dashed})"), timeout=10_000)
    await browser.screenshot(sms, "sms-outbox")

    status = page.get_by_test_id("request-status")
    await expect(status).to_have_text("문자 발송")
    marker = await page.evaluate("window.__arspay_marker = Math.random()")
    dialogue = (
        Dialogue()
        .at("pay.card_choice", "1")
        .at("pay.verify_birth", BIRTH)  # the registered card's birth date (issue #26)
        .at("pay.confirm.lump_sum", "1")
    )
    call = asyncio.create_task(stack.talk(req, dialogue))
    await expect(status).to_have_text("통화 중", timeout=60_000)
    await browser.screenshot(page, "call-in-progress")
    result = await call
    assert result.ok, result.errors
    await expect(status).to_have_text("완료", timeout=15_000)
    assert await page.evaluate("window.__arspay_marker") == marker  # never reloaded
    session = page.get_by_test_id("call-session")
    await expect(session).to_contain_text("pay.done")
    await expect(page.get_by_test_id("session-status")).to_have_text("종료", timeout=15_000)
    await expect(session).to_contain_text("•••")  # the keys pressed, as marks only
    await browser.screenshot(page, "call-completed")
