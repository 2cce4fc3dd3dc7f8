"""The ``Call`` interface: what a flow can do with a phone call.

Flows (registration, payment) are written once against :class:`Call`; the ARI and
FastAGI implementations and the in-process :class:`~ivr.telephony.fake.FakeCall` all
provide it. Semantics every implementation shares:

- Keys pressed at any time (during a prompt too) go to a per-call buffer in order.
- ``play(prompts)`` plays the prompts in sequence; with ``barge_in`` a key press stops
  the playback (the key stays in the buffer for the next ``collect``), and if keys are
  already buffered the prompts are skipped (type-ahead).
- ``collect(spec)`` reads keys: the first-digit timeout runs until a key arrives, the
  inter-digit timeout after each key; it ends at ``max_digits``, at the terminator (not
  included) or on a timeout. A first key equal to ``spec.repeat_key`` returns
  ``CollectEnd.repeat`` at once ("*" repeats the prompt, docs/product.md §4). With
  ``settle_after`` the wait after exactly that many keys is the short ``settle_s``: a
  6-digit birth date is taken about 1.5 s after its 6th key, while a 10-digit business
  number keyed on goes on to its ``#`` (docs/product.md §4.1).
- Once the caller hangs up every operation raises :class:`CallHungUp`.

Digits are sensitive (card numbers): :class:`CollectResult` keeps them out of ``repr``
and nothing in this package logs them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from ivr.telephony.errors import CallHungUp

DTMF_KEYS = frozenset("0123456789*#ABCD")


class CollectEnd(StrEnum):
    max_digits = "max_digits"  # got max_digits keys
    terminator = "terminator"  # the terminator key ended it
    timeout = "timeout"  # nothing pressed before the first-digit timeout
    inter_digit_timeout = "inter_digit_timeout"  # some keys, then silence
    repeat = "repeat"  # the repeat key was pressed first


@dataclass(frozen=True, slots=True)
class CollectSpec:
    max_digits: int
    min_digits: int = 1
    terminator: str | None = "#"
    first_timeout_s: float = 8.0
    inter_timeout_s: float = 5.0
    repeat_key: str | None = "*"
    settle_after: int | None = None  # after exactly this many keys, wait only settle_s
    settle_s: float = 1.5

    def __post_init__(self) -> None:
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError("need 1 <= min_digits <= max_digits")
        if self.first_timeout_s <= 0 or self.inter_timeout_s <= 0 or self.settle_s <= 0:
            raise ValueError("timeouts must be positive")
        if self.settle_after is not None and not 1 <= self.settle_after < self.max_digits:
            raise ValueError("need 1 <= settle_after < max_digits")
        for key in (self.terminator, self.repeat_key):
            if key is not None and key not in DTMF_KEYS:
                raise ValueError(f"{key!r} is not a DTMF key")

    def scaled(self, factor: float) -> CollectSpec:
        """The same spec with both timeouts multiplied (senior mode doubles them)."""
        return CollectSpec(
            self.max_digits,
            self.min_digits,
            self.terminator,
            self.first_timeout_s * factor,
            self.inter_timeout_s * factor,
            self.repeat_key,
            self.settle_after,
            self.settle_s * factor,
        )

    def wait_after(self, keys: int) -> float:
        """How long to wait for the next key once ``keys`` keys are in."""
        if not keys:
            return self.first_timeout_s
        if keys == self.settle_after:
            return min(self.settle_s, self.inter_timeout_s)
        return self.inter_timeout_s


@dataclass(frozen=True, slots=True)
class CollectResult:
    digits: str = field(repr=False)  # never in repr: may be a card number
    end: CollectEnd

    @property
    def count(self) -> int:
        return len(self.digits)


class Call(Protocol):
    """One phone call, as seen by a flow."""

    @property
    def call_id(self) -> str:
        """Unique id of the call (ARI channel id / AGI unique id)."""
        ...

    @property
    def did(self) -> str:
        """The dialled number (the DID), as Asterisk gives it."""
        ...

    @property
    def caller_id(self) -> str:
        """The caller-ID number as Asterisk gives it (may be empty or 'anonymous')."""
        ...

    @property
    def hung_up(self) -> bool: ...

    async def answer(self) -> None: ...

    async def play(self, prompts: Sequence[str], *, barge_in: bool = True) -> bool:
        """Play sound names in order. Return True if a key press interrupted them
        (or they were skipped because keys were already buffered)."""
        ...

    async def collect(self, spec: CollectSpec) -> CollectResult: ...

    async def transfer(self, destination: str) -> None:
        """Hand the call to a dialplan destination ``context,exten,priority``."""
        ...

    async def hangup(self) -> None: ...

    async def wait_hangup(self, timeout_s: float | None = None) -> bool:
        """Wait until the call ends; True if it did within the timeout."""
        ...


CallHandler = Callable[[Call], Awaitable[None]]
"""What the ARI app and the FastAGI server run for each call."""


# ---------------------------------------------------------------- shared machinery


class DigitBuffer:
    """Keys pressed on one call, in order, with hang-up as a terminal signal.

    A key that arrives while :meth:`next_key` waits resolves that wait's one future
    directly, so the flow resumes on the event loop's next turn: the path from a key
    to the next prompt is the turnaround the payer hears (issue #10)."""

    def __init__(self) -> None:
        self._keys: deque[str] = deque()
        self._waiter: asyncio.Future[str | None] | None = None
        self._hangup = asyncio.Event()
        self.arrived = asyncio.Event()  # set on every key; cleared by who waits on it

    def put(self, key: str) -> None:
        if key in DTMF_KEYS:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(key)
            else:
                self._keys.append(key)
            self.arrived.set()

    def hang_up(self) -> None:
        self._hangup.set()
        self.arrived.set()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(CallHungUp())

    @property
    def hung_up(self) -> bool:
        return self._hangup.is_set()

    def pending(self) -> bool:
        return bool(self._keys)

    def clear(self) -> None:
        self._keys.clear()

    async def wait_hangup(self, timeout_s: float | None) -> bool:
        try:
            await asyncio.wait_for(self._hangup.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def next_key(self, timeout_s: float) -> str | None:
        """The next key, or None after ``timeout_s``; raises CallHungUp."""
        if self._keys:
            return self._keys.popleft()
        if self.hung_up:
            raise CallHungUp
        if self._waiter is not None:
            raise RuntimeError("next_key is already being waited for")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[str | None] = loop.create_future()
        timer = loop.call_later(timeout_s, _resolve, waiter, None)
        self._waiter = waiter
        try:
            return await waiter
        except asyncio.CancelledError:
            # cancelled after a key resolved the wait: the key stays for the next reader
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                key = waiter.result()
                if key is not None:
                    self._keys.appendleft(key)
            raise
        finally:
            timer.cancel()
            self._waiter = None


class BufferedCall:
    """What the :class:`Call` implementations share: who called which number on which
    call, and the call's keys and hang-up in a :class:`DigitBuffer`."""

    def __init__(self, call_id: str, did: str, caller_id: str) -> None:
        self.call_id = call_id
        self.did = did
        self.caller_id = caller_id
        self.buffer = DigitBuffer()

    @property
    def hung_up(self) -> bool:
        return self.buffer.hung_up

    def _check(self) -> None:
        """Raise :class:`CallHungUp` once the caller has hung up."""
        if self.buffer.hung_up:
            raise CallHungUp

    async def collect(self, spec: CollectSpec) -> CollectResult:
        self._check()
        return await collect_digits(self._next_key, spec)

    async def _next_key(self, timeout_s: float) -> str | None:
        return await self.buffer.next_key(timeout_s)


def _resolve(waiter: asyncio.Future[str | None], value: str | None) -> None:
    if not waiter.done():
        waiter.set_result(value)


async def collect_digits(
    next_key: Callable[[float], Awaitable[str | None]], spec: CollectSpec
) -> CollectResult:
    """The collect algorithm shared by every :class:`Call` implementation."""
    digits: list[str] = []
    while True:
        key = await next_key(spec.wait_after(len(digits)))
        if key is None:
            end = CollectEnd.inter_digit_timeout if digits else CollectEnd.timeout
            return CollectResult("".join(digits), end)
        if not digits and spec.repeat_key is not None and key == spec.repeat_key:
            return CollectResult("", CollectEnd.repeat)
        if spec.terminator is not None and key == spec.terminator:
            return CollectResult("".join(digits), CollectEnd.terminator)
        digits.append(key)
        if len(digits) >= spec.max_digits:
            return CollectResult("".join(digits), CollectEnd.max_digits)


def parse_destination(destination: str) -> tuple[str, str, int]:
    """``context,exten[,priority]`` -> parts; the agent destination setting uses it."""
    parts = [p.strip() for p in destination.split(",")]
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise ValueError("destination must be 'context,exten[,priority]'")
    priority = int(parts[2]) if len(parts) == 3 and parts[2] else 1
    return parts[0], parts[1], priority
