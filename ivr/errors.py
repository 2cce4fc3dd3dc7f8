"""The engine's error tree. Every error that can reach a merchant carries a stable
kebab-case ``error_id`` and an HTTP status, so the API can turn it into RFC 9457
problem+json without a lookup table.

    ArspayError
    ├── ConfigError            bad arspay.toml / ARSPAY_* value          (500, never user input)
    ├── InvalidInput           bad input from a merchant, a CSV, the CLI (422)
    ├── NotFound               object does not exist or is not yours     (404)
    ├── Conflict               the current state forbids the operation   (409)
    │   ├── InvalidTransition  a state machine refused a transition
    │   └── PoolExhausted      no DID can be leased to this mobile now
    └── IntegrityViolation     stored data failed a check (e.g. consent chain) (500)

Messages never contain card data or DTMF digits: callers pass ids, never values.
"""

from __future__ import annotations

# The root and the two kinds a vault error can be: defined in the vault, which imports
# nothing from the engine (see vault/errors.py).
from vault.errors import ArspayError as ArspayError
from vault.errors import InvalidInput as InvalidInput
from vault.errors import NotFound as NotFound


class ConfigError(ArspayError, error_id="config-error"): ...


class Conflict(ArspayError, error_id="conflict", http_status=409): ...


class InvalidTransition(Conflict, error_id="invalid-state-transition"):
    def __init__(self, machine: str, current: str, target: str) -> None:
        super().__init__(f"{machine}: cannot go from {current!r} to {target!r}")
        self.machine = machine
        self.current = current
        self.target = target


class PoolExhausted(Conflict, error_id="did-pool-exhausted"): ...


class IntegrityViolation(ArspayError, error_id="integrity-violation"): ...


class CustomerInCall(Conflict, error_id="customer-in-call"):
    """A customer's mobile cannot change, nor the customer be deleted, while one of
    their requests is in a call: try again when the call has ended."""


class CustomerDeleted(Conflict, error_id="customer-deleted"):
    """The customer was deleted: their row stays for the records, nothing new is made."""
