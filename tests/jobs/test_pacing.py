"""The polling workers' pace: busy after work, doubling while idle up to a cap, at once
when woken (also by a wake that came during the round), and on stop."""

from __future__ import annotations

import asyncio
import time

import pytest

from ivr.jobs.pacing import Pacer

pytestmark = pytest.mark.anyio


def test_idle_rounds_double_the_wait_up_to_the_cap_and_work_resets_it() -> None:
    p = Pacer(1.0, 5.0)
    assert [p.next_delay(False) for _ in range(4)] == [2.0, 4.0, 5.0, 5.0]
    assert p.next_delay(True) == 1.0
    assert p.next_delay(False) == 2.0
    with pytest.raises(ValueError, match="busy_s"):
        Pacer(2.0, 1.0)
    with pytest.raises(ValueError, match="busy_s"):
        Pacer(0, 1.0)


async def test_wait_sleeps_the_delay() -> None:
    p = Pacer(0.05, 0.05)
    t = time.monotonic()
    await p.wait(False)
    assert 0.04 <= time.monotonic() - t < 1.0


async def test_a_wake_during_the_round_makes_the_next_round_start_at_once() -> None:
    p = Pacer(30.0, 60.0)
    p.wake()  # e.g. the round's own transaction committed new work
    await asyncio.wait_for(p.wait(False), 1.0)
    # the wake is used up: the next wait sleeps again (and is woken from outside)
    waiting = asyncio.create_task(p.wait(False))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    p.wake()
    await asyncio.wait_for(waiting, 1.0)
    assert p.wakes == 2
    assert p.next_delay(False) == 60.0  # woken: back to the busy pace, then doubling


async def test_stop_ends_the_wait() -> None:
    p = Pacer(30.0, 60.0)
    stop = asyncio.Event()
    waiting = asyncio.create_task(p.wait(False, stop))
    await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(waiting, 1.0)
    await asyncio.wait_for(p.wait(False, stop), 1.0)  # already set: no wait at all
