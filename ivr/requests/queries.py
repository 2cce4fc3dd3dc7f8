"""The call-request read model: the requests, each call made for one with its step
timeline (the call-session log telephony writes, ``ivr/telephony/session_log.py``), and
the dashboard's live counts. Merchant-owned reads go through a
:class:`~ivr.store.scope.Scope`; sessions and steps are read by the id of a request read
through it first."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.domain.states import CallRequestStatus, CallSessionStatus
from ivr.store.scope import Scope
from ivr.store.tables import CallRequest, CallSession, CallStep

OPEN = (CallRequestStatus.created, CallRequestStatus.sms_sent, CallRequestStatus.in_call)
LIVE = (CallSessionStatus.ringing, CallSessionStatus.active)


def call_requests(
    scope: Scope,
    *,
    status: str | None = None,
    kind: str | None = None,
    customer_id: str | None = None,
) -> Select[CallRequest]:
    """The call requests in ``scope`` (to page), optionally filtered."""
    return scope.select(CallRequest, status=status, kind=kind, customer_id=customer_id)


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


async def calls_now(s: AsyncSession, scope: Scope) -> int:
    """Calls ringing or in progress in ``scope``."""
    q = select(func.count()).select_from(CallSession).where(CallSession.status.in_(LIVE))
    if scope.merchant_id is not None:  # sessions are a merchant's through their request
        q = scope.where(q.join(CallRequest, CallRequest.id == CallSession.call_request_id),
                        CallRequest)  # fmt: skip
    return await s.scalar(q) or 0


async def open_requests(s: AsyncSession, scope: Scope) -> int:
    """Call requests in ``scope`` not yet finished."""
    q = (
        select(func.count())
        .select_from(CallRequest)
        .where(CallRequest.status.in_([st.value for st in OPEN]))
    )
    return await s.scalar(scope.where(q, CallRequest)) or 0
