"""Typed ARI events: the few the engine acts on, parsed from the WebSocket JSON.

Anything else becomes :class:`OtherEvent`. ``ChannelDtmfReceived`` carries a key the
caller pressed: its ``repr`` hides it, and no code path logs events whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    id: str
    name: str
    state: str
    caller_number: str
    exten: str
    context: str

    @classmethod
    def parse(cls, raw: Any) -> ChannelInfo:
        raw = raw if isinstance(raw, dict) else {}
        caller = raw.get("caller") if isinstance(raw.get("caller"), dict) else {}
        dialplan = raw.get("dialplan") if isinstance(raw.get("dialplan"), dict) else {}
        return cls(
            id=str(raw.get("id", "")),
            name=str(raw.get("name", "")),
            state=str(raw.get("state", "")),
            caller_number=str(caller.get("number", "")),
            exten=str(dialplan.get("exten", "")),
            context=str(dialplan.get("context", "")),
        )


@dataclass(frozen=True, slots=True)
class StasisStart:
    channel: ChannelInfo
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StasisEnd:
    channel_id: str


@dataclass(frozen=True, slots=True)
class ChannelDtmfReceived:
    channel_id: str
    digit: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ChannelEnded:
    """ChannelHangupRequest or ChannelDestroyed: the call is over."""

    channel_id: str
    kind: str


@dataclass(frozen=True, slots=True)
class PlaybackStarted:
    playback_id: str


@dataclass(frozen=True, slots=True)
class PlaybackFinished:
    playback_id: str
    state: str  # done | failed | cancelled …


@dataclass(frozen=True, slots=True)
class OtherEvent:
    type: str


Event = (
    StasisStart
    | StasisEnd
    | ChannelDtmfReceived
    | ChannelEnded
    | PlaybackStarted
    | PlaybackFinished
    | OtherEvent
)


def _channel_id(raw: dict[str, Any]) -> str:
    channel = raw.get("channel")
    return str(channel.get("id", "")) if isinstance(channel, dict) else ""


def _playback_id(raw: dict[str, Any]) -> str:
    playback = raw.get("playback")
    return str(playback.get("id", "")) if isinstance(playback, dict) else ""


# What the engine acts on: the app asks Asterisk for these only (an application event
# filter, set at every connect), so the rest of a call's ~100 messages —
# PlaybackContinuing between the files of a prompt, ChannelVarset, ChannelStateChange,
# PlaybackStarted — is neither sent nor parsed (issue #10).
HANDLED_EVENTS = (
    "StasisStart",
    "StasisEnd",
    "ChannelDtmfReceived",
    "ChannelHangupRequest",
    "ChannelDestroyed",
    "PlaybackFinished",
)


def parse_event(raw: Any) -> Event:
    """Parse one decoded WebSocket message; never raises on odd input."""
    if not isinstance(raw, dict):
        return OtherEvent("invalid")
    kind = str(raw.get("type", ""))
    if kind == "StasisStart":
        args = raw.get("args")
        args = args if isinstance(args, list) else []
        return StasisStart(ChannelInfo.parse(raw.get("channel")), tuple(str(a) for a in args))
    if kind == "StasisEnd":
        return StasisEnd(_channel_id(raw))
    if kind == "ChannelDtmfReceived":
        return ChannelDtmfReceived(_channel_id(raw), str(raw.get("digit", "")))
    if kind in ("ChannelHangupRequest", "ChannelDestroyed"):
        return ChannelEnded(_channel_id(raw), kind)
    if kind == "PlaybackStarted":
        return PlaybackStarted(_playback_id(raw))
    if kind == "PlaybackFinished":
        playback = raw.get("playback")
        playback = playback if isinstance(playback, dict) else {}
        return PlaybackFinished(_playback_id(raw), str(playback.get("state", "")))
    return OtherEvent(kind or "unknown")
