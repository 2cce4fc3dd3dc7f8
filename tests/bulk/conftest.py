"""Bulk tests share the billing world (a merchant with a card, the sandbox PG behind a
FakeGateway, the scheduler): bulk charges run on billing's charger and queue, so the
fixture lives once, in tests/billing/conftest.py, and is re-exported here."""

from tests.billing.conftest import Billing, billing

__all__ = ["Billing", "billing"]
