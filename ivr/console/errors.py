"""The console's errors: all :class:`~ivr.errors.ArspayError`, so pages turn them into
the same status codes the API uses."""

from __future__ import annotations

from ivr.errors import ArspayError, InvalidInput


class ConsoleError(ArspayError, error_id="console-error"): ...


class LoginFailed(ConsoleError, error_id="login-failed", http_status=401):
    """Wrong email or password, or a disabled user (one message for all: no hints)."""


class LockedOut(ConsoleError, error_id="locked-out", http_status=429): ...


class Forbidden(ConsoleError, error_id="forbidden", http_status=403): ...


class WeakPassword(InvalidInput, error_id="weak-password"): ...
