"""The sandbox PG: a stand-in for PortOne v1 that the project ships (docs/product.md §7).

``arspay sandbox-pg`` runs it as its own process; tests start :func:`create_app`
in-process. It speaks the same subset of PortOne REST v1 as
:mod:`ivr.gateways.portone` (paths, ``{code, message, response}`` envelope, field
names), decides outcomes by card number (:mod:`.cards`), keeps a persistent SQLite
ledger that is idempotent per ``merchant_uid`` (:mod:`.ledger`), adds latency and
injected faults, and offers test-only read endpoints under ``/sandbox/``.

It stores what a PG needs to play the test table — a masked card number, the issuer,
the scenario — never a full card number, birth date or password, and logs none.
"""

from ivr.gateways.sandbox.app import create_app
from ivr.gateways.sandbox.config import SandboxConfig

__all__ = ["SandboxConfig", "create_app"]
