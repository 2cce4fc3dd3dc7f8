"""Issue #3 acceptance on a real Asterisk 22 driven by SIPp with real DTMF.

Routes: ``stasis`` (ARI) is the default endpoint; ``X-Arspay-Endpoint`` picks the
INFO-DTMF and FastAGI endpoints rendered in asterisk-config/pjsip.conf.
"""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

import pytest

from ivr.telephony.ari_events import HANDLED_EVENTS
from ivr.telephony.call import CollectSpec
from ivr.telephony.session_log import LoggedCall
from ivr.testing.asterisk import Asterisk
from ivr.testing.sipp import CallScript, SippCall, run_calls, start_call

from .conftest import SENT_DIGITS, EngineHarness

pytestmark = pytest.mark.anyio

DID = "05051234567"
CALLER = "01099998888"
ENDPOINTS = {
    ("ari", "rfc4733"): {},
    ("ari", "info"): {"X-Arspay-Endpoint": "sipp-info"},
    ("agi", "rfc4733"): {"X-Arspay-Endpoint": "sipp-agi"},
    ("agi", "info"): {"X-Arspay-Endpoint": "sipp-agi-info"},
}
LONG_PROMPT = "demo-congrats"  # a ~20 s Asterisk core sound
READ_ALL = CollectSpec(
    max_digits=30, terminator=None, repeat_key=None, first_timeout_s=15, inter_timeout_s=2.5
)


async def record_and_hang_up(call: LoggedCall, harness: EngineHarness) -> str:
    await call.answer()
    await harness.results.put(("reached", call.did, call.caller_id))
    await call.play(["beep"], barge_in=False)
    return "ok"


@pytest.mark.parametrize("route", ["ari", "agi"])
async def test_call_to_a_pool_did_reaches_the_app(
    engine: EngineHarness, route: str, tmp_path: Path
) -> None:
    async def flow(call: LoggedCall) -> str:
        return await record_and_hang_up(call, engine)

    engine.engine.flow = flow
    ari = engine.engine.ari_client
    before = (ari.requests_over_ws, ari.requests_over_http)
    call = SippCall(
        did=DID,
        caller_id=CALLER,
        headers=ENDPOINTS[(route, "rfc4733")],
        script=CallScript().expect_hangup(timeout_ms=15_000),
    )
    [result] = await run_calls([call], workdir=tmp_path, timeout_s=30)
    assert result.ok, result.errors
    assert engine.results.get_nowait() == ("reached", DID, CALLER)
    if route == "ari":  # answer, play, hang up: over the event WebSocket (RESTRequest)
        assert ari.requests_over_ws - before[0] >= 3
        assert ari.requests_over_http == before[1]
        # Asterisk sends the app the events it handles and the REST answers only
        app = await ari.request("GET", f"/applications/{ari.app}")
        allowed = [e["type"] for e in app["events_allowed"]]
        assert allowed == [*HANDLED_EVENTS, "RESTResponse"]
    [session] = await engine.wait_sessions_closed(1)
    assert (session.did, session.caller_id, session.outcome) == (DID, CALLER, "ok")


@pytest.mark.parametrize("digits", ["1234567890*#", "11220"])
async def test_digits_arrive_exactly_by_info_and_rfc4733(
    engine: EngineHarness, digits: str, tmp_path: Path
) -> None:
    got: dict[str, str] = {}

    async def flow(call: LoggedCall) -> str:
        await call.answer()
        result = await call.collect(READ_ALL)
        got[call.caller_id] = result.digits  # in memory only, for the assertion
        return "collected"

    engine.engine.flow = flow
    calls = []
    for i, (key, headers) in enumerate(ENDPOINTS.items()):
        script = CallScript().wait(700).dtmf(digits, key[1]).expect_hangup(timeout_ms=20_000)
        calls.append(SippCall(did=DID, caller_id=f"0109999000{i}", headers=headers, script=script))
        SENT_DIGITS.append(digits)
    results = await run_calls(calls, workdir=tmp_path, timeout_s=60)
    assert all(r.ok for r in results), [r.errors for r in results if not r.ok]
    assert got == {c.caller_id: digits for c in calls}, "digits lost or reordered"


@pytest.mark.parametrize("route", ["ari", "agi"])
async def test_hangup_during_a_prompt_closes_the_session(
    engine: EngineHarness, route: str, tmp_path: Path
) -> None:
    async def flow(call: LoggedCall) -> str:
        await call.answer()
        await call.play([LONG_PROMPT], barge_in=False)
        return "prompt_finished"  # must not happen: the caller hangs up first

    engine.engine.flow = flow
    script = CallScript().wait_for("playing", timeout_ms=15_000).wait(300).hangup()
    call = SippCall(did=DID, caller_id=CALLER, headers=ENDPOINTS[(route, "rfc4733")], script=script)
    async with start_call(call, workdir=tmp_path, timeout_s=40) as handle:
        await engine.wait_for_prompt(LONG_PROMPT)  # the named prompt is playing now
        await handle.release("playing")
        result = await handle.wait()
    assert result.ok, result.errors
    [session] = await engine.wait_sessions_closed(1)
    assert session.outcome == "caller_hung_up"
    steps = await engine.steps(session.id)
    assert [(s.step, s.prompt_id, s.outcome) for s in steps][-1] == (
        "play",
        LONG_PROMPT,
        "hangup",
    )


