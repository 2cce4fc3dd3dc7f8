"""Bearer API keys and the per-key rate limit.

A key is ``ak_<prefix>_<secret>``; :meth:`MerchantService.authenticate` finds it by
prefix and compares SHA-256 digests in constant time. Successful lookups are cached for
a few seconds (a revoked key stops working within ``cache_s``), so a busy client costs
one database read per key per window instead of one per request.

The rate limit is a token bucket per key *per engine process* (documented in
docs/api.md): ``rate_per_minute`` tokens, refilled continuously.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ivr.api.problems import Problem
from ivr.merchants.service import Principal

Authenticate = Callable[[str], Awaitable[Principal | None]]


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class KeyCache:
    """Authenticated keys for ``ttl_s`` seconds (monotonic time)."""

    def __init__(self, authenticate: Authenticate, ttl_s: float = 5.0, size: int = 10_000) -> None:
        self._authenticate = authenticate
        self.ttl_s = ttl_s
        self.size = size
        self._hits: dict[str, tuple[float, Principal]] = {}

    async def principal(self, header: str | None) -> Principal:
        token = bearer_token(header)
        if token is None:
            raise Problem(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
        now = time.monotonic()
        hit = self._hits.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        principal = await self._authenticate(token)
        if principal is None:
            self._hits.pop(token, None)
            raise Problem(
                401,
                "unauthorized",
                "the API key is unknown, revoked, or its merchant is suspended",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if len(self._hits) >= self.size:
            self._hits.clear()
        self._hits[token] = (now + self.ttl_s, principal)
        return principal


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token bucket per key id: ``per_minute`` requests, bursts up to the same number."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key_id: str) -> dict[str, str]:
        """Spend one token or raise 429; returns the ``RateLimit-*`` headers."""
        now = self.clock()
        b = self._buckets.get(key_id)
        if b is None:
            b = self._buckets[key_id] = _Bucket(self.capacity, now)
        b.tokens = min(self.capacity, b.tokens + (now - b.at) * self.rate)
        b.at = now
        if b.tokens < 1.0:
            wait = max(1, math.ceil((1.0 - b.tokens) / self.rate))
            raise Problem(
                429,
                "rate-limited",
                f"at most {int(self.capacity)} requests per minute per API key",
                headers={
                    "Retry-After": str(wait),
                    "RateLimit-Limit": str(int(self.capacity)),
                    "RateLimit-Remaining": "0",
                },
            )
        b.tokens -= 1.0
        return {
            "RateLimit-Limit": str(int(self.capacity)),
            "RateLimit-Remaining": str(int(b.tokens)),
        }
