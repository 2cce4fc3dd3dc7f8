"""DigitBuffer: one future per wait, resolved by the key itself (issue #10), without
losing or reordering keys."""

from __future__ import annotations

import asyncio

import pytest

from ivr.telephony.call import DigitBuffer
from ivr.telephony.errors import CallHungUp

pytestmark = pytest.mark.anyio


async def test_keys_come_in_order_whether_waited_for_or_not() -> None:
    buffer = DigitBuffer()
    buffer.put("1")
    buffer.put("x")  # not a DTMF key: ignored
    waiting = asyncio.ensure_future(_two_keys(buffer))
    await asyncio.sleep(0)
    buffer.put("2")
    buffer.put("3")
    assert await waiting == ["1", "2"]
    assert buffer.pending()
    assert await buffer.next_key(0.01) == "3"
    assert await buffer.next_key(0.01) is None  # the timeout


async def _two_keys(buffer: DigitBuffer) -> list[str | None]:
    return [await buffer.next_key(1), await buffer.next_key(1)]


async def test_a_hang_up_ends_a_wait_and_every_later_one() -> None:
    buffer = DigitBuffer()
    waiting = asyncio.ensure_future(buffer.next_key(5))
    await asyncio.sleep(0)
    buffer.hang_up()
    with pytest.raises(CallHungUp):
        await waiting
    with pytest.raises(CallHungUp):
        await buffer.next_key(5)


async def test_a_key_that_resolved_a_cancelled_wait_stays_for_the_next_reader() -> None:
    buffer = DigitBuffer()
    waiting = asyncio.ensure_future(buffer.next_key(5))
    await asyncio.sleep(0)
    buffer.put("7")
    waiting.cancel()  # before the waiter resumed
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await buffer.next_key(0.01) == "7"


async def test_one_reader_at_a_time() -> None:
    buffer = DigitBuffer()
    first = asyncio.ensure_future(buffer.next_key(5))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await buffer.next_key(5)
    buffer.put("4")
    assert await first == "4"
