"""The Stasis application: turns ARI events into :class:`AriCall` objects and runs one
handler task per call.

Each ``StasisStart`` starts ``handler(call)``; DTMF and playback events are routed to
their call; a hang-up (``StasisEnd``, ``ChannelHangupRequest``, ``ChannelDestroyed``)
ends it. When the WebSocket drops, every call in progress is treated as hung up: its
events can no longer be trusted, and ending a payment call early is always safe (no
charge happens without a confirmed consent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence

from ivr.telephony.ari import AriClient, LinkState
from ivr.telephony.ari_events import (
    ChannelDtmfReceived,
    ChannelEnded,
    ChannelInfo,
    Event,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
)
from ivr.telephony.call import BufferedCall, CallHandler, parse_destination
from ivr.telephony.errors import AriError, CallHungUp, ChannelGone

log = logging.getLogger(__name__)


class AriCall(BufferedCall):
    """:class:`~ivr.telephony.call.Call` over ARI."""

    def __init__(self, client: AriClient, channel: ChannelInfo, app: AriApp) -> None:
        super().__init__(channel.id, channel.exten, channel.caller_number)
        self._client = client
        self._app = app
        self._playback_done: dict[str, asyncio.Event] = {}
        self.transferred = False

    async def answer(self) -> None:
        self._check()
        try:
            await self._client.answer(self.call_id)
        except ChannelGone:
            self.buffer.hang_up()
            raise CallHungUp from None

    async def play(self, prompts: Sequence[str], *, barge_in: bool = True) -> bool:
        self._check()
        if not prompts:
            return False
        if barge_in and self.buffer.pending():
            return True  # type-ahead: the caller already answered
        playback_id = f"pb-{secrets.token_hex(8)}"
        done = asyncio.Event()
        self._playback_done[playback_id] = done
        self._app.track_playback(playback_id, self)
        self.buffer.arrived.clear()
        try:
            try:
                await self._client.play(self.call_id, [f"sound:{p}" for p in prompts], playback_id)
            except ChannelGone:
                self.buffer.hang_up()
                raise CallHungUp from None
            waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(done.wait())}
            if barge_in:
                waiters.add(asyncio.ensure_future(self._key_or_hangup()))
            else:
                waiters.add(asyncio.ensure_future(self.buffer.wait_hangup(None)))
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
            self._check()
            if done.is_set():
                return False
            with contextlib.suppress(AriError):  # it may have just finished
                await self._client.stop_playback(playback_id)
            return True
        finally:
            self._playback_done.pop(playback_id, None)
            self._app.untrack_playback(playback_id)

    async def _key_or_hangup(self) -> None:
        while not self.buffer.pending() and not self.buffer.hung_up:
            self.buffer.arrived.clear()
            await self.buffer.arrived.wait()

    async def transfer(self, destination: str) -> None:
        self._check()
        context, exten, priority = parse_destination(destination)
        try:
            await self._client.continue_in_dialplan(self.call_id, context, exten, priority)
        except ChannelGone:
            self.buffer.hang_up()
            raise CallHungUp from None
        self.transferred = True

    async def hangup(self) -> None:
        if self.buffer.hung_up:
            return
        with contextlib.suppress(AriError):
            await self._client.hangup(self.call_id)
        self.buffer.hang_up()

    async def wait_hangup(self, timeout_s: float | None = None) -> bool:
        return await self.buffer.wait_hangup(timeout_s)

    # events from the app
    def on_playback_finished(self, playback_id: str) -> None:
        event = self._playback_done.get(playback_id)
        if event is not None:
            event.set()


class AriApp:
    """Runs the Stasis app until cancelled; survives WebSocket drops."""

    def __init__(
        self,
        client: AriClient,
        handler: CallHandler,
        *,
        on_link: Callable[[bool], None] | None = None,
    ) -> None:
        self.client = client
        self.handler = handler
        self.on_link = on_link
        self.calls: dict[str, AriCall] = {}
        self._playbacks: dict[str, AriCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()

    def track_playback(self, playback_id: str, call: AriCall) -> None:
        self._playbacks[playback_id] = call

    def untrack_playback(self, playback_id: str) -> None:
        self._playbacks.pop(playback_id, None)

    async def run(self) -> None:
        try:
            async for item in self.client.events():
                if isinstance(item, LinkState):
                    self._link(item.up)
                else:
                    self.dispatch(item)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def _link(self, up: bool) -> None:
        if up:
            self.connected.set()
        else:
            self.connected.clear()
            for call in list(self.calls.values()):
                call.buffer.hang_up()
        if self.on_link is not None:
            self.on_link(up)

    def dispatch(self, event: Event) -> None:
        if isinstance(event, StasisStart):
            if event.channel.id in self.calls:
                return
            call = AriCall(self.client, event.channel, self)
            self.calls[call.call_id] = call
            task = asyncio.create_task(self._serve(call), name=f"call-{call.call_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(event, ChannelDtmfReceived):
            target = self.calls.get(event.channel_id)
            if target is not None:
                target.buffer.put(event.digit)
        elif isinstance(event, StasisEnd | ChannelEnded):
            target = self.calls.get(event.channel_id)
            if target is not None:
                target.buffer.hang_up()
        elif isinstance(event, PlaybackFinished):
            owner = self._playbacks.get(event.playback_id)
            if owner is not None:
                owner.on_playback_finished(event.playback_id)

    async def _serve(self, call: AriCall) -> None:
        try:
            await self.handler(call)
        except CallHungUp:
            pass
        except Exception:  # a bug in a flow must not take the app down
            log.exception("call handler failed", extra={"call_id": call.call_id})
        finally:
            if not call.transferred:
                await call.hangup()
            self.calls.pop(call.call_id, None)
