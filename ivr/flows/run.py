"""One admitted call: its request, its voice, its dependencies, and the helpers the
registration and payment flows share (consent evidence, finishing the request, the
wait prompt around PG work)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from ivr.cards.issuing import Accounts
from ivr.cards.key_requests import BillingKeyRequests
from ivr.cards.service import CardService
from ivr.cards.verification import CardVerification
from ivr.consent.ledger import ConsentInput, PlayedPrompt
from ivr.domain.states import CallRequestStatus
from ivr.flows.possession import Admission
from ivr.flows.voice import Book, Voice
from ivr.merchants.policy import CallTiming
from ivr.payments.charger import Charger
from ivr.payments.service import PaymentService
from ivr.store.tables import CallRequest
from ivr.telephony.errors import CallHungUp
from ivr.telephony.session_log import LoggedCall
from ivr.wiring import Services
from vault.client import VaultClient

T = TypeVar("T")

Outcome = Literal[
    "completed",
    "declined",
    "card_declined",
    "card_locked",
    "payment_failed",
    "payment_pending",
    "abandoned",
]


@dataclass(frozen=True)
class FlowDeps:
    """Everything the call flows use, built once per engine process."""

    services: Services
    book: Book
    vault: VaultClient
    cards: CardService
    payments: PaymentService
    charger: Charger
    key_requests: BillingKeyRequests
    verification: CardVerification
    transcript: Callable[[str, str], None] | None = None  # (call id, line), for the demo
    gateways: Accounts | None = None  # the merchants' PG accounts (None: default only)


@dataclass
class CallRun:
    deps: FlowDeps
    call: LoggedCall
    admission: Admission
    timing: CallTiming
    voice: Voice
    started_at: datetime
    caller: str  # the normalized caller number (010…)
    did: str
    card_id: str | None = None
    _consent_writes: list[asyncio.Future[Any]] = field(default_factory=list, repr=False)

    @property
    def who(self) -> str:
        """How this call identifies itself to the vault (audit 'who')."""
        return f"engine:call:{self.admission.request_id}"

    def now(self) -> datetime:
        return self.deps.services.clock.now()

    def record_consent(self, kind: str, key: str, details: dict[str, Any]) -> None:
        """Start appending the consent record: the prompts played so far (with the sha256
        of each audio file), the key pressed, the call's identity (docs/product.md §4.3).

        The write goes on behind the call, so the next prompt starts at once instead of
        after a database commit (issue #10: it was the slowest turnaround). Whatever acts
        on the consent — the vault, the PG, ending the request — first waits for it with
        :meth:`consent_recorded`, and the router waits for it when the call ends, so a
        hang-up never loses it."""
        heard = [(p.prompt_id, sound) for p in self.voice.played for sound in p.sounds]
        a = self.admission
        decided_at = self.now()

        async def write() -> None:
            # the files' hashes too (a first hash reads the file): a few ms after the
            # key, from the same files (they are replaced only by a prompt build)
            book = self.deps.book
            played = tuple(PlayedPrompt(pid, book.sha256(sound), sound) for pid, sound in heard)
            item = ConsentInput(
                merchant_id=a.merchant_id,
                call_request_id=a.request_id,
                kind=kind,
                did=self.did,
                caller_id=self.caller,
                call_id=self.call.call_id,
                call_started_at=self.started_at,
                decided_at=decided_at,
                prompts=played,
                key_pressed=key,
                details=details,
            )
            await self.deps.services.consent.append(item)

        self._consent_writes.append(asyncio.ensure_future(write()))

    async def consent_recorded(self) -> None:
        """Wait until every consent record started is written; a failed write raises here
        (and stays failed: nothing acts on a consent that was not recorded). The writes
        are shielded: a caller cancelled while it waits does not cancel them."""
        for write in self._consent_writes:
            await asyncio.shield(write)

    async def finish(self, target: CallRequestStatus, **values: Any) -> None:
        """End the request with an outcome (and set fields such as ``card_id``), once
        the call's consent records are written."""
        await self.consent_recorded()
        services = self.deps.services
        async with services.db.transaction() as s:
            req = await s.get(CallRequest, self.admission.request_id, with_for_update=True)
            assert req is not None
            for name, value in values.items():
                setattr(req, name, value)
            await services.requests.transition_in(
                s, self.admission.request_id, target, actor="call"
            )

    async def while_waiting(self, work: Awaitable[T], *, every_s: float = 4.0) -> T:
        """Run PG work while ``common.wait`` plays (again every ``every_s`` seconds of
        silence). The prompt's request goes out before the work starts, so the payer
        hears it at once. The work is never cancelled by a hang-up: it finishes and its
        effects are kept, then the hang-up is raised."""
        player = asyncio.ensure_future(self.voice.say("common.wait", barge_in=False))
        task: asyncio.Future[T] = asyncio.ensure_future(work)
        hung_up = False
        try:
            while True:
                waiting: set[asyncio.Future[Any]] = {task, player}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if not player.done():
                    player.cancel()
                    with contextlib.suppress(asyncio.CancelledError, CallHungUp):
                        await player
                    break
                error = player.exception()
                if isinstance(error, CallHungUp):
                    hung_up = True
                    break
                if error is not None:
                    raise error
                await asyncio.wait({task}, timeout=every_s)
                if task.done():
                    break
                player = asyncio.ensure_future(self.voice.say("common.wait", barge_in=False))
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            # The engine is stopping: give the work a moment to finish its step.
            if not player.done():
                player.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout=10)
            raise
        if hung_up:
            raise CallHungUp
        return result


def new_run(
    deps: FlowDeps,
    call: LoggedCall,
    admission: Admission,
    *,
    caller: str,
    did: str,
    started_at: datetime,
) -> CallRun:
    timing = CallTiming.effective(deps.services.settings.calls, admission.policy)
    line: Callable[[str], None] | None = None
    if deps.transcript is not None:
        sink, call_id = deps.transcript, call.call_id

        def line(text: str) -> None:
            sink(call_id, text)

    voice = Voice(call, deps.book, timing, transcript=line)
    return CallRun(deps, call, admission, timing, voice, started_at, caller, did)
