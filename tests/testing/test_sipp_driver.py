"""The SIPp call driver against a real SIP peer (:mod:`tests.testing.sipp_peer`).

Tests that run sipp are skipped when it is not installed, except with ``CI=true``, where
they fail.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import statistics
import time
from pathlib import Path

import pytest

from ivr.testing.sipp import CallScript, SippCall, run_calls
from tests.testing.sipp_peer import (
    _no_sipp_left,
    _sipp_pids,
    against,
    call,
    capture,
    peer,
    run_one,
    start_one,
    uas_scenario,
)


@pytest.mark.anyio
async def test_info_digits_arrive_in_order(sipp_bin: str, tmp_path: Path) -> None:
    script = CallScript().wait(100).dtmf("1234567890*#", "info").dtmf("11220", "info").hangup()
    async with peer(sipp_bin, tmp_path, uas_scenario("wait_bye")) as p:
        c = call(script, headers={"X-Arspay-Endpoint": "sipp-info"})
        result = await run_one(sipp_bin, p, c, tmp_path)
    assert result.ok, result.errors
    assert p.exit_code == 0
    assert p.info_digits(result.call_id) == "1234567890*#11220"
    [invite] = p.received("INVITE")
    assert invite.header("X-Arspay-Endpoint") == "sipp-info"
    assert invite.header("Call-ID") == result.call_id
    assert "a=rtpmap:96 telephone-event/8000" in invite.body
    assert re.search(r"^m=audio 1\d{4} RTP/AVP 0 8 96$", invite.body, re.M)
    assert "<sip:01012345678@" in invite.header("From")
    infos = p.received("INFO")
    gaps = [b.at - a.at for a, b in itertools.pairwise(infos[:12])]
    print(f"\nINFO: mean {statistics.mean(gaps) * 1000:.1f} ms between digits (gap 100 ms)")
    assert 0.09 < statistics.mean(gaps) < 0.2
    assert p.received("BYE")  # hangup()
    _no_sipp_left(tmp_path)


@pytest.mark.anyio
@pytest.mark.slow
async def test_rfc4733_repeated_digits_survive(sipp_bin: str, tmp_path: Path) -> None:
    script = (
        CallScript().dtmf("11220", "rfc4733").dtmf("1234567890*#", "rfc4733").wait(200).hangup()
    )
    async with (
        peer(sipp_bin, tmp_path, uas_scenario("wait_bye")) as p,
        capture(tmp_path, p.media_port) as cap,
    ):
        started = time.monotonic()
        result = await run_one(sipp_bin, p, call(script), tmp_path)
        elapsed = time.monotonic() - started
    assert result.ok, result.errors
    events = cap.events(p.media_port)
    assert "".join(e.digit for e in events) == "11220" + "1234567890*#"
    first, second = events[:5], events[5:]
    assert len({e.ssrc for e in first}) == 1
    assert len({e.ssrc for e in second}) == 1
    assert first[0].ssrc != second[0].ssrc  # each play_dtmf is a new RTP stream
    assert len({e.timestamp for e in first}) == 5  # one event per digit, repeated ones too
    starts = [e.first_at for e in second]
    per_digit = statistics.mean(b - a for a, b in itertools.pairwise(starts))
    tone = statistics.mean(e.end_at - e.first_at for e in events)
    print(
        f"\nRFC 4733: {per_digit * 1000:.1f} ms per digit, tone {tone * 1000:.1f} ms;"
        f" whole call {elapsed:.2f} s (script minimum {script.min_duration_ms()} ms)"
    )
    assert 0.38 < per_digit < 0.42
    assert 0.18 < tone < 0.22
    assert not p.received("INFO")


@pytest.mark.anyio
async def test_expect_hangup_answers_the_far_end_bye(sipp_bin: str, tmp_path: Path) -> None:
    async with peer(sipp_bin, tmp_path, uas_scenario("hangup", hangup_after_ms=500)) as p:
        result = await run_one(sipp_bin, p, call(CallScript().expect_hangup(5000)), tmp_path)
    assert result.ok, result.errors
    assert p.exit_code == 0  # the peer got its 200 OK to BYE
    assert not p.received("BYE")


@pytest.mark.anyio
async def test_far_end_bye_during_a_pause_fails_the_call(sipp_bin: str, tmp_path: Path) -> None:
    async with peer(sipp_bin, tmp_path, uas_scenario("hangup", hangup_after_ms=300)) as p:
        result = await run_one(sipp_bin, p, call(CallScript().wait(3000).hangup()), tmp_path)
    assert not result.ok
    assert result.exit_code == 1
    assert "BYE" in result.errors


@pytest.mark.anyio
async def test_expect_hangup_times_out(sipp_bin: str, tmp_path: Path) -> None:
    async with peer(sipp_bin, tmp_path, uas_scenario("wait_bye")) as p:
        started = time.monotonic()
        result = await run_one(sipp_bin, p, call(CallScript().expect_hangup(700)), tmp_path)
    assert not result.ok
    assert "timeout" in result.errors.lower()
    assert time.monotonic() - started < 10


@pytest.mark.anyio
async def test_rejected_call(sipp_bin: str, tmp_path: Path) -> None:
    async with peer(sipp_bin, tmp_path, uas_scenario("reject", reject=486)) as p:
        result = await run_one(sipp_bin, p, call(CallScript().hangup()), tmp_path)
    assert not result.ok
    assert "486" in result.errors
    assert p.exit_code == 0  # we ACKed the 486
    async with peer(sipp_bin, tmp_path, uas_scenario("reject", reject=404)) as p:
        result = await run_one(sipp_bin, p, SippCall(did="0505", expect_status=404), tmp_path)
    assert result.ok, result.errors
    assert p.exit_code == 0


@pytest.mark.anyio
async def test_anonymous_caller_reaches_the_peer(sipp_bin: str, tmp_path: Path) -> None:
    async with peer(sipp_bin, tmp_path, uas_scenario("wait_bye")) as p:
        c = SippCall(did="0505550000", caller_id="anonymous", script=CallScript().hangup())
        result = await run_one(sipp_bin, p, c, tmp_path)
    assert result.ok, result.errors
    [invite] = p.received("INVITE")
    assert invite.header("From").startswith('"Anonymous" <sip:anonymous@anonymous.invalid>')


@pytest.mark.anyio
async def test_wait_for_holds_until_released(sipp_bin: str, tmp_path: Path) -> None:
    script = CallScript().wait_for("menu", 10_000).dtmf("7", "info").wait_for("pin", 10_000)
    script = script.dtmf("8", "info").hangup()
    async with (
        peer(sipp_bin, tmp_path, uas_scenario("wait_bye")) as p,
        start_one(sipp_bin, p, call(script), tmp_path) as handle,
    ):
        with pytest.raises(ValueError, match="no wait_for"):
            await handle.release("nope")
        with pytest.raises(ValueError, match="before"):
            await handle.release("pin")
        await handle.answered(timeout_s=10)
        await handle.reached("menu", timeout_s=10)
        reached_at = time.time()
        await asyncio.sleep(0.5)  # held: nothing may be sent meanwhile
        assert not p.received("INFO")
        released_at = time.time()
        await handle.release("menu")
        await handle.release("pin", timeout_s=10)
        with pytest.raises(ValueError, match="already released"):
            await handle.release("menu")
        result = await handle.wait()
    assert result.ok, result.errors
    assert p.info_digits() == "78"
    [ack] = p.received("ACK")
    first_info = p.received("INFO")[0]
    assert first_info.at >= released_at - 0.01
    assert first_info.at - ack.at >= 0.45
    print(f"\nwait_for: release → INFO {(first_info.at - released_at) * 1000:.1f} ms")
    assert reached_at - ack.at < 0.5


@pytest.mark.anyio
async def test_wait_for_not_released_aborts_the_call(sipp_bin: str, tmp_path: Path) -> None:
    script = CallScript().wait_for("never", 600).dtmf("5", "info").hangup()
    async with (
        peer(sipp_bin, tmp_path, uas_scenario("wait_bye")) as p,
        start_one(sipp_bin, p, call(script), tmp_path) as handle,
    ):
        result = await handle.wait()
        with pytest.raises(RuntimeError, match=r"aborted|ended"):
            await handle.release("never")
    assert not result.ok
    assert "wait_for('never') was not released within 600 ms" in result.errors
    assert 0.5 < result.duration_s < 5
    assert not p.received("INFO")
    assert p.received("BYE")  # SIPp hung up properly
    assert p.exit_code == 0


@pytest.mark.anyio
async def test_leaving_the_block_stops_sipp(sipp_bin: str, tmp_path: Path) -> None:
    script = CallScript().wait_for("held", 60_000).hangup()
    async with peer(sipp_bin, tmp_path, uas_scenario("wait_bye")) as p:
        async with start_one(sipp_bin, p, call(script), tmp_path, timeout_s=60) as handle:
            await handle.reached("held", timeout_s=10)
            pid = handle.pid
        result = await handle.wait()
    assert not result.ok
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert p.received("BYE")  # aborted with a BYE, not just killed


@pytest.mark.anyio
async def test_cancelling_run_calls_kills_sipp(sipp_bin: str, tmp_path: Path) -> None:
    before = _sipp_pids()
    async with peer(sipp_bin, tmp_path, uas_scenario("wait_bye"), calls=3) as p:
        task = asyncio.create_task(
            run_calls(
                [call(CallScript().wait(20_000).hangup())] * 3,
                **against(sipp_bin, p, tmp_path, timeout_s=60),
            )
        )
        await asyncio.sleep(1.0)
        assert len(_sipp_pids() - before) >= 3
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 1.5  # aborted over the control link, not killed
        assert len(_sipp_pids() - before) <= 1  # only the peer is left
    assert len(p.received("BYE")) == 3  # every call was hung up properly
    assert p.exit_code == 0


@pytest.mark.anyio
async def test_twenty_parallel_calls(sipp_bin: str, tmp_path: Path) -> None:
    n = 20
    calls = [
        call(
            CallScript().dtmf(f"{i:02d}#", "info").dtmf(f"{i % 10}{i % 10}", "rfc4733").hangup(),
            headers={"X-Test-Call": str(i)},
        )
        for i in range(n)
    ]
    async with peer(sipp_bin, tmp_path, uas_scenario("wait_bye"), calls=n) as p:
        started = time.monotonic()
        results = await run_calls(calls, **against(sipp_bin, p, tmp_path, timeout_s=60))
        elapsed = time.monotonic() - started
    assert [r.ok for r in results] == [True] * n, [r.errors for r in results if not r.ok]
    assert len({r.call_id for r in results}) == n
    for i, r in enumerate(results):
        assert r.call is calls[i]
        [invite] = p.received("INVITE", r.call_id)
        assert invite.header("X-Test-Call") == str(i)
        assert p.info_digits(r.call_id) == f"{i:02d}#"
    print(f"\n{n} parallel calls: {elapsed:.2f} s")
    assert p.exit_code == 0
    _no_sipp_left(tmp_path)
