"""Play one request's :class:`~ivr.gateways.sandbox.faults.Fault`: when the sandbox
records, when (and whether) it answers. The recording itself is the endpoint's own
``record`` coroutine, run to its end even if the client hangs up meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from ivr.gateways.sandbox import cards
from ivr.gateways.sandbox import http as h
from ivr.gateways.sandbox.faults import Fault, Ordering
from ivr.gateways.sandbox.state import SandboxState

Record = Callable[[], Awaitable[web.Response]]


async def _later(delay_s: float, record: Record) -> web.Response:
    await asyncio.sleep(delay_s)
    return await record()


async def play(
    request: web.Request, st: SandboxState, fault: Fault, record: Record
) -> web.StreamResponse:
    """Answer ``request`` as ``fault`` says, recording with ``record()`` (whose answer is
    the normal one). ``slow_processing`` is the endpoint's to play inside ``record``;
    here it counts as ``normal``."""
    o = fault.ordering
    if o is Ordering.error_before:
        return h.server_error(cards.INJECTED)
    if o is Ordering.drop_before_record:
        return await h.drop(request, fault.delay_ms)
    if o is Ordering.late:
        answer = await st.finish(_later(fault.delay_s, record))
    else:
        answer = await st.finish(record())
    if o is Ordering.slow_answer:
        await asyncio.sleep(fault.delay_s)
    elif o is Ordering.record_then_drop:
        return await h.drop(request, fault.delay_ms)
    elif o is Ordering.error_after:
        return h.server_error(cards.INJECTED)
    return answer
