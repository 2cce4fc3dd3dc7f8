"""Runs after the other console tests (file order): no page or fragment that any of
them received — through httpx or in the browser, as a merchant user or an operator,
in Korean or English — shows a full test card number; BIN6 + last 4 at most."""

from __future__ import annotations

import pytest

from tests.console.browser import scan_for
from tests.console.conftest import RENDERED

# every card number the console tests register or charge
CARDS = ("4111111111111111", "4000000000009995", "5500000000000004")


def test_no_page_rendered_in_the_suite_shows_a_card_number() -> None:
    if len(RENDERED) < 100:
        pytest.fail(f"only {len(RENDERED)} pages seen: run the whole tests/console directory")
    assert scan_for(RENDERED, CARDS) == []
    masked = [url for url, body in RENDERED if "411111******1111" in body]
    assert masked, "no page showed a masked card: the scan looked at the wrong pages"
