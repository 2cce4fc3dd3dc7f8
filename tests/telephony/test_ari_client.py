"""AriClient's transport against a loopback ARI (aiohttp): requests go over the event
WebSocket as ``RESTRequest`` while it is up, over HTTP when it is down or when
``rest_over_ws`` is off; status codes map to the same errors either way; a request in
flight when the WebSocket drops fails at once instead of waiting for its timeout.

The message shapes are Asterisk 22's; tests/e2e/test_telephony.py checks them against
the real thing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from ivr.telephony.ari import AriClient, LinkState
from ivr.telephony.ari_events import Event
from ivr.telephony.errors import AriError, ChannelGone

pytestmark = pytest.mark.anyio


@dataclass
class FakeAri:
    url: str = ""
    over_ws: list[dict[str, Any]] = field(default_factory=list)
    over_http: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    http_bodies: list[Any] = field(default_factory=list)  # JSON bodies, in order
    refuse_filter: bool = False
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    hold_back: set[str] = field(default_factory=set)  # URIs not answered over the WS
    received: asyncio.Event = field(default_factory=asyncio.Event)  # a RESTRequest came

    def answer(self, method: str, uri: str, query: dict[str, str]) -> tuple[int, str, str]:
        if method == "PUT" and uri.endswith("/eventFilter"):
            return (405, "", "") if self.refuse_filter else (200, "application/json", "{}")
        if uri == "asterisk/info":
            return 200, "application/json", json.dumps({"system": {"entity_id": "fake"}})
        if uri.startswith("channels/gone"):
            return 404, "application/json", json.dumps({"message": "Channel not found"})
        if uri == "asterisk/variable":
            return 200, "application/json", json.dumps({"value": query.get("variable", "")})
        if method == "POST":
            return 204, "", ""
        return 500, "application/json", "{}"


@pytest.fixture
async def ari() -> AsyncIterator[FakeAri]:
    fake = FakeAri()

    async def events(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        fake.sockets.append(ws)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            req = json.loads(msg.data)
            fake.over_ws.append(req)
            fake.received.set()
            if req["uri"] in fake.hold_back:
                continue
            if "message_body" in req:
                assert req["content_type"] == "application/json"
                fake.http_bodies.append(json.loads(req["message_body"]))
            query = {q["name"]: q["value"] for q in req.get("query_strings", [])}
            status, ctype, body = fake.answer(req["method"], req["uri"], query)
            # an event first, as Asterisk may interleave them with responses
            await ws.send_str(json.dumps({"type": "PlaybackStarted", "playback": {"id": "p"}}))
            await ws.send_str(
                json.dumps(
                    {
                        "type": "RESTResponse",
                        "transaction_id": "",
                        "request_id": req["request_id"],
                        "status_code": status,
                        "reason_phrase": "",
                        "uri": req["uri"],
                        "content_type": ctype,
                        "message_body": body,
                    }
                )
            )
        return ws

    async def rest(request: web.Request) -> web.Response:
        uri = request.match_info["uri"]
        fake.over_http.append((request.method, uri, dict(request.query)))
        if request.can_read_body:
            fake.http_bodies.append(await request.json())
        status, ctype, body = fake.answer(request.method, uri, dict(request.query))
        if not ctype:
            return web.Response(status=status)
        return web.Response(status=status, text=body, content_type=ctype)

    app = web.Application()
    app.router.add_get("/ari/events", events)
    app.router.add_route("*", "/ari/{uri:.+}", rest)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        for ws in fake.sockets:
            await ws.close()
        await runner.cleanup()


class Listening:
    """Runs ``client.events()`` in a task, as AriApp does, and keeps what it yields."""

    def __init__(self, client: AriClient) -> None:
        self.client = client
        self.items: list[Event | LinkState] = []
        self.up = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for item in self.client.events():
            self.items.append(item)
            if isinstance(item, LinkState) and item.up:
                self.up.set()

    async def __aenter__(self) -> Listening:
        self.task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.up.wait(), 5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def client_for(ari: FakeAri, **kw: Any) -> AriClient:
    return AriClient(ari.url, "arspay", "pw", "arspay", request_timeout_s=2.0, **kw)


async def test_requests_go_over_the_websocket_while_it_is_up(ari: FakeAri) -> None:
    async with client_for(ari) as client, Listening(client) as listening:
        assert (await client.info())["system"]["entity_id"] == "fake"
        got = await client.request("GET", "/asterisk/variable", [("variable", "A B&C")])
        await client.play("chan-1", ["sound:one", "sound:two"], "pb-1")
        with pytest.raises(ChannelGone):
            await client.answer("gone-1")

    assert ari.over_http == []
    assert (client.requests_over_ws, client.requests_over_http) == (4, 0)
    assert got == {"value": "A B&C"}
    first, variable, play, gone = ari.over_ws
    assert (first["method"], first["uri"]) == ("GET", "asterisk/info")
    assert "query_strings" not in first
    assert variable["query_strings"] == [{"name": "variable", "value": "A B&C"}]
    assert (play["method"], play["uri"]) == ("POST", "channels/chan-1/play/pb-1")
    assert play["query_strings"] == [{"name": "media", "value": "sound:one,sound:two"}]
    assert gone["uri"] == "channels/gone-1/answer"
    assert len({r["request_id"] for r in ari.over_ws}) == 4
    # responses never reach the event stream; the interleaved events do
    kinds = [type(i).__name__ for i in listening.items]
    assert kinds.count("PlaybackStarted") == 4


async def test_over_http_when_the_websocket_is_down_or_switched_off(ari: FakeAri) -> None:
    async with client_for(ari) as client:
        assert (await client.info())["system"]["entity_id"] == "fake"  # no WS yet
    async with client_for(ari, rest_over_ws=False) as client, Listening(client):
        await client.request("GET", "/asterisk/variable", [("variable", "X")])
        with pytest.raises(ChannelGone):
            await client.answer("gone-2")
    assert ari.over_ws == []
    assert [(m, u) for m, u, _ in ari.over_http] == [
        ("GET", "asterisk/info"),
        ("GET", "asterisk/variable"),
        ("POST", "channels/gone-2/answer"),
    ]
    assert ari.over_http[1][2] == {"variable": "X"}


async def test_a_request_in_flight_fails_at_once_when_the_websocket_drops(ari: FakeAri) -> None:
    ari.hold_back.add("channels/c1/answer")
    async with client_for(ari, max_backoff_s=0.1) as client, Listening(client) as listening:
        pending = asyncio.create_task(client.answer("c1"))
        await asyncio.wait_for(ari.received.wait(), 5)
        listening.up.clear()
        started = time.monotonic()
        await ari.sockets[0].close()
        with pytest.raises(AriError) as caught:
            await pending
        assert time.monotonic() - started < 1.0  # not the 2 s request timeout
        assert not isinstance(caught.value, ChannelGone)
        # reconnected: requests go over the new WebSocket again
        await asyncio.wait_for(listening.up.wait(), 5)
        assert len(ari.sockets) == 2
        assert (await client.info())["system"]["entity_id"] == "fake"
    assert ari.over_http == []
    assert len(ari.over_ws) == 2


async def test_an_unanswered_request_times_out_as_an_ari_error(ari: FakeAri) -> None:
    ari.hold_back.add("channels/c2/answer")
    async with client_for(ari) as client, Listening(client):
        client.request_timeout_s = 0.2
        with pytest.raises(AriError, match="TimeoutError"):
            await client.answer("c2")
        assert client._pending == {}


@pytest.mark.parametrize("over_ws", [True, False])
async def test_each_connect_asks_for_the_handled_events_only(ari: FakeAri, over_ws: bool) -> None:
    wanted = ("StasisStart", "ChannelDtmfReceived")
    async with client_for(ari, events=wanted, rest_over_ws=over_ws) as client:
        async with Listening(client):
            pass
        async with Listening(client):
            pass
    allowed = [t["type"] for t in ari.http_bodies[0]["allowed"]]
    # RESTResponse too when REST goes over the WebSocket: Asterisk filters it like events
    assert allowed == [*wanted, *(["RESTResponse"] if over_ws else [])]
    assert [(m, u) for m, u, _ in ari.over_http] == [("PUT", "applications/arspay/eventFilter")] * 2
    assert ari.http_bodies[1] == ari.http_bodies[0]


async def test_no_filter_without_events_and_a_refused_filter_is_not_fatal(ari: FakeAri) -> None:
    async with client_for(ari) as client, Listening(client):
        assert (await client.info())["system"]["entity_id"] == "fake"
    assert ari.over_http == []
    ari.refuse_filter = True
    async with client_for(ari, events=("StasisStart",)) as client, Listening(client):
        assert (await client.info())["system"]["entity_id"] == "fake"
    assert [m for m, _, _ in ari.over_http] == ["PUT"]


async def test_a_json_body_goes_as_the_message_body(ari: FakeAri) -> None:
    async with client_for(ari) as client, Listening(client):
        await client.request("POST", "/channels/c9/variable", json_body={"a": [1, "두"]})
    assert ari.http_bodies == [{"a": [1, "두"]}]
    assert ari.over_http == []
