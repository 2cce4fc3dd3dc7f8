"""The API docs (``api.docs_enabled``) in a real Chromium: Swagger UI renders the
engine's operations from the packaged files under the page's strict CSP, with no
request leaving the engine's origin and no CSP or SRI complaint."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.async_api import ConsoleMessage, Request, expect

from ivr.api.deps import ApiDeps
from ivr.web.app import create_app
from tests.console.browser import artifacts_dir, open_browser
from tests.console.conftest import Console
from tests.stack import serving

pytestmark = pytest.mark.anyio


async def test_swagger_ui_runs_from_packaged_files_under_the_csp(console: Console) -> None:
    api = console.api
    settings = api.deps.settings.model_copy(update={"docs_enabled": True})
    app = create_app(ApiDeps(**{**api.deps.__dict__, "settings": settings}), key_cache_s=0.0)
    complaints: list[str] = []
    origins: set[str] = set()
    async with serving(app, settings) as url, open_browser(artifacts_dir()) as browser:
        page = await browser.new_page(url, lang="en")

        def on_console(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                complaints.append(message.text)

        def on_request(request: Request) -> None:
            parts = urlsplit(request.url)
            if parts.scheme in ("http", "https"):
                origins.add(f"{parts.scheme}://{parts.netloc}")

        page.on("console", on_console)
        page.on("request", on_request)
        await page.goto("/docs")
        await expect(page.locator(".opblock").first).to_be_visible(timeout=15_000)
        assert await page.locator(".opblock").count() >= 30  # every operation is listed
        await browser.screenshot(page, "api-docs")
    assert origins == {url.rstrip("/")}, origins
    bad = [c for c in complaints if "Content Security Policy" in c or "integrity" in c]
    assert not bad, bad
