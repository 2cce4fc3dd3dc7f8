"""Order ids every PG behind PortOne takes (issue #27): letters and digits, at most 40."""

from __future__ import annotations

import re

from ivr.domain.ids import is_object_id, new_order_id
from ivr.gateways.portone.pgs import PLAIN_ORDER_ID


def test_new_order_ids_are_letters_and_digits() -> None:
    ids = {new_order_id() for _ in range(200)}
    assert len(ids) == 200
    for order_id in ids:
        assert re.fullmatch(r"ord[0-9A-Z]{26}", order_id)
        assert PLAIN_ORDER_ID.fullmatch(order_id)  # Smartro's new module: no "_" or "-"
        assert is_object_id(order_id)  # a ULID's digit run is not taken for a card number


def test_old_order_ids_stay_readable() -> None:
    assert is_object_id("ord_01M8J2EGANDW40NY4750D09EE4")
    assert not is_object_id("ord4111111111111111")  # not a ULID: a card-like run
