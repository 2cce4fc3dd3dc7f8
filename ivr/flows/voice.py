"""The conversation layer every flow speaks through: prompts by id, menus, digit fields.

docs/product.md §4's common rules live here, once:

- ``*`` as the first key of any input repeats the prompt;
- in menus ``0`` transfers to the agent destination when one is configured (otherwise
  it is an invalid choice); in digit fields ``0`` is just a digit;
- a timeout or an invalid entry plays a short error prompt and the prompt again, up to
  ``max_tries`` times in a row; then :class:`TooManyTries` ends the call politely;
- timeouts come from :class:`~ivr.merchants.policy.CallTiming` (senior mode doubles).

Digits never leave this module except as the return value to the flow: the transcript
shows only how many keys were pressed, and the session log only the outcome word.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ivr.merchants.policy import CallTiming
from ivr.telephony.call import Call, CollectEnd, CollectResult, CollectSpec
from ivr.telephony.session_log import LoggedCall


class Book(Protocol):
    """What the flows need from :class:`ivr.prompts.PromptBook`."""

    def has(self, prompt_id: str) -> bool: ...

    def text(self, prompt_id: str, **values: Any) -> str: ...

    async def render(self, prompt_id: str, **values: Any) -> list[str]: ...

    def sha256(self, sound_name: str) -> str: ...


class TooManyTries(Exception):
    """The payer failed the same input ``max_tries`` times: end the call politely."""


class AgentTransfer(Exception):
    """The payer pressed 0 in a menu and an agent destination is configured."""


@dataclass(frozen=True, slots=True)
class Say:
    """One prompt with its values (amounts, last 4, names — never card data)."""

    prompt_id: str
    values: Mapping[str, Any] = field(default_factory=dict)


def say(prompt_id: str, **values: Any) -> Say:
    return Say(prompt_id, values)


@dataclass(frozen=True, slots=True)
class Played:
    prompt_id: str
    sounds: tuple[str, ...]


SETTLE_S = 1.5  # docs/product.md §4.1: 6 birth digits are taken about 1.5 s after the 6th key
# Senior mode waits longer, but never more than 2 s after the 6th key (issue #28): the
# payer who stops there hears the next prompt soon; a 10-digit number keyed on goes on.
SENIOR_SETTLE_S = 2.0

Validator = Callable[[CollectResult], str | None]
"""Checks an entry; returns the id of the error prompt to play, or None if it is fine."""


class Voice:
    def __init__(
        self,
        call: Call,
        book: Book,
        timing: CallTiming,
        *,
        transcript: Callable[[str], None] | None = None,
    ) -> None:
        self.call = call
        self.book = book
        self.timing = timing
        self.transcript = transcript
        self.played: list[Played] = []  # every prompt played, in order (consent evidence)

    # ------------------------------------------------------------------ output

    async def play(self, prompts: Sequence[Say], *, barge_in: bool = True) -> bool:
        """Play prompts in order; True if a key press cut them short."""
        for p in prompts:
            sounds = await self.book.render(p.prompt_id, **p.values)
            self.played.append(Played(p.prompt_id, tuple(sounds)))
            if self.transcript is not None:
                self.transcript(f"♪ {p.prompt_id}: {self.book.text(p.prompt_id, **p.values)}")
            if await self._play(sounds, p.prompt_id, barge_in):
                return True
        return False

    async def say(self, prompt_id: str, *, barge_in: bool = True, **values: Any) -> bool:
        return await self.play([Say(prompt_id, values)], barge_in=barge_in)

    async def _play(self, sounds: Sequence[str], label: str, barge_in: bool) -> bool:
        if isinstance(self.call, LoggedCall):  # log the prompt id, not a file name
            return await self.call.play(sounds, barge_in=barge_in, label=label)
        return await self.call.play(sounds, barge_in=barge_in)

    # ------------------------------------------------------------------ input

    def spec(
        self,
        max_digits: int,
        *,
        terminator: str | None = None,
        min_digits: int = 1,
        settle_after: int | None = None,
    ) -> CollectSpec:
        """A field's collect spec with the call's timeouts; ``settle_after`` keys are
        taken after a short pause (``SETTLE_S``; ``SENIOR_SETTLE_S`` in senior mode)."""
        return CollectSpec(
            max_digits=max_digits,
            min_digits=min_digits,
            terminator=terminator,
            first_timeout_s=self.timing.first_digit_timeout_s,
            inter_timeout_s=self.timing.inter_digit_timeout_s,
            repeat_key="*",
            settle_after=settle_after,
            settle_s=SENIOR_SETTLE_S if self.timing.senior_mode else SETTLE_S,
        )

    async def menu(self, prompts: Sequence[Say], choices: str) -> str:
        """Play the prompts and read one key among ``choices``."""
        if "0" in choices:
            raise ValueError("menus never use 0 for a choice (it is the agent key)")

        def valid(r: CollectResult) -> str | None:
            if r.digits == "0" and self.timing.agent_destination:
                raise AgentTransfer
            return None if r.digits in choices else "err.invalid_choice"

        return await self.ask(prompts, self.spec(1), valid)

    async def ask(self, prompts: Sequence[Say], spec: CollectSpec, validate: Validator) -> str:
        """Play the prompts and read a field until it validates (or too many tries)."""
        failures = 0
        error: str | None = None
        while True:
            before = [Say(error)] if error else []
            await self.play([*before, *prompts])
            result = await self.call.collect(spec)
            if result.end is CollectEnd.repeat:
                error = None  # '*' is not a mistake: just say it again
                continue
            error = "err.timeout" if result.end is CollectEnd.timeout else validate(result)
            if error is None:
                if self.transcript is not None:
                    self.transcript(f"☎ {result.count} key(s) pressed")
                return result.digits
            failures += 1
            if self.transcript is not None:
                self.transcript(
                    f"☎ entry not accepted: {result.count} key(s), {result.end.value} ({error})"
                )
            if failures >= self.timing.max_tries:
                raise TooManyTries
