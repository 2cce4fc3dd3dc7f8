"""A thin, typed ARI client on aiohttp: REST calls and the event WebSocket.

Why our own: every Python ARI library tried failed to reconnect (see
../shared/notes/libraries.md). :meth:`AriClient.events` yields events forever: when the
WebSocket drops (Asterisk restarted, network) it yields :data:`DISCONNECTED`, retries
with capped exponential backoff and jitter (0.1 s doubling to ``max_backoff_s``), and
yields :data:`CONNECTED` when it is back. The password goes in an ``Authorization``
header, never in a URL (URLs end up in logs).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from ivr.telephony.ari_events import Event, parse_event
from ivr.telephony.errors import AriError, ChannelGone


@dataclass(frozen=True, slots=True)
class LinkState:
    up: bool


CONNECTED = LinkState(True)
DISCONNECTED = LinkState(False)


class AriClient:
    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        app: str,
        *,
        request_timeout_s: float = 5.0,
        max_backoff_s: float = 1.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self.max_backoff_s = max_backoff_s
        self._session: aiohttp.ClientSession | None = None
        self.connects = 0  # how many times the WebSocket came up (tests, metrics)

    async def __aenter__(self) -> AriClient:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("AriClient used outside 'async with'")
        return self._session

    # ------------------------------------------------------------------ REST

    async def request(self, method: str, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        url = f"{self.base_url}/ari{path}"
        try:
            async with self.session.request(method, url, params=list(params)) as resp:
                if resp.status == 404:
                    raise ChannelGone(f"ARI {method} {path.split('?')[0]}: not found", 404)
                if resp.status >= 400:
                    raise AriError(f"ARI {method} {path}: HTTP {resp.status}", resp.status)
                if resp.content_type == "application/json":
                    return await resp.json()
                return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AriError(f"ARI {method} {path}: {type(exc).__name__}") from None

    async def info(self) -> dict[str, Any]:
        result = await self.request("GET", "/asterisk/info")
        return result if isinstance(result, dict) else {}

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{quote(channel_id)}/answer")

    async def play(self, channel_id: str, media: Sequence[str], playback_id: str) -> None:
        """Play a list of media URIs as one playback (``PlaybackFinished`` at the end).

        ARI takes the list as *one* comma-separated ``media`` value (Asterisk 14+ media
        playlists); repeated ``media`` parameters are not a list to it: only the last
        one played, so a payer heard the end of each multi-part prompt only."""
        if any("," in m for m in media):
            raise ValueError("a media URI cannot contain a comma (ARI's list separator)")
        params = [("media", ",".join(media))]
        path = f"/channels/{quote(channel_id)}/play/{quote(playback_id)}"
        await self.request("POST", path, params)

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("DELETE", f"/playbacks/{quote(playback_id)}")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self.request("DELETE", f"/channels/{quote(channel_id)}", [("reason", reason)])

    async def continue_in_dialplan(
        self, channel_id: str, context: str, extension: str, priority: int
    ) -> None:
        params = [("context", context), ("extension", extension), ("priority", str(priority))]
        await self.request("POST", f"/channels/{quote(channel_id)}/continue", params)

    # ------------------------------------------------------------------ events

    def _ws_url(self) -> str:
        scheme = "wss" if self.base_url.startswith("https") else "ws"
        host = self.base_url.split("://", 1)[-1]
        return f"{scheme}://{host}/ari/events?app={quote(self.app)}&subscribeAll=false"

    async def events(self) -> AsyncIterator[Event | LinkState]:
        """Events forever, reconnecting as needed; link changes are yielded too."""
        backoff = 0.1
        while True:
            up = False
            try:
                async with self.session.ws_connect(
                    self._ws_url(), heartbeat=5.0, timeout=aiohttp.ClientWSTimeout(ws_close=2)
                ) as ws:
                    self.connects += 1
                    backoff, up = 0.1, True
                    yield CONNECTED
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            try:
                                decoded = json.loads(msg.data)
                            except ValueError:
                                continue
                            yield parse_event(decoded)
                        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                            break
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            if up:
                yield DISCONNECTED
            await asyncio.sleep(backoff * (0.5 + random.random() / 2))
            backoff = min(backoff * 2, self.max_backoff_s)
