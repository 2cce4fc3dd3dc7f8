"""Money: integer KRW (the won has no minor unit), one place for the bounds."""

from __future__ import annotations

from ivr.errors import InvalidInput

MIN_AMOUNT = 100  # KRW, the smallest card charge (PRODUCT section 6)
MAX_AMOUNT = 100_000_000_000  # sanity bound (1,000억): read-out prompts go up to 억


def check_amount(amount: object, what: str = "amount") -> int:
    """``amount`` as a valid charge in KRW, or InvalidInput (bools and floats refused)."""
    if type(amount) is not int or not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise InvalidInput(f"{what} must be an integer between {MIN_AMOUNT} and {MAX_AMOUNT} KRW")
    return amount
