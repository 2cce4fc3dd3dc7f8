"""A bulk charge row: ``card_id, amount, order_name[, installment_months][, ref]``,
checked field by field when the file is submitted (the card itself is checked when the
row is charged: it may be deleted in between)."""

from __future__ import annotations

from typing import Any

from ivr.bulk.files import EXTRA_FIELDS
from ivr.bulk.rows import row_ref, unknown_columns
from ivr.domain.terms import check_amount, check_months
from ivr.domain.text import clean_text
from ivr.errors import InvalidInput

FIELDS = ("card_id", "amount", "order_name", "installment_months", "ref")
REQUIRED = FIELDS[:3]  # the CSV header names at least these


def check_row(raw: dict[str, Any]) -> dict[str, Any]:
    """A clean charge row, or InvalidInput naming the field (never echoing values)."""
    if EXTRA_FIELDS in raw:
        raise InvalidInput("the row has more fields than the header")
    unknown_columns(raw, FIELDS)
    card_id = str(raw.get("card_id") or "").strip()
    if not card_id.startswith("card_") or len(card_id) > 40:
        raise InvalidInput("card_id must be a card id (card_…)")
    try:
        amount = int(str(raw.get("amount", "")).replace(",", "").strip())
    except ValueError:
        raise InvalidInput("amount must be an integer number of KRW") from None
    check_amount(amount)
    order_name = clean_text(str(raw.get("order_name") or ""), "order_name")
    months_raw = str(raw.get("installment_months") or "0").strip()
    try:
        months = int(months_raw) if months_raw.isdigit() else -1
    except ValueError:  # digits int() refuses: "²", more than 4300 of them
        months = -1
    check_months(months)
    ref = row_ref(raw)
    return {"card_id": card_id, "amount": amount, "order_name": order_name,
            "installment_months": months, "ref": ref}  # fmt: skip
