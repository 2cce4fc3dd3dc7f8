"""The HTTP side every PG connector shares: one aiohttp session under the connector's
deadlines, created lazily (it needs the running loop) and closed with the connector
unless the caller lent it, and one request read whole under the total deadline.

The connectors (:mod:`ivr.gateways.portone`, :mod:`ivr.gateways.portone_v2`) derive
from :class:`HttpConnector` and add only what their API differs in: headers, paths,
and how an answer is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import aiohttp

Outcome = TypeVar("Outcome")


class HttpConnector:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        connect_timeout_s: float,
        total_timeout_s: float,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(
            total=total_timeout_s, connect=connect_timeout_s, sock_read=timeout_s
        )
        self._total_timeout_s = total_timeout_s
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:  # created lazily: it needs the running loop
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        """Send one request and read its answer whole: (HTTP status, body). Transport
        errors (``aiohttp.ClientError``, ``TimeoutError``) reach the caller, which
        knows whether the request may have been processed."""
        async with (
            asyncio.timeout(self._total_timeout_s),
            self._http().request(method, self._base + path, json=body, headers=headers) as resp,
        ):
            return resp.status, await resp.read()


@dataclass(frozen=True)
class HttpRow(Generic[Outcome]):
    """One row of a connector's HTTP status table: statuses ``low``..``high``
    (inclusive) mean ``outcome``, for the reason ``why``."""

    low: int
    high: int  # inclusive
    outcome: Outcome
    why: str


def status_outcome(rows: Sequence[HttpRow[Outcome]], status: int, default: Outcome) -> Outcome:
    """The outcome of the first row holding ``status`` (rows go narrow to wide), else
    ``default``."""
    for row in rows:
        if row.low <= status <= row.high:
            return row.outcome
    return default
