"""A thin, typed ARI client on aiohttp: REST calls and the event WebSocket.

Why our own: every Python ARI library tried failed to reconnect (see
../shared/notes/libraries.md). :meth:`AriClient.events` yields events forever: when the
WebSocket drops (Asterisk restarted, network) it yields :data:`DISCONNECTED`, retries
with capped exponential backoff and jitter (0.1 s doubling to ``max_backoff_s``), and
yields :data:`CONNECTED` when it is back. The password goes in an ``Authorization``
header, never in a URL (URLs end up in logs).

**REST over the WebSocket** (Asterisk 22.3+/20.13+, ``rest_over_ws``, on by default):
while the event WebSocket is up, requests go over it as ``RESTRequest`` messages and
their ``RESTResponse`` comes back in the event stream, matched by ``request_id``. A
prompt after a key press then costs one WebSocket frame each way instead of an HTTP
request (about a fifth of the engine's CPU per call, and the round trip the payer waits
for, issue #10). While the WebSocket is down, and with ``rest_over_ws`` off (older
Asterisk), requests go over HTTP as before.

**Event filter** (``events``): at every connect the client asks Asterisk for these
event types only (``PUT /applications/{app}/eventFilter``, over HTTP), plus
``RESTResponse``: Asterisk filters those like events, and a filter without them
silences every answer over the WebSocket.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from ivr.telephony.ari_events import Event, parse_event
from ivr.telephony.errors import AriError, ChannelGone

log = logging.getLogger(__name__)


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
        rest_over_ws: bool = True,
        events: Sequence[str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self.request_timeout_s = request_timeout_s
        self.rest_over_ws = rest_over_ws
        self.events_wanted = tuple(events) if events is not None else None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[str, asyncio.Future[tuple[int, str, str]]] = {}
        self._request_ids = itertools.count(1)
        self.max_backoff_s = max_backoff_s
        self._session: aiohttp.ClientSession | None = None
        self.connects = 0  # how many times the WebSocket came up (tests, metrics)
        self.requests_over_ws = 0  # how requests went (tests, metrics)
        self.requests_over_http = 0

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

    async def request(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]] = (),
        *,
        json_body: Any = None,
        over_http: bool = False,
    ) -> Any:
        """One ARI call; ``path`` starts with ``/`` and leaves out ``/ari``; ``json_body``
        is sent as the JSON request body; ``over_http`` even while the WebSocket is up."""
        ws = self._ws
        if ws is not None and not ws.closed and not over_http:
            self.requests_over_ws += 1
            status, content_type, body = await self._over_ws(ws, method, path, params, json_body)
        else:
            self.requests_over_http += 1
            status, content_type, body = await self._over_http(method, path, params, json_body)
        if status == 404:
            raise ChannelGone(f"ARI {method} {path.split('?')[0]}: not found", 404)
        if status >= 400:
            raise AriError(f"ARI {method} {path}: HTTP {status}", status)
        if content_type.startswith("application/json") and body:
            try:
                return json.loads(body)
            except ValueError:
                raise AriError(f"ARI {method} {path}: bad JSON in the response") from None
        return None

    async def _over_http(
        self, method: str, path: str, params: Sequence[tuple[str, str]], json_body: Any
    ) -> tuple[int, str, str]:
        url = f"{self.base_url}/ari{path}"
        try:
            async with self.session.request(
                method, url, params=list(params), json=json_body
            ) as resp:
                return resp.status, resp.content_type, await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AriError(f"ARI {method} {path}: {type(exc).__name__}") from None

    async def _over_ws(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]],
        json_body: Any,
    ) -> tuple[int, str, str]:
        request_id = f"r{next(self._request_ids)}"
        message: dict[str, Any] = {
            "type": "RESTRequest",
            "request_id": request_id,
            "method": method,
            "uri": path.lstrip("/"),
        }
        if params:
            message["query_strings"] = [{"name": k, "value": v} for k, v in params]
        if json_body is not None:
            message["content_type"] = "application/json"
            message["message_body"] = json.dumps(json_body)
        answer: asyncio.Future[tuple[int, str, str]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        try:
            await ws.send_str(json.dumps(message))
            return await asyncio.wait_for(answer, self.request_timeout_s)
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
            raise AriError(f"ARI {method} {path}: {type(exc).__name__}") from None
        finally:
            self._pending.pop(request_id, None)

    def _answered(self, decoded: dict[str, Any]) -> None:
        answer = self._pending.get(str(decoded.get("request_id", "")))
        if answer is None or answer.done():
            return
        status = decoded.get("status_code")
        body = decoded.get("message_body")
        answer.set_result(
            (
                status if isinstance(status, int) else 500,
                str(decoded.get("content_type") or ""),
                body if isinstance(body, str) else "",
            )
        )

    def _drop_pending(self) -> None:
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(ConnectionError("ARI WebSocket closed"))
        self._pending.clear()

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

    async def _filter_events(self) -> None:
        """Ask Asterisk for ``events_wanted`` only (and the ``RESTResponse`` messages of
        REST over the WebSocket: Asterisk filters them like events). Over HTTP: this runs
        before the event loop reads the WebSocket. Without it (an Asterisk that refuses)
        every event still comes, and the app ignores what it does not handle."""
        if self.events_wanted is None:
            return
        wanted = [*self.events_wanted, *(("RESTResponse",) if self.rest_over_ws else ())]
        try:
            await self.request(
                "PUT",
                f"/applications/{quote(self.app)}/eventFilter",
                json_body={"allowed": [{"type": t} for t in wanted]},
                over_http=True,
            )
        except AriError as exc:
            log.warning("ARI event filter not set (all events will come): %s", exc)

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
                    await self._filter_events()
                    if self.rest_over_ws:
                        self._ws = ws
                    yield CONNECTED
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            try:
                                decoded = json.loads(msg.data)
                            except ValueError:
                                continue
                            if isinstance(decoded, dict) and decoded.get("type") == "RESTResponse":
                                self._answered(decoded)
                                continue
                            yield parse_event(decoded)
                        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                            break
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            finally:
                self._ws = None
                self._drop_pending()
            if up:
                yield DISCONNECTED
            await asyncio.sleep(backoff * (0.5 + random.random() / 2))
            backoff = min(backoff * 2, self.max_backoff_s)
