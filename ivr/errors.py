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


class ArspayError(Exception):
    """Base of every error raised on purpose by the engine."""

    error_id = "internal-error"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(ArspayError):
    error_id = "config-error"


class InvalidInput(ArspayError):
    error_id = "invalid-input"
    http_status = 422


class NotFound(ArspayError):
    error_id = "not-found"
    http_status = 404


class Conflict(ArspayError):
    error_id = "conflict"
    http_status = 409


class InvalidTransition(Conflict):
    error_id = "invalid-state-transition"

    def __init__(self, machine: str, current: str, target: str) -> None:
        super().__init__(f"{machine}: cannot go from {current!r} to {target!r}")
        self.machine = machine
        self.current = current
        self.target = target


class PoolExhausted(Conflict):
    error_id = "did-pool-exhausted"


class IntegrityViolation(ArspayError):
    error_id = "integrity-violation"
