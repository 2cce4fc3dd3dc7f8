"""Browser harness for the admin console tests: Playwright driving Debian's Chromium.

The browser is the ``chromium`` Debian package (``scripts/debian-packages``), never a
Playwright browser download; ``fonts-nanum`` makes Hangul render instead of tofu.

Every HTML document and every htmx fragment the browser receives (any response whose
content type is ``text/html``) is kept in :attr:`Browser.seen_html`, so a test can scan
all that was rendered for card numbers with :func:`scan_for`.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser as PlaywrightBrowser
from playwright.async_api import BrowserContext, Page, Route, async_playwright
from playwright.async_api import Error as PlaywrightError

CHROMIUM = "/usr/bin/chromium"
# We run as root, where Chromium refuses to start with its sandbox; /dev/shm may be small
# in containers, so shared memory goes to /tmp instead.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]
LOCALES = {"ko": "ko-KR", "en": "en-US"}
VIEWPORT_WIDTH = 1280
VIEWPORT_HEIGHT = 900


def artifacts_dir() -> Path:
    """Where screenshots go: ``$ARSPAY_ARTIFACTS_DIR/console`` (``build/artifacts``)."""
    path = Path(os.environ.get("ARSPAY_ARTIFACTS_DIR", "build/artifacts")) / "console"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Browser:
    """One headless Chromium; records the body of every HTML response it receives."""

    def __init__(self, browser: PlaywrightBrowser, artifacts: Path, launch_seconds: float) -> None:
        self.browser = browser
        self.artifacts = artifacts
        self.launch_seconds = launch_seconds
        self.seen_html: list[tuple[str, str]] = []
        """(url, body) of every ``text/html`` response, pages and htmx fragments alike."""
        self.unread: list[tuple[str, str]] = []
        """(url, error) of HTML responses whose body could not be read: scans missed them."""
        self._contexts: list[BrowserContext] = []

    async def new_page(self, base_url: str, lang: str = "ko") -> Page:
        """A page in a fresh context (own cookies), with the HTML recorder installed."""
        context = await self.browser.new_context(
            base_url=base_url,
            locale=LOCALES.get(lang, lang),
            viewport={"width": VIEWPORT_WIDTH, "height": VIEWPORT_HEIGHT},
        )
        self._contexts.append(context)
        # Every request goes through the recorder (on the context, so popups and new
        # tabs too): the body is read before the browser gets it, so a page the test
        # navigates away from at once is still recorded.
        await context.route("**/*", self._route)
        return await context.new_page()

    async def screenshot(self, page: Page, name: str) -> Path:
        """A full-page PNG at ``artifacts/{name}.png``; returns its path."""
        path = self.artifacts / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    async def settle(self) -> None:
        """Kept for callers: bodies are recorded before the browser receives them, so
        there is nothing to wait for."""

    async def close(self) -> None:
        for context in self._contexts:
            await context.close()
        await self.browser.close()

    async def _route(self, route: Route) -> None:
        try:
            # max_redirects=0: the browser itself follows a redirect (its URL changes)
            response = await route.fetch(max_redirects=0)
        except PlaywrightError as exc:
            self.unread.append((route.request.url, str(exc)))
            await route.abort()
            return
        content_type = response.headers.get("content-type", "")
        if content_type.lower().startswith("text/html") and not 300 <= response.status < 400:
            try:
                self.seen_html.append((route.request.url, await response.text()))
            except PlaywrightError as exc:
                self.unread.append((route.request.url, str(exc)))
        # the page or its context may have closed meanwhile (a poll in flight at the end)
        with contextlib.suppress(PlaywrightError):
            await route.fulfill(response=response)


@asynccontextmanager
async def open_browser(artifacts: Path) -> AsyncIterator[Browser]:
    """Headless Debian Chromium for the duration of the block."""
    async with async_playwright() as playwright:
        started = time.monotonic()
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        browser = Browser(launched, artifacts, time.monotonic() - started)
        try:
            yield browser
        finally:
            await browser.close()


def _card_pattern(needle: str) -> re.Pattern[str]:
    """The card number's digits, optionally split every 4 digits by a space or a dash."""
    digits = re.sub(r"\D", "", needle)
    if not digits:
        raise ValueError(f"needle {needle!r} has no digits")
    groups = [digits[i : i + 4] for i in range(0, len(digits), 4)]
    return re.compile(r"[ \u00a0-]?".join(groups))


def scan_for(texts: Iterable[str | tuple[str, str]], needles: Iterable[str]) -> list[str]:
    """Where any needle (a card number) occurs: one line per (text, needle) found.

    ``texts`` are bodies, or (url, body) pairs such as :attr:`Browser.seen_html`. A number
    matches written as plain digits or grouped by 4 with spaces or dashes
    (``4111 1111 1111 1111``, ``4111-1111-1111-1111``).
    """
    patterns = [(needle, _card_pattern(needle)) for needle in needles]
    hits: list[str] = []
    for index, item in enumerate(texts):
        url, body = item if isinstance(item, tuple) else (f"text #{index}", item)
        for needle, pattern in patterns:
            found = pattern.search(body)
            if found:
                hits.append(f"{url}: card number {needle} found as {found.group()!r}")
    return hits
