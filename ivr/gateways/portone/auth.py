"""The PortOne access token: fetched with imp_key/imp_secret, cached, renewed early.

PortOne v1 tokens live 30 minutes (``expired_at``/``now`` in the answer of
``POST /users/getToken``); a call with an expired token gets HTTP 401. The cache renews
``margin_s`` before expiry (at most half the lifetime), one fetch at a time; the
connector also drops a token the PG answered 401 to and fetches a new one, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class TokenCache:
    def __init__(
        self,
        fetch: Callable[[], Awaitable[tuple[str, float]]],
        *,
        clock: Callable[[], float],
        margin_s: float,
    ) -> None:
        self._fetch = fetch  # -> (token, lifetime in seconds)
        self._clock = clock
        self._margin_s = margin_s
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.fetches = 0

    def _current(self) -> str | None:
        if self._token is not None and self._clock() < self._renew_at:
            return self._token
        return None

    async def get(self) -> str:
        token = self._current()
        if token is not None:
            return token
        async with self._lock:  # one getToken at a time; the others wait and reuse it
            token = self._current()
            if token is not None:
                return token
            token, lifetime = await self._fetch()
            self.fetches += 1
            margin = min(self._margin_s, lifetime / 2)
            self._token, self._renew_at = token, self._clock() + lifetime - margin
            return token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the PG answered 401); a newer token is kept."""
        if self._token == token:
            self._token = None