@pytest.mark.parametrize("route", ["ari", "agi"])
async def test_hangup_during_digit_collection_closes_the_session(
    engine: EngineHarness, route: str, tmp_path: Path
) -> None:
    async def flow(call: LoggedCall) -> str:
        await call.answer()
        await call.play(["beep"])
        await call.collect(CollectSpec(max_digits=16, first_timeout_s=30))
        return "collected"  # must not happen

    engine.engine.flow = flow
    script = CallScript().wait(2000).dtmf("12", "info").wait(300).hangup()
    headers = ENDPOINTS[(route, "info")]
    SENT_DIGITS.append("12")
    [result] = await run_calls(
        [SippCall(did=DID, caller_id=CALLER, headers=headers, script=script)],
        workdir=tmp_path,
        timeout_s=40,
    )
    assert result.ok, result.errors
    [session] = await engine.wait_sessions_closed(1)
    assert session.outcome == "caller_hung_up"
    steps = await engine.steps(session.id)
    assert (steps[-1].step, steps[-1].outcome) == ("collect", "hangup")


async def test_engine_reconnects_after_asterisk_restart(
    engine: EngineHarness, asterisk: Asterisk, tmp_path: Path
) -> None:
    async def flow(call: LoggedCall) -> str:
        return await record_and_hang_up(call, engine)

    engine.engine.flow = flow
    app = engine.engine.ari_app
    assert app is not None
    before = engine.engine.ari_client.connects
    await asyncio.to_thread(asterisk.restart)
    restarted = time.monotonic()
    while engine.engine.ari_client.connects == before:
        assert time.monotonic() - restarted < 10, "engine did not reconnect"
        await asyncio.sleep(0.05)
    reconnect_s = time.monotonic() - restarted
    print(f"\nengine reconnected {reconnect_s:.2f} s after Asterisk came back")
    call = SippCall(did=DID, caller_id=CALLER, script=CallScript().expect_hangup(timeout_ms=15_000))
    [result] = await run_calls([call], workdir=tmp_path, timeout_s=30)
    assert result.ok, result.errors
    assert engine.results.get_nowait() == ("reached", DID, CALLER)


async def test_twenty_concurrent_calls_all_succeed(engine: EngineHarness, tmp_path: Path) -> None:
    async def flow(call: LoggedCall) -> str:
        await call.answer()
        await call.play(["beep"])
        result = await call.collect(CollectSpec(max_digits=4, first_timeout_s=15))
        await harness_put(engine, call.caller_id, result.digits)
        await call.play(["beep"], barge_in=False)
        return "ok"

    engine.engine.flow = flow
    calls = []
    for i in range(20):
        method = "info" if i % 2 else "rfc4733"
        route = "agi" if i % 4 >= 2 else "ari"
        script = CallScript().wait(1500).dtmf(f"{i:04d}", method).expect_hangup(timeout_ms=30_000)
        calls.append(
            SippCall(
                did=DID,
                caller_id=f"010777700{i:02d}",
                headers=ENDPOINTS[(route, method)],
                script=script,
            )
        )
        SENT_DIGITS.append(f"{i:04d}")
    results = await run_calls(calls, workdir=tmp_path, timeout_s=90)
    assert [r.ok for r in results] == [True] * 20, [r.errors for r in results if not r.ok]
    got = {}
    while not engine.results.empty():
        caller, digits = engine.results.get_nowait()  # type: ignore[misc]
        got[caller] = digits
    assert got == {f"010777700{i:02d}": f"{i:04d}" for i in range(20)}
    sessions = await engine.wait_sessions_closed(20)
    assert [s.outcome for s in sessions] == ["ok"] * 20


async def harness_put(engine: EngineHarness, caller: str, digits: str) -> None:
    await engine.results.put((caller, digits))


def wav_seconds(asterisk: Asterisk, name: str) -> float:
    """Length of an Asterisk core sound (English WAV) in seconds."""
    prefix = asterisk.sounds_dir.parents[4]  # <prefix>/var/lib/asterisk/sounds/arspay
    [path, *_] = sorted((prefix / "usr/share/asterisk/sounds").glob(f"en*/{name}.wav"))
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


@pytest.mark.parametrize("route", ["ari", "agi"])
async def test_a_prompt_of_several_files_plays_every_file(
    asterisk: Asterisk, engine: EngineHarness, route: str, tmp_path: Path
) -> None:
    """A prompt is a list of sound files (segments). Each must be heard: the play step
    lasts at least as long as the files together (ARI once played only the last one)."""
    files = ["beep", "beep", "demo-thanks", "beep"]

    async def flow(call: LoggedCall) -> str:
        await call.answer()
        await call.play(files, barge_in=False)
        return "ok"

    engine.engine.flow = flow
    call = SippCall(did=DID, caller_id=CALLER, headers=ENDPOINTS[(route, "rfc4733")],
                    script=CallScript().expect_hangup(timeout_ms=30_000))  # fmt: skip
    [result] = await run_calls([call], workdir=tmp_path, timeout_s=45)
    assert result.ok, result.errors
    [session] = await engine.wait_sessions_closed(1)
    [play] = [s for s in await engine.steps(session.id) if s.step == "play"]
    assert play.outcome == "done"
    assert play.ended_at is not None
    played = (play.ended_at - play.started_at).total_seconds()
    expected = sum(wav_seconds(asterisk, name) for name in files)
    assert played >= expected - 0.3, (played, expected)
