"""The call-session log: one ``call_sessions`` row per call and one ``call_steps`` row
per prompt played or input read — prompt ids and outcome words, never digits.

Writes go through one writer task and a queue, so logging never sits between a caller's
key press and the next prompt. The writer gathers for ``BATCH_WINDOW_S`` after a first
write and folds what came into a few statements in one transaction (a step's insert and
its outcome become one row insert): per call it costs a handful of transactions, not two
statements per prompt (the engine's CPU per call, issue #10).
:class:`LoggedCall` wraps any :class:`~ivr.telephony.call.Call` and logs as it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Table, Update, and_, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import Clock
from ivr.domain.ids import new_id
from ivr.domain.states import CALL_SESSION, CallSessionStatus
from ivr.observability.calls import CallMeter
from ivr.store.db import Database
from ivr.store.tables import CallSession, CallStep
from ivr.telephony.call import Call, CollectResult, CollectSpec
from ivr.telephony.errors import CallHungUp

log = logging.getLogger(__name__)
T = TypeVar("T")


RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
BATCH_WINDOW_S = 0.1  # the writer gathers this long after a first write arrives
MAX_BATCH = 500


@dataclass(frozen=True, slots=True)
class _Op:
    """One queued write: insert a row, or set columns of a row (inserted earlier in this
    batch or in an earlier one). ``key``: the session id, or (session id, seq) of a step."""

    table: Table
    key: str | tuple[str, int]
    values: dict[str, Any]
    insert: bool


_SESSIONS: Table = CallSession.__table__  # type: ignore[assignment]
_STEPS: Table = CallStep.__table__  # type: ignore[assignment]
_SESSION_DEFAULTS = {"call_request_id": None, "outcome": None, "ended_at": None}
_STEP_DEFAULTS = {"prompt_id": None, "outcome": None, "ended_at": None}


@dataclass
class _Batch:
    """Queued writes folded into as few statements as possible: a row inserted and then
    updated in the same batch is inserted with its final values; the updates of one row
    are merged into one; rows are inserted with one multi-row statement per table and
    updated with one executemany per table and column set."""

    inserts: dict[Table, dict[object, dict[str, Any]]] = field(default_factory=dict)
    updates: dict[Table, dict[object, dict[str, Any]]] = field(default_factory=dict)
    size: int = 0

    def add(self, op: _Op) -> None:
        self.size += 1
        fresh = self.inserts.setdefault(op.table, {})
        if op.insert:
            fresh[op.key] = dict(op.values)
        elif op.key in fresh:
            fresh[op.key].update(op.values)
        else:
            self.updates.setdefault(op.table, {}).setdefault(op.key, {}).update(op.values)

    async def write(self, s: AsyncSession) -> None:
        for table in (_SESSIONS, _STEPS):  # sessions first: steps refer to them
            rows = list(self.inserts.get(table, {}).values())
            if rows:
                await s.execute(insert(table), rows)
        for table, by_key in self.updates.items():
            groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for key, values in by_key.items():
                cols = tuple(sorted(values))
                where = _where_params(key)
                groups.setdefault(cols, []).append(values | where)
            for cols, rows in groups.items():
                await s.execute(_update(table, cols), rows)


def _where_params(key: object) -> dict[str, Any]:
    if isinstance(key, tuple):
        return {"k_sid": key[0], "k_seq": key[1]}
    return {"k_id": key}


def _update(table: Table, cols: tuple[str, ...]) -> Update:
    if table is _SESSIONS:
        where = table.c.id == bindparam("k_id")
    else:
        where = and_(table.c.session_id == bindparam("k_sid"), table.c.seq == bindparam("k_seq"))
    return update(table).where(where).values({c: bindparam(c) for c in cols})


class CallSessionLog:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        node: str | None = None,
        batch_window_s: float = BATCH_WINDOW_S,
    ) -> None:
        """``node``: the engine's ``engine.node_id``, written on every session row."""
        self.db = db
        self.clock = clock
        self.node = node
        self.batch_window_s = batch_window_s
        self._queue: asyncio.Queue[_Op] = asyncio.Queue()
        self._idle = asyncio.Event()
        self._idle.set()
        self.batches = 0  # transactions written (tests, benchmarks)

    async def run(self) -> None:
        """The writer: runs until cancelled, then drains what is queued."""
        try:
            while True:
                first = await self._queue.get()
                if self.batch_window_s > 0:
                    await asyncio.sleep(self.batch_window_s)
                await self._write_batch(first)
        finally:
            with contextlib.suppress(Exception):
                while not self._queue.empty():  # shutting down: one try each
                    await self._write_batch(self._queue.get_nowait(), delays=())

    async def _write_batch(self, first: _Op, *, delays: tuple[float, ...] | None = None) -> None:
        batch = _Batch()
        batch.add(first)
        while not self._queue.empty() and batch.size < MAX_BATCH:
            batch.add(self._queue.get_nowait())
        await self._write_with_retries(batch, RETRY_DELAYS_S if delays is None else delays)
        if self._queue.empty():
            self._idle.set()

    async def _write_with_retries(self, batch: _Batch, delays: tuple[float, ...]) -> None:
        """A database outage must not stop the engine (this task is in its task group):
        the batch is retried with backoff for about half a minute, then dropped with an
        error — the step log is a record of calls, not of money."""
        for delay in (*delays, None):
            try:
                async with self.db.transaction() as s:
                    await batch.write(s)
                self.batches += 1
                return
            except Exception as exc:
                if delay is None:
                    log.error("call-session log: dropped %d writes (%s)", batch.size,
                              type(exc).__name__)  # fmt: skip
                    return
                log.warning("call-session log: write failed (%s); retrying in %.1f s",
                            type(exc).__name__, delay)  # fmt: skip
                await asyncio.sleep(delay)

    def _put(self, op: _Op) -> None:
        self._idle.clear()
        self._queue.put_nowait(op)

    async def flush(self) -> None:
        """Wait until everything queued so far is written."""
        await self._idle.wait()

    def open(self, call: Call) -> SessionHandle:
        handle = SessionHandle(self, new_id("cses"))
        row = _SESSION_DEFAULTS | {
            "id": handle.id,
            "channel_id": call.call_id[:100],
            "node": self.node,
            "did": call.did[:32],
            "caller_id": call.caller_id[:32],
            "status": CallSessionStatus.ringing.value,
            "started_at": self.clock.now(),
        }
        self._put(_Op(_SESSIONS, handle.id, row, insert=True))
        return handle


