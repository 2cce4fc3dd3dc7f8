"""Bearer API keys and the per-key rate limit.

A key is ``ak_<prefix>_<secret>``; :meth:`MerchantService.authenticate` finds it by
prefix and compares SHA-256 digests in constant time. Successful lookups are cached for
a few seconds (a revoked key stops working within ``cache_s``), so a busy client costs
one database read per key per window instead of one per request.

The rate limit is a token bucket per key *per engine process* (documented in
docs/api.md): ``rate_per_minute`` tokens, refilled continuously.

Failed authentication (401) is limited too (:class:`AuthFailureLimiter`), per source
address and per presented key prefix: a source that spent its budget is answered 429
for *every* request until it refills, before any key is looked up (so its guesses are
not even checked); a prefix that spent its budget turns further *failures* with it into
429 — a request with the right key still goes through, so someone who learned a key's
prefix cannot lock its holder out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ivr.merchants.service import Principal
from ivr.web.problems import Problem

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


class _Buckets:
    """Token buckets by name: ``per_minute`` tokens, bursts up to the same number; at
    most ``max_names`` remembered (the fullest are forgotten first: a full bucket is
    what a new one would be)."""

    def __init__(self, per_minute: int, clock: Callable[[], float], max_names: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.max_names = max_names
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, name: str) -> _Bucket:
        now = self.clock()
        b = self._buckets.get(name)
        if b is None:
            if len(self._buckets) >= self.max_names:
                self._forget(now)
            b = self._buckets[name] = _Bucket(self.capacity, now)
        b.tokens = min(self.capacity, b.tokens + (now - b.at) * self.rate)
        b.at = now
        return b

    def _forget(self, now: float) -> None:
        for name, b in list(self._buckets.items()):
            if b.tokens + (now - b.at) * self.rate >= self.capacity:
                del self._buckets[name]
        if len(self._buckets) >= self.max_names:  # all busy: forget the oldest half
            for name in list(self._buckets)[: self.max_names // 2]:
                del self._buckets[name]

    def wait_s(self, name: str) -> int:
        """0 if ``name`` has a token, else the seconds until it has one."""
        b = self._bucket(name)
        if b.tokens >= 1.0:
            return 0
        return max(1, math.ceil((1.0 - b.tokens) / self.rate))

    def spend(self, name: str) -> None:
        b = self._bucket(name)
        b.tokens = max(0.0, b.tokens - 1.0)


def key_prefix(header: str | None) -> str | None:
    """The ``<prefix>`` of a presented ``ak_<prefix>_<secret>`` key, if it has one."""
    token = bearer_token(header)
    if token is None:
        return None
    parts = token.split("_")
    if len(parts) < 3 or parts[0] != "ak" or not 1 <= len(parts[1]) <= 32:
        return None
    return parts[1]


class AuthFailureLimiter:
    """401s per source address and per presented key prefix (see the module
    docstring): ``per_minute`` each, bursts up to the same number, per process."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        max_names: int = 100_000,
    ) -> None:
        self.per_minute = per_minute
        self.sources = _Buckets(per_minute, clock, max_names)
        self.prefixes = _Buckets(per_minute, clock, max_names)

    def _refused(self, wait: int, what: str) -> Problem:
        return Problem(
            429,
            "rate-limited",
            f"too many requests with a missing or invalid API key from this {what}; "
            f"retry after {wait} s",
            headers={"Retry-After": str(wait)},
        )

    def check_source(self, source: str) -> None:
        """429 while ``source`` has spent its budget of failures."""
        wait = self.sources.wait_s(source)
        if wait:
            raise self._refused(wait, "address")

    def failed(self, source: str, prefix: str | None) -> Problem | None:
        """Count a 401; the 429 to answer instead when the prefix's budget was spent."""
        self.sources.spend(source)
        if prefix is None:
            return None
        wait = self.prefixes.wait_s(prefix)
        self.prefixes.spend(prefix)
        return self._refused(wait, "key prefix") if wait else None


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
