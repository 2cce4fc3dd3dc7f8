"""Consent evidence (PRODUCT section 4.3): an append-only, hash-chained ledger."""