@dataclass
class SessionHandle:
    log: CallSessionLog
    id: str
    status: CallSessionStatus = CallSessionStatus.ringing
    _seq: int = 0

    def _set(self, values: dict[str, Any]) -> None:
        self.log._put(_Op(_SESSIONS, self.id, values, insert=False))

    def transition(self, target: CallSessionStatus, outcome: str | None = None) -> None:
        CALL_SESSION.check(self.status, target)
        self.status = target
        values: dict[str, Any] = {"status": target.value}
        if CALL_SESSION.is_terminal(target):
            values |= {"ended_at": self.log.clock.now(), "outcome": outcome}
        self._set(values)

    def link_request(self, call_request_id: str) -> None:
        self._set({"call_request_id": call_request_id})

    def step(self, step: str, prompt_id: str | None = None) -> int:
        self._seq += 1
        row = _STEP_DEFAULTS | {
            "session_id": self.id,
            "seq": self._seq,
            "step": step[:40],
            "prompt_id": prompt_id[:60] if prompt_id else None,
            "started_at": self.log.clock.now(),
        }
        self.log._put(_Op(_STEPS, (self.id, self._seq), row, insert=True))
        return self._seq

    def outcome(self, seq: int, outcome: str) -> None:
        values = {"outcome": outcome[:24], "ended_at": self.log.clock.now()}
        self.log._put(_Op(_STEPS, (self.id, seq), values, insert=False))

    def close(self, outcome: str) -> None:
        if not CALL_SESSION.is_terminal(self.status):
            self.transition(CallSessionStatus.ended, outcome)


class LoggedCall:
    """A :class:`Call` that writes its steps to the session log (and, with ``meter``,
    marks each input read and prompt requested: the turnaround metric)."""

    def __init__(self, call: Call, handle: SessionHandle, meter: CallMeter | None = None) -> None:
        self.inner = call
        self.session = handle
        self.meter = meter
        self.call_id, self.did, self.caller_id = call.call_id, call.did, call.caller_id

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
        if self.meter is not None:
            self.meter.prompt_requested()
        seq = self.session.step("play", label or (prompts[0] if prompts else None))
        op = self.inner.play(prompts, barge_in=barge_in)
        return await self._logged(seq, op, lambda cut: "interrupted" if cut else "done")

    async def collect(self, spec: CollectSpec) -> CollectResult:
        seq = self.session.step("collect")
        result: CollectResult = await self._logged(
            seq, self.inner.collect(spec), lambda r: r.end.value
        )
        if self.meter is not None:
            self.meter.input_read()
        return result

    async def transfer(self, destination: str) -> None:
        seq = self.session.step("transfer")
        await self._logged(seq, self.inner.transfer(destination), lambda _: "ok")

    async def hangup(self) -> None:
        await self.inner.hangup()

    async def wait_hangup(self, timeout_s: float | None = None) -> bool:
        return await self.inner.wait_hangup(timeout_s)
