"""The PortOne V2 connector (also the client of the sandbox PG's ``/v2`` mount). One
module per role, in the order a request meets them:

    client.py    PortOneV2Gateway: HTTP over aiohttp, deadlines, idempotency keys,
                 logging, the operations, customer_uid -> billingKey
    wire.py      V2 request bodies and response fields (no contract decisions)
    errors.py    the mapping tables: HTTP status, error type, declines
    results.py   V2 answers -> contract values (:mod:`ivr.gateways.contract`)
    webhooks.py  verifying PortOne's V2 webhooks (Standard Webhooks)

Callers need only :class:`PortOneV2Gateway` and :class:`PortOneV2Config`; see
docs/portone.md §6.
"""

from ivr.gateways.portone_v2.client import PortOneV2Config, PortOneV2Gateway

__all__ = ["PortOneV2Config", "PortOneV2Gateway"]
