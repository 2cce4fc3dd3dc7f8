"""ARI event parsing is total: odd input never raises."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.telephony.ari_events import (
    ChannelDtmfReceived,
    ChannelEnded,
    OtherEvent,
    PlaybackFinished,
    StasisStart,
    parse_event,
)


def test_stasis_start_carries_caller_and_did() -> None:
    event = parse_event(
        {
            "type": "StasisStart",
            "args": [],
            "channel": {
                "id": "1700000000.1",
                "name": "PJSIP/sipp-00000001",
                "state": "Ring",
                "caller": {"name": "", "number": "01012345678"},
                "dialplan": {"context": "arspay-stasis", "exten": "05051234567", "priority": 2},
            },
        }
    )
    assert isinstance(event, StasisStart)
    assert (event.channel.caller_number, event.channel.exten) == ("01012345678", "05051234567")


def test_dtmf_digit_is_hidden_from_repr() -> None:
    event = parse_event({"type": "ChannelDtmfReceived", "digit": "7", "channel": {"id": "c"}})
    assert isinstance(event, ChannelDtmfReceived)
    assert event.digit == "7"
    assert "7" not in repr(event)


@pytest.mark.parametrize("kind", ["ChannelHangupRequest", "ChannelDestroyed"])
def test_hangup_events(kind: str) -> None:
    assert parse_event({"type": kind, "channel": {"id": "c"}}) == ChannelEnded("c", kind)


def test_playback_finished() -> None:
    raw = {"type": "PlaybackFinished", "playback": {"id": "pb-1", "state": "done"}}
    assert parse_event(raw) == PlaybackFinished("pb-1", "done")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(
    st.dictionaries(st.sampled_from(["type", "channel", "args", "playback", "digit"]), json_values)
    | json_values
)
def test_parse_never_raises(raw: Any) -> None:
    if isinstance(raw, dict) and "type" in raw and not isinstance(raw["type"], str):
        raw["type"] = str(raw["type"])
    parse_event(raw)


def test_unknown_event() -> None:
    assert parse_event({"type": "ChannelVarset"}) == OtherEvent("ChannelVarset")
    assert parse_event([1, 2]) == OtherEvent("invalid")
