"""An in-process :class:`~ivr.telephony.call.Call` for fast flow tests.

The caller is a script of actions consumed in order whenever the flow waits for the
caller — during a prompt (with barge-in) or in ``collect``:

    FakeCall(did="05050000000", caller_id="01012345678",
             script=[Press("1"), Press("4111111111111111#"), Silence(), HangUp()])

``Press(keys)`` types keys (they land in the buffer, interrupting a barge-in prompt);
``Silence()`` makes the next wait time out; ``HangUp()`` ends the call; ``Listen()``
lets one prompt play to its end. When the script
runs out the caller is silent (timeouts), so a flow that keeps asking ends by its own
retry limit. Everything played is recorded in ``played`` (sound names, in order).
Time does not pass: timeouts are immediate, so a whole call runs in milliseconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ivr.telephony.call import (
    DTMF_KEYS,
    BufferedCall,
    CollectResult,
    CollectSpec,
    parse_destination,
)
from ivr.telephony.errors import CallHungUp


@dataclass(frozen=True, slots=True)
class Press:
    keys: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys or any(k not in DTMF_KEYS for k in self.keys):
            raise ValueError("Press needs DTMF keys")


@dataclass(frozen=True, slots=True)
class Silence:
    pass


@dataclass(frozen=True, slots=True)
class HangUp:
    pass


@dataclass(frozen=True, slots=True)
class Listen:
    """The caller hears one whole prompt out before the next action (without it, a
    ``Press`` next in the script interrupts the first prompt that allows barge-in)."""


Action = Press | Silence | HangUp | Listen


class FakeCall(BufferedCall):
    def __init__(
        self,
        *,
        did: str = "05050000000",
        caller_id: str = "01012345678",
        script: Iterable[Action] = (),
        call_id: str = "fake-1",
    ) -> None:
        super().__init__(call_id, did, caller_id)
        self.script: deque[Action] = deque(script)
        self.answered = False
        self.played: list[str] = []
        self.transferred_to: str | None = None
        self.collects = 0
        self.specs: list[CollectSpec] = []  # every collect's spec, in order
        # per collect (as ``specs``), how long each wait for a key would last on a real
        # line, in order: the timing rules, checked without time passing
        self.waits: list[list[float]] = []

    def _caller_acts(self) -> bool:
        """Run the caller's next action; True if it typed keys."""
        if not self.script:
            return False
        action = self.script.popleft()
        if isinstance(action, HangUp):
            self.buffer.hang_up()
            raise CallHungUp
        if isinstance(action, Press):
            for key in action.keys:
                self.buffer.put(key)
            return True
        return False  # Silence (or a Listen outside a prompt)

    async def answer(self) -> None:
        self._check()
        self.answered = True

    async def play(self, prompts: Sequence[str], *, barge_in: bool = True) -> bool:
        self._check()
        if barge_in and self.buffer.pending():
            return True
        for prompt in prompts:
            self.played.append(prompt)
            if self.script and isinstance(self.script[0], Listen):
                self.script.popleft()
                continue
            if barge_in and self.script and isinstance(self.script[0], Press | HangUp):
                self._caller_acts()  # a key press cuts off the rest of the sequence
                return True
            if not barge_in and self.script and isinstance(self.script[0], HangUp):
                self._caller_acts()
        return False

    async def _next_key(self, timeout_s: float) -> str | None:
        if self.waits:
            self.waits[-1].append(timeout_s)
        if not self.buffer.pending() and not self._caller_acts():
            return None  # silence: the timeout passes at once
        return await self.buffer.next_key(0)

    async def collect(self, spec: CollectSpec) -> CollectResult:
        self._check()
        self.collects += 1
        self.specs.append(spec)
        self.waits.append([])
        return await super().collect(spec)

    async def transfer(self, destination: str) -> None:
        self._check()
        parse_destination(destination)
        self.transferred_to = destination
        self.buffer.hang_up()

    async def hangup(self) -> None:
        self.buffer.hang_up()

    async def wait_hangup(self, timeout_s: float | None = None) -> bool:
        return self.buffer.hung_up
