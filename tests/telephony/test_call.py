"""The collect algorithm and the fake call flows are tested against."""

from __future__ import annotations

import pytest

from ivr.telephony.call import CollectEnd, CollectSpec, parse_destination
from ivr.telephony.errors import CallHungUp
from ivr.telephony.fake import FakeCall, HangUp, Press, Silence

pytestmark = pytest.mark.anyio

CARD = CollectSpec(max_digits=16, min_digits=14, terminator="#")


@pytest.mark.parametrize(
    ("script", "spec", "digits", "end"),
    [
        ([Press("4111111111111111")], CARD, "4111111111111111", CollectEnd.max_digits),
        ([Press("36123456789012#")], CARD, "36123456789012", CollectEnd.terminator),
        ([Press("12"), Silence()], CARD, "12", CollectEnd.inter_digit_timeout),
        ([Silence()], CARD, "", CollectEnd.timeout),
        ([], CARD, "", CollectEnd.timeout),
        ([Press("*")], CARD, "", CollectEnd.repeat),
        ([Press("1*2#")], CARD, "1*2", CollectEnd.terminator),  # * only repeats when first
        ([Press("1")], CollectSpec(max_digits=1, terminator=None), "1", CollectEnd.max_digits),
        ([Press("#")], CARD, "", CollectEnd.terminator),
        ([Press("0")], CollectSpec(max_digits=1, repeat_key=None), "0", CollectEnd.max_digits),
    ],
)
async def test_collect(script: list, spec: CollectSpec, digits: str, end: CollectEnd) -> None:
    call = FakeCall(script=script)
    result = await call.collect(spec)
    assert (result.digits, result.end) == (digits, end)


async def test_digits_never_show_in_repr() -> None:
    call = FakeCall(script=[Press("4111111111111111")])
    result = await call.collect(CARD)
    assert "4111" not in repr(result)
    assert "4111" not in repr(Press("4111"))


async def test_barge_in_keeps_the_key_for_the_next_collect() -> None:
    call = FakeCall(script=[Press("1")])
    assert await call.play(["reg.consent", "common.press1"]) is True
    assert call.played == ["reg.consent"]  # the rest of the sequence was cut off
    assert (await call.collect(CollectSpec(max_digits=1))).digits == "1"


async def test_type_ahead_skips_prompts() -> None:
    call = FakeCall(script=[Press("12")])
    await call.play(["a"])
    assert (await call.collect(CollectSpec(max_digits=1))).digits == "1"
    assert await call.play(["b"]) is True  # "2" is already waiting
    assert call.played == ["a"]


async def test_without_barge_in_prompts_play_through() -> None:
    call = FakeCall(script=[Press("1")])
    assert await call.play(["a", "b"], barge_in=False) is False
    assert call.played == ["a", "b"]


async def test_hangup_raises_everywhere() -> None:
    call = FakeCall(script=[HangUp()])
    with pytest.raises(CallHungUp):
        await call.play(["a"])
    assert call.hung_up
    for op in (call.answer(), call.play(["b"]), call.collect(CARD)):
        with pytest.raises(CallHungUp):
            await op


async def test_transfer_needs_a_dialplan_destination() -> None:
    call = FakeCall()
    with pytest.raises(ValueError, match="context,exten"):
        await call.transfer("agents")
    await call.transfer("agents,100")
    assert call.transferred_to == "agents,100"
    assert parse_destination("a,b,3") == ("a", "b", 3)


def test_spec_validation_and_senior_mode() -> None:
    with pytest.raises(ValueError, match="min_digits"):
        CollectSpec(max_digits=2, min_digits=3)
    with pytest.raises(ValueError, match="DTMF key"):
        CollectSpec(max_digits=2, terminator="x")
    senior = CollectSpec(max_digits=6).scaled(2)
    assert (senior.first_timeout_s, senior.inter_timeout_s) == (16.0, 10.0)


async def _timed_collect(keys: str, pauses: dict[int, float], spec: CollectSpec) -> tuple:
    """collect_digits against a caller who waits ``pauses[i]`` seconds before key i;
    returns (digits, end, the waits the algorithm asked for)."""
    from ivr.telephony.call import collect_digits

    asked: list[float] = []
    pending = list(keys)

    async def next_key(wait_s: float) -> str | None:
        asked.append(wait_s)
        if not pending or pauses.get(len(keys) - len(pending), 0.0) > wait_s:
            return None
        return pending.pop(0)

    result = await collect_digits(next_key, spec)
    return result.digits, result.end, asked


BIRTH_SPEC = CollectSpec(max_digits=11, terminator="#", first_timeout_s=8, inter_timeout_s=5,
                         settle_after=6)  # fmt: skip


async def test_six_birth_digits_are_taken_about_1_5_s_after_the_6th_key() -> None:
    """docs/product.md §4.1: no # needed after a 6-digit birth date: 1.5 s of silence after the
    6th key ends it (not the 5 s inter-digit timeout)."""
    digits, end, asked = await _timed_collect("880101", {}, BIRTH_SPEC)
    assert (digits, end) == ("880101", CollectEnd.inter_digit_timeout)
    assert asked == [8, 5, 5, 5, 5, 5, 1.5]


async def test_a_business_number_keyed_on_goes_to_its_hash() -> None:
    digits, end, _ = await _timed_collect("2208162517#", {6: 1.0, 3: 4.0}, BIRTH_SPEC)
    assert (digits, end) == ("2208162517", CollectEnd.terminator)
    digits, end, _ = await _timed_collect("2208162517#", {6: 2.0}, BIRTH_SPEC)
    assert (digits, end) == ("220816", CollectEnd.inter_digit_timeout)  # paused too long


def test_settle_is_scaled_and_checked() -> None:
    assert BIRTH_SPEC.scaled(2).settle_s == 3.0
    assert BIRTH_SPEC.scaled(2).settle_after == 6
    assert BIRTH_SPEC.wait_after(0) == 8
    assert BIRTH_SPEC.wait_after(7) == 5
    with pytest.raises(ValueError, match="settle_after"):
        CollectSpec(max_digits=6, settle_after=6)
