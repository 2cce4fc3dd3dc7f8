"""The browser harness itself: Debian Chromium runs, htmx swaps, Hangul renders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Page

from tests.console.browser import artifacts_dir, open_browser, scan_for

HTMX = Path(__file__).resolve().parents[2] / "ivr" / "console" / "static" / "htmx.min.js"
TITLE = "결제 요청"
FRAGMENT = "승인되었습니다"
CARD = "4111111111111111"

PAGE = f"""<!doctype html>
<html lang="ko">
<head><meta charset="utf-8"><title>{TITLE}</title>
<script src="/static/htmx.min.js"></script></head>
<body>
<h1 id="title">{TITLE}</h1>
<button id="go" hx-get="/frag" hx-target="#out">조회</button>
<div id="out"></div>
</body>
</html>
"""


@asynccontextmanager
async def serve() -> AsyncIterator[str]:
    """A tiny local site: one page, the vendored htmx, one fragment (which leaks a card)."""

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def frag(_: web.Request) -> web.Response:
        body = f'<p id="frag">{FRAGMENT} 카드 {CARD[:4]}-{CARD[4:8]}-{CARD[8:12]}-{CARD[12:]}</p>'
        return web.Response(text=body, content_type="text/html")

    async def htmx(_: web.Request) -> web.FileResponse:
        return web.FileResponse(HTMX, headers={"Content-Type": "text/javascript"})

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/frag", frag)
    app.router.add_get("/static/htmx.min.js", htmx)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def platform_fonts(page: Page, selector: str) -> dict[str, int]:
    """The system fonts Chromium really drew the element's text with: family -> glyphs."""
    cdp = await page.context.new_cdp_session(page)
    try:
        await cdp.send("DOM.enable")
        await cdp.send("CSS.enable")
        root = (await cdp.send("DOM.getDocument"))["root"]["nodeId"]
        node = await cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})
        fonts = await cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})
    finally:
        await cdp.detach()
    return {str(f["familyName"]): int(f["glyphCount"]) for f in fonts["fonts"]}


@pytest.mark.anyio
async def test_chromium_runs_htmx_and_renders_korean() -> None:
    async with serve() as base_url, open_browser(artifacts_dir()) as browser:
        page = await browser.new_page(base_url)
        await page.goto("/")
        assert await page.evaluate("typeof htmx.version") == "string"
        assert await page.evaluate("htmx.version") == "2.0.11"
        await page.click("#go")
        await page.wait_for_selector(f"#out #frag:has-text('{FRAGMENT}')")
        assert await page.evaluate("navigator.language") == "ko-KR"
        shot = await browser.screenshot(page, "smoke")
        assert shot.read_bytes().startswith(b"\x89PNG")

        await browser.settle()
        assert browser.unread == []
        urls = [url for url, _ in browser.seen_html]
        assert urls == [f"{base_url}/", f"{base_url}/frag"]
        assert TITLE in browser.seen_html[0][1]
        assert FRAGMENT in browser.seen_html[1][1]
        hits = scan_for(browser.seen_html, [CARD])
        assert hits == [f"{base_url}/frag: card number {CARD} found as '4111-1111-1111-1111'"]

        # Hangul glyphs really come from a Korean font. Chromium reports, per element, the
        # system fonts it drew the text with; without fonts-nanum (the only Korean font in
        # scripts/debian-packages) the four syllables of "결제 요청" would be tofu boxes
        # counted against a Latin font such as DejaVu, and no Nanum family would appear.
        # (document.fonts.check() would not do: it says true for any system font name,
        # installed or not.)
        fonts = await platform_fonts(page, "#title")
        nanum = {family: n for family, n in fonts.items() if family.startswith("Nanum")}
        assert sum(nanum.values()) >= 4, fonts


def test_scan_for_matches_plain_spaced_and_dashed_numbers() -> None:
    texts = [
        ("a", "<td>4111111111111111</td>"),
        ("b", "<td>4111 1111 1111 1111</td>"),
        ("c", "<td>4111-1111-1111-1111</td>"),
        ("d", "<td>4111-11**-****-1111</td>"),
    ]
    hits = scan_for(texts, ["4111 1111 1111 1111"])
    assert [hit.split(":")[0] for hit in hits] == ["a", "b", "c"]
    assert scan_for(["no card here"], [CARD]) == []
    assert scan_for(["x 5500000000000004 y"], [CARD, "5500-0000-0000-0004"]) == [
        "text #0: card number 5500-0000-0000-0004 found as '5500000000000004'"
    ]
