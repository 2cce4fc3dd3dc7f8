"""The PortOne REST v1 connector (also the client of the sandbox PG, which speaks the
same API). One module per role, in the order a request meets them:

    client.py   PortOneGateway: HTTP over aiohttp, deadlines, logging, the operations
    auth.py     access-token cache (one refresh at a time)
    wire.py     PortOne request bodies and response fields (no contract decisions)
    errors.py   the mapping tables: transport, HTTP status, decline and cancel messages
    results.py  PortOne answers -> contract values (:mod:`ivr.gateways.contract`)

Callers need only :class:`PortOneGateway` and :class:`PortOneConfig`; see docs/portone.md.
"""

from ivr.gateways.portone.client import PortOneConfig, PortOneGateway

__all__ = ["PortOneConfig", "PortOneGateway"]
