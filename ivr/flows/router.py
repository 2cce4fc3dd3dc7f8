"""The engine's call flow: possession check, then the registration or payment call,
then putting the request back to waiting if the call ended without an outcome.

Every way a call can end is handled here once: the payer hanging up, too many wrong
entries (``err.too_many``), ``0`` for an agent, and an unexpected error (``err.system``,
logged without digits). The request is never left ``in_call``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ivr.domain.states import CallRequestKind, CallSessionStatus
from ivr.flows.payment import payment_call
from ivr.flows.possession import NAMES_MERCHANT, Rejection, admit, release
from ivr.flows.registration import registration_call
from ivr.flows.run import FlowDeps, new_run
from ivr.flows.voice import AgentTransfer, TooManyTries, Voice
from ivr.merchants.policy import CallTiming, MerchantPolicy
from ivr.telephony.errors import CallHungUp
from ivr.telephony.session_log import LoggedCall

log = logging.getLogger(__name__)


class CallFlows:
    """``Engine(flow=CallFlows(deps))``."""

    def __init__(self, deps: FlowDeps) -> None:
        self.deps = deps

    async def __call__(self, call: LoggedCall) -> str:
        services = self.deps.services
        calls = services.settings.calls
        started = services.clock.now()
        admission = await admit(
            services.db,
            services.requests,
            did=call.did,
            caller_id=call.caller_id,
            max_calls=calls.max_calls_per_request,
        )
        if isinstance(admission, Rejection):
            if call.meter is not None:
                call.meter.flow("rejected")
            await self._reject(call, admission)
            return f"rejected:{admission.reason}"[:40]
        call.session.link_request(admission.request_id)
        if call.meter is not None:
            call.meter.flow(admission.kind.value)
        run = new_run(
            self.deps,
            call,
            admission,
            caller=admission.caller,
            did=admission.did,
            started_at=started,
        )
        outcome = "abandoned"
        try:
            await call.answer()
            if admission.kind is CallRequestKind.registration:
                outcome = await registration_call(run)
            else:
                outcome = await payment_call(run)
            await call.hangup()
        except CallHungUp:
            outcome = "caller_hung_up"
        except TooManyTries:
            outcome = "too_many_tries"
            await _last_words(run.voice, "err.too_many", call)
        except AgentTransfer:
            outcome = "agent"
            with contextlib.suppress(CallHungUp):
                await run.voice.say("common.agent", barge_in=False)
                await call.transfer(run.timing.agent_destination)
        except Exception:
            outcome = "error"
            log.exception("call flow failed (request %s)", admission.request_id)
            await _last_words(run.voice, "err.system", call)
        finally:
            # A consent record still being written (the payer hung up right after the
            # key) is waited for: evidence is never dropped with the call.
            try:
                await run.consent_recorded()
            except Exception:
                if outcome != "error":  # else the flow met (and logged) the failure
                    outcome = "error"
                    log.exception("consent record not written (request %s)", admission.request_id)
            # Shielded: the request must leave in_call even if the engine is stopping.
            await asyncio.shield(
                release(
                    services.requests,
                    admission.request_id,
                    max_calls=calls.max_calls_per_request,
                )
            )
        return outcome

    async def _reject(self, call: LoggedCall, rejection: Rejection) -> None:
        """Say why (one prompt per reason, :data:`~ivr.flows.possession.REJECTION_PROMPTS`)
        and hang up; the session log keeps ``rejected:<reason>`` and the prompt id."""
        timing = CallTiming.effective(self.deps.services.settings.calls, MerchantPolicy())
        voice = Voice(call, self.deps.book, timing, transcript=self._line(call))
        prompt_id = rejection.prompt_id
        values: dict[str, str] = {}
        if prompt_id in NAMES_MERCHANT:
            if rejection.merchant_name:
                values["merchant"] = rejection.merchant_name
            else:  # no name to say: the plain rejection
                prompt_id = "auth.rejected"
        outcome = f"rejected:{rejection.reason}"[:40]
        with contextlib.suppress(CallHungUp):
            await call.answer()
            call.session.transition(CallSessionStatus.rejected, outcome)
            await voice.say(prompt_id, barge_in=False, **values)
            await call.hangup()

    def _line(self, call: LoggedCall) -> Callable[[str], None] | None:
        sink = self.deps.transcript
        if sink is None:
            return None
        call_id = call.call_id

        def line(text: str) -> None:
            sink(call_id, text)

        return line


async def _last_words(voice: Voice, prompt_id: str, call: LoggedCall) -> None:
    with contextlib.suppress(Exception):
        await voice.say(prompt_id, barge_in=False)
        await call.hangup()
