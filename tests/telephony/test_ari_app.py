"""AriApp + AriCall against a scripted in-process ARI (events in, REST calls recorded)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from ivr.telephony.ari import CONNECTED, DISCONNECTED, LinkState
from ivr.telephony.ari_app import AriApp
from ivr.telephony.ari_events import Event, parse_event
from ivr.telephony.call import Call, CollectEnd, CollectSpec
from ivr.telephony.errors import CallHungUp, ChannelGone

pytestmark = pytest.mark.anyio


class ScriptedAri:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event | LinkState] = asyncio.Queue()
        self.calls: list[tuple[str, ...]] = []
        self.gone: set[str] = set()

    async def events(self) -> AsyncIterator[Event | LinkState]:
        while True:
            yield await self.queue.get()

    def send(self, raw: dict[str, Any]) -> None:
        self.queue.put_nowait(parse_event(raw))

    async def _rest(self, *call: str) -> None:
        self.calls.append(call)
        if len(call) > 1 and call[1] in self.gone:
            raise ChannelGone("gone", 404)

    async def answer(self, channel_id: str) -> None:
        await self._rest("answer", channel_id)

    async def play(self, channel_id: str, media: Sequence[str], playback_id: str) -> None:
        await self._rest("play", channel_id, *media, playback_id)
        self.send({"type": "PlaybackStarted", "playback": {"id": playback_id}})

    async def stop_playback(self, playback_id: str) -> None:
        await self._rest("stop", playback_id)

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self._rest("hangup", channel_id)

    async def continue_in_dialplan(self, channel_id: str, c: str, e: str, p: int) -> None:
        await self._rest("continue", channel_id, c, e, str(p))


def start(channel: str = "ch1") -> dict[str, Any]:
    return {
        "type": "StasisStart",
        "args": [],
        "channel": {
            "id": channel,
            "caller": {"number": "01012345678"},
            "dialplan": {"exten": "05051234567", "context": "arspay-stasis"},
        },
    }


def dtmf(channel: str, digit: str) -> dict[str, Any]:
    return {"type": "ChannelDtmfReceived", "digit": digit, "channel": {"id": channel}}


async def run_app(handler: Any) -> tuple[ScriptedAri, AriApp, asyncio.Task[None]]:
    ari = ScriptedAri()
    app = AriApp(ari, handler)  # type: ignore[arg-type]
    task = asyncio.create_task(app.run())
    ari.queue.put_nowait(CONNECTED)
    await asyncio.wait_for(app.connected.wait(), 1)
    return ari, app, task


async def test_call_sees_did_caller_and_digits_in_order() -> None:
    got: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()

    async def handler(call: Call) -> None:
        await call.answer()
        result = await call.collect(CollectSpec(max_digits=20, first_timeout_s=2))
        await got.put((call.did, call.caller_id, result.digits))

    ari, _, task = await run_app(handler)
    ari.send(start())
    for d in "1234567890*#":
        ari.send(dtmf("ch1", d))
    did, caller, digits = await asyncio.wait_for(got.get(), 2)
    assert (did, caller, digits) == ("05051234567", "01012345678", "1234567890*")
    await asyncio.sleep(0.01)
    assert ("hangup", "ch1") in ari.calls  # the app hangs up after the handler
    task.cancel()


async def test_barge_in_stops_the_playback_and_keeps_the_key() -> None:
    got: asyncio.Queue[object] = asyncio.Queue()

    async def handler(call: Call) -> None:
        interrupted = await call.play(["arspay/reg.consent"])
        result = await call.collect(CollectSpec(max_digits=1))
        await got.put((interrupted, result.digits, result.end))

    ari, _, task = await run_app(handler)
    ari.send(start())
    await asyncio.sleep(0.05)
    ari.send(dtmf("ch1", "1"))
    assert await asyncio.wait_for(got.get(), 2) == (True, "1", CollectEnd.max_digits)
    assert any(c[0] == "stop" for c in ari.calls)
    assert any(c[:3] == ("play", "ch1", "sound:arspay/reg.consent") for c in ari.calls)
    task.cancel()


async def test_playback_finishing_returns_false() -> None:
    got: asyncio.Queue[object] = asyncio.Queue()

    async def handler(call: Call) -> None:
        await got.put(await call.play(["a", "b"]))

    ari, _, task = await run_app(handler)
    ari.send(start())
    await asyncio.sleep(0.05)
    pb = next(c[-1] for c in ari.calls if c[0] == "play")
    ari.send({"type": "PlaybackFinished", "playback": {"id": pb, "state": "done"}})
    assert await asyncio.wait_for(got.get(), 2) is False
    task.cancel()


@pytest.mark.parametrize("how", ["StasisEnd", "ChannelHangupRequest", "link-drop"])
async def test_hangup_during_collect_ends_the_handler(how: str) -> None:
    ended: asyncio.Queue[str] = asyncio.Queue()

    async def handler(call: Call) -> None:
        try:
            await call.collect(CollectSpec(max_digits=4, first_timeout_s=5))
        except CallHungUp:
            await ended.put("hung up")

    ari, app, task = await run_app(handler)
    ari.send(start())
    await asyncio.sleep(0.05)
    if how == "link-drop":
        ari.queue.put_nowait(DISCONNECTED)
    else:
        ari.send({"type": how, "channel": {"id": "ch1"}})
    assert await asyncio.wait_for(ended.get(), 2) == "hung up"
    await asyncio.sleep(0.01)
    assert app.calls == {}
    task.cancel()


async def test_handler_bug_does_not_kill_the_app() -> None:
    seen: list[str] = []

    async def handler(call: Call) -> None:
        seen.append(call.call_id)
        raise RuntimeError("flow bug")

    ari, _, task = await run_app(handler)
    ari.send(start("a"))
    ari.send(start("b"))
    await asyncio.sleep(0.05)
    assert seen == ["a", "b"]
    assert not task.done()
    task.cancel()


async def test_transfer_continues_in_the_dialplan_without_hangup() -> None:
    async def handler(call: Call) -> None:
        await call.transfer("agents,100,1")

    ari, _, task = await run_app(handler)
    ari.send(start())
    await asyncio.sleep(0.05)
    assert ("continue", "ch1", "agents", "100", "1") in ari.calls
    assert ("hangup", "ch1") not in ari.calls
    task.cancel()
