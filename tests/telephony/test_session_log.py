"""Every call gets a session row and a step log of prompt ids and outcomes — no digits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.clock import FakeClock
from ivr.domain.states import CallSessionStatus
from ivr.engine import Engine
from ivr.runtime import build
from ivr.settings import load_settings
from ivr.store.db import Database
from ivr.store.tables import CallSession, CallStep
from ivr.telephony.call import CollectSpec
from ivr.telephony.errors import CallHungUp
from ivr.telephony.fake import FakeCall, HangUp, Press
from ivr.telephony.session_log import CallSessionLog, LoggedCall

pytestmark = pytest.mark.anyio

CANARY = "4012888888881881"


async def card_flow(call: LoggedCall) -> str:
    await call.answer()
    await call.play(["arspay/card.number"])
    result = await call.collect(CollectSpec(max_digits=16, min_digits=14))
    await call.play(["arspay/common.wait"], barge_in=False)
    return "ok" if result.count == 16 else "bad"


async def test_steps_are_logged_without_digits(db: Database, db_url: str, tmp_path: Path) -> None:
    settings = load_settings(env={"ARSPAY_DATABASE_URL": db_url, "ARSPAY_CONFIG": "/none"})
    services = build(settings, clock=FakeClock(), db=db)
    engine = Engine(services, card_flow, ari=False, agi=False)
    writer = asyncio.create_task(engine.session_log.run())
    try:
        await engine.handle(FakeCall(call_id="chan-7", script=[Press(CANARY)]))
        with pytest.raises(CallHungUp):
            await engine.handle(FakeCall(call_id="chan-8", script=[HangUp()]))
        await engine.session_log.flush()
    finally:
        writer.cancel()
    async with db.sessions() as s:
        sessions = {r.channel_id: r for r in await s.scalars(select(CallSession))}
        steps = list(await s.scalars(select(CallStep).order_by(CallStep.session_id, CallStep.seq)))
    done, hung = sessions["chan-7"], sessions["chan-8"]
    assert (done.status, done.outcome, done.did, done.caller_id) == (
        "ended",
        "ok",
        "05050000000",
        "01012345678",
    )
    assert (hung.status, hung.outcome) == ("ended", "caller_hung_up")
    trail = [(x.step, x.prompt_id, x.outcome) for x in steps if x.session_id == done.id]
    assert trail == [
        ("answer", None, "ok"),
        ("play", "arspay/card.number", "interrupted"),
        ("collect", None, "max_digits"),
        ("play", "arspay/common.wait", "done"),
    ]
    if db_url.startswith("sqlite"):
        for f in Path(db_url.split("///", 1)[1]).parent.glob("*.db*"):
            assert CANARY.encode() not in f.read_bytes()


async def test_a_database_outage_does_not_stop_the_writer(
    db: Database, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer runs in the engine's task group: an exception there would end the
    engine. A failing write is retried with backoff and the steps arrive afterwards."""
    settings = load_settings(env={"ARSPAY_DATABASE_URL": db_url, "ARSPAY_CONFIG": "/none"})
    services = build(settings, clock=FakeClock(), db=db)
    engine = Engine(services, card_flow, ari=False, agi=False)
    log = engine.session_log
    monkeypatch.setattr("ivr.telephony.session_log.RETRY_DELAYS_S", (0.01, 0.01, 0.01))
    real = db.transaction
    failures = [1, 2]

    def flaky() -> object:
        if failures:
            failures.pop()
            raise ConnectionResetError("database went away")
        return real()

    monkeypatch.setattr(db, "transaction", flaky)
    writer = asyncio.create_task(log.run())
    try:
        await engine.handle(FakeCall(call_id="chan-9", script=[Press("1234567890123456")]))
        await asyncio.wait_for(log.flush(), 5)
        assert not writer.done()
    finally:
        writer.cancel()
    assert failures == []
    async with db.sessions() as s:
        [session] = list(await s.scalars(select(CallSession)))
        steps = list(await s.scalars(select(CallStep)))
    assert session.outcome == "ok"
    assert len(steps) == 4


class _Chan:
    call_id, did, caller_id = "chan-u", "05050000000", "01012345678"


async def test_updates_of_rows_written_earlier_and_folding(db: Database) -> None:
    """With no batch window every write is its own transaction: a step's outcome and a
    session's transitions update rows an earlier transaction inserted. With a window a
    step and its outcome fold into one insert, and the whole call is one transaction."""
    clock = FakeClock()
    log = CallSessionLog(db, clock, batch_window_s=0)
    writer = asyncio.create_task(log.run())
    try:
        h = log.open(_Chan())
        await log.flush()
        seq = h.step("play", "arspay/card.number")
        await log.flush()
        h.transition(CallSessionStatus.active)
        await log.flush()
        h.outcome(seq, "interrupted")
        h.step("collect")  # no outcome: still running
        await log.flush()
        h.close("ok")
        await log.flush()
        assert log.batches == 5

        folded = CallSessionLog(db, clock, batch_window_s=0.05)
        writer2 = asyncio.create_task(folded.run())
        try:
            g = folded.open(_Chan())
            g.transition(CallSessionStatus.active)
            for n in range(10):
                g.outcome(g.step("play", f"arspay/p{n}"), "done")
            g.close("caller_hung_up")
            await asyncio.sleep(0)  # let the writer take the first op
            await folded.flush()
            assert folded.batches == 1
        finally:
            writer2.cancel()
    finally:
        writer.cancel()
    async with db.sessions() as s:
        rows = {r.id: r for r in await s.scalars(select(CallSession))}
        steps = list(await s.scalars(select(CallStep).order_by(CallStep.session_id, CallStep.seq)))
    assert (rows[h.id].status, rows[h.id].outcome) == ("ended", "ok")
    assert rows[h.id].ended_at is not None
    assert (rows[g.id].status, rows[g.id].outcome) == ("ended", "caller_hung_up")
    mine = [
        (x.step, x.prompt_id, x.outcome, x.ended_at is None) for x in steps if x.session_id == h.id
    ]
    assert mine == [
        ("play", "arspay/card.number", "interrupted", False),
        ("collect", None, None, True),
    ]
    assert [x.outcome for x in steps if x.session_id == g.id] == ["done"] * 10
