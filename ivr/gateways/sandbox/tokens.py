"""Access tokens of the sandbox PG, as PortOne v1 documents them.

``POST /users/getToken`` with the configured imp_key/imp_secret returns
``{access_token, now, expired_at}`` (UNIX seconds); a still-valid token is returned
again rather than a new one (PortOne reuses a token until it expires). Calls present it
as ``Authorization: Bearer <token>``, a bare ``Authorization: <token>`` or
``X-ImpTokenHeader: <token>``. Tokens live in memory: a restarted sandbox answers 401
to old ones, which is exactly what a connector must survive.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Mapping

REUSE_IF_LEFT_S = 60


class TokenStore:
    def __init__(
        self, imp_key: str, imp_secret: str, ttl_s: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = imp_key.encode()
        self._secret = imp_secret.encode()
        self._ttl_s = ttl_s
        self._clock = clock
        self._tokens: dict[str, int] = {}  # token -> expired_at
        self._current: str | None = None
        self.issued = 0

    def credentials_ok(self, key: object, secret: object) -> bool:
        if not isinstance(key, str) or not isinstance(secret, str):
            return False
        key_ok = hmac.compare_digest(key.encode(), self._key)
        secret_ok = hmac.compare_digest(secret.encode(), self._secret)
        return key_ok and secret_ok

    def issue(self) -> tuple[str, int, int]:
        """``(access_token, now, expired_at)``."""
        now = int(self._clock())
        current = self._current
        if current is not None and self._tokens.get(current, 0) - now > REUSE_IF_LEFT_S:
            return current, now, self._tokens[current]
        token = secrets.token_hex(20)
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        self._tokens[token] = now + self._ttl_s
        self._current = token
        self.issued += 1
        return token, now, now + self._ttl_s

    def valid(self, headers: Mapping[str, str]) -> bool:
        token = headers.get("X-ImpTokenHeader") or headers.get("Authorization") or ""
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        expires = self._tokens.get(token)
        return expires is not None and expires > self._clock()

    def revoke_all(self) -> None:
        """Test hook: every token becomes invalid (as after a sandbox restart)."""
        self._tokens.clear()
        self._current = None
