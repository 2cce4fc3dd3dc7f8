"""The call-session log: one ``call_sessions`` row per call and one ``call_steps`` row
per prompt played or input read — prompt ids and outcome words, never digits.

Writes go through one writer task and a queue, in order, batched per transaction, so
logging never sits between a caller's key press and the next prompt.
:class:`LoggedCall` wraps any :class:`~ivr.telephony.call.Call` and logs as it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import Clock
from ivr.domain.ids import new_id
from ivr.domain.states import CALL_SESSION, CallSessionStatus
from ivr.store.db import Database
from ivr.store.tables import CallSession, CallStep
from ivr.telephony.call import Call, CollectResult, CollectSpec
from ivr.telephony.errors import CallHungUp

log = logging.getLogger(__name__)
T = TypeVar("T")
Write = Callable[[AsyncSession], Awaitable[None]]


async def calls_of_in(
    s: AsyncSession, call_request_id: str
) -> list[tuple[CallSession, list[CallStep]]]:
    """Each call made for a request, oldest first, with its steps in order (the API's
    and the console's timeline)."""
    sessions = list(
        await s.scalars(
            select(CallSession)
            .where(CallSession.call_request_id == call_request_id)
            .order_by(CallSession.started_at, CallSession.id)
        )
    )
    steps = await s.scalars(
        select(CallStep)
        .where(CallStep.session_id.in_([x.id for x in sessions]))
        .order_by(CallStep.session_id, CallStep.seq)
    )
    by_session: dict[str, list[CallStep]] = {}
    for st in steps:
        by_session.setdefault(st.session_id, []).append(st)
    return [(x, by_session.get(x.id, [])) for x in sessions]


RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


class CallSessionLog:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._queue: asyncio.Queue[Write | None] = asyncio.Queue()
        self._idle = asyncio.Event()
        self._idle.set()

    async def run(self) -> None:
        """The writer: runs until cancelled, then drains what is queued."""
        try:
            while True:
                first = await self._queue.get()
                await self._write_batch(first)
        finally:
            with contextlib.suppress(Exception):
                while not self._queue.empty():  # shutting down: one try each
                    await self._write_batch(self._queue.get_nowait(), delays=())

    async def _write_batch(
        self, first: Write | None, *, delays: tuple[float, ...] | None = None
    ) -> None:
        batch = [first]
        while not self._queue.empty() and len(batch) < 200:
            batch.append(self._queue.get_nowait())
        writes = [w for w in batch if w is not None]
        if writes:
            await self._write_with_retries(writes, RETRY_DELAYS_S if delays is None else delays)
        if self._queue.empty():
            self._idle.set()

    async def _write_with_retries(self, writes: list[Write], delays: tuple[float, ...]) -> None:
        """A database outage must not stop the engine (this task is in its task group):
        the batch is retried with backoff for about half a minute, then dropped with an
        error — the step log is a record of calls, not of money."""
        for delay in (*delays, None):
            try:
                async with self.db.transaction() as s:
                    for write in writes:
                        await write(s)
                return
            except Exception as exc:
                if delay is None:
                    log.error("call-session log: dropped %d writes (%s)", len(writes),
                              type(exc).__name__)  # fmt: skip
                    return
                log.warning("call-session log: write failed (%s); retrying in %.1f s",
                            type(exc).__name__, delay)  # fmt: skip
                await asyncio.sleep(delay)

    def _put(self, write: Write) -> None:
        self._idle.clear()
        self._queue.put_nowait(write)

    async def flush(self) -> None:
        """Wait until everything queued so far is written."""
        await self._idle.wait()

    def open(self, call: Call) -> SessionHandle:
        handle = SessionHandle(self, new_id("cses"))
        row = CallSession(
            id=handle.id,
            channel_id=call.call_id[:100],
            did=call.did[:32],
            caller_id=call.caller_id[:32],
            status=CallSessionStatus.ringing.value,
            started_at=self.clock.now(),
        )

        async def insert(s: AsyncSession) -> None:
            s.add(row)

        self._put(insert)
        return handle


@dataclass
class SessionHandle:
    log: CallSessionLog
    id: str
    status: CallSessionStatus = CallSessionStatus.ringing
    _seq: int = 0

    def transition(self, target: CallSessionStatus, outcome: str | None = None) -> None:
        CALL_SESSION.check(self.status, target)
        self.status = target
        now = self.log.clock.now()
        values: dict[str, object] = {"status": target.value}
        if CALL_SESSION.is_terminal(target):
            values |= {"ended_at": now, "outcome": outcome}
        sid = self.id

        async def write(s: AsyncSession) -> None:
            await s.execute(update(CallSession).where(CallSession.id == sid).values(**values))

        self.log._put(write)

    def link_request(self, call_request_id: str) -> None:
        sid = self.id

        async def write(s: AsyncSession) -> None:
            await s.execute(
                update(CallSession)
                .where(CallSession.id == sid)
                .values(call_request_id=call_request_id)
            )

        self.log._put(write)

    def step(self, step: str, prompt_id: str | None = None) -> int:
        self._seq += 1
        row = CallStep(
            session_id=self.id,
            seq=self._seq,
            step=step[:40],
            prompt_id=prompt_id[:60] if prompt_id else None,
            started_at=self.log.clock.now(),
        )

        async def insert(s: AsyncSession) -> None:
            s.add(row)

        self.log._put(insert)
        return self._seq

    def outcome(self, seq: int, outcome: str) -> None:
        sid, ended = self.id, self.log.clock.now()

        async def write(s: AsyncSession) -> None:
            await s.execute(
                update(CallStep)
                .where(CallStep.session_id == sid, CallStep.seq == seq)
                .values(outcome=outcome[:24], ended_at=ended)
            )

        self.log._put(write)

    def close(self, outcome: str) -> None:
        if not CALL_SESSION.is_terminal(self.status):
            self.transition(CallSessionStatus.ended, outcome)


class LoggedCall:
    """A :class:`Call` that writes its steps to the session log."""

    def __init__(self, call: Call, handle: SessionHandle) -> None:
        self.inner = call
        self.session = handle

    @property
    def call_id(self) -> str:
        return self.inner.call_id

    @property
    def did(self) -> str:
        return self.inner.did

    @property
    def caller_id(self) -> str:
        return self.inner.caller_id

    @property
    def hung_up(self) -> bool:
        return self.inner.hung_up

    async def _logged(self, seq: int, op: Awaitable[T], ok: Callable[[T], str]) -> T:
        try:
            result = await op
        except CallHungUp:
            self.session.outcome(seq, "hangup")
            raise
        self.session.outcome(seq, ok(result))
        return result

    async def answer(self) -> None:
        seq = self.session.step("answer")
        await self._logged(seq, self.inner.answer(), lambda _: "ok")
        if self.session.status is CallSessionStatus.ringing:
            self.session.transition(CallSessionStatus.active)

    async def play(
        self, prompts: Sequence[str], *, barge_in: bool = True, label: str | None = None
    ) -> bool:
        """``label``: the prompt id to log (default: the first sound name)."""
        seq = self.session.step("play", label or (prompts[0] if prompts else None))
        op = self.inner.play(prompts, barge_in=barge_in)
        return await self._logged(seq, op, lambda cut: "interrupted" if cut else "done")

    async def collect(self, spec: CollectSpec) -> CollectResult:
        seq = self.session.step("collect")
        result: CollectResult = await self._logged(
            seq, self.inner.collect(spec), lambda r: r.end.value
        )
        return result

    async def transfer(self, destination: str) -> None:
        seq = self.session.step("transfer")
        await self._logged(seq, self.inner.transfer(destination), lambda _: "ok")

    async def hangup(self) -> None:
        await self.inner.hangup()

    async def wait_hangup(self, timeout_s: float | None = None) -> bool:
        return await self.inner.wait_hangup(timeout_s)
