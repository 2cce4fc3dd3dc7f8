"""Recurring charge schedules and their timeline (past charges with every attempt,
retries, and the next due dates)."""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request

from ivr.api import schemas as S
from ivr.api.route import actor
from ivr.api.routes.common import WRITE_ERRORS, ByCustomer, Deps, Me, Paging, owned, retried, value
from ivr.api.routes.common import router as make_router
from ivr.api.routes.listing import listed
from ivr.billing.queries import schedules
from ivr.domain.states import ScheduleStatus
from ivr.payments.queries import schedule_attempts
from ivr.store.scope import Scope
from ivr.store.tables import Schedule
from ivr.web import views

router = make_router("schedules")


@router.post("/schedules", status_code=201, responses=WRITE_ERRORS)
async def create_schedule(body: S.ScheduleIn, request: Request, d: Deps, me: Me) -> S.ScheduleOut:
    rid, done = await retried(request, d, me, Schedule, "sch")
    if done is not None:
        return views.schedule(done)
    row = await d.schedules.create(
        me.merchant_id,
        body.customer_id,
        plan=body.plan,
        amount=body.amount,
        order_name=body.order_name,
        mode=body.mode,
        card_id=body.card_id,
        actor=actor(me),
        schedule_id=rid,
    )
    return views.schedule(row)


@router.get("/schedules")
async def list_schedules(
    d: Deps,
    me: Me,
    page: Paging,
    status: ScheduleStatus | None = None,
    customer_id: ByCustomer = None,
) -> S.Page[S.ScheduleOut]:
    q = schedules(Scope.of(me.merchant_id), status=value(status), customer_id=customer_id)
    return await listed(d, page, S.Page[S.ScheduleOut], q, Schedule.id, views.schedule)


@router.get("/schedules/{schedule_id}")
async def get_schedule(schedule_id: str, d: Deps, me: Me) -> S.ScheduleOut:
    async with d.db.sessions() as s:
        return views.schedule(await owned(s, Schedule, schedule_id, me.merchant_id, "schedule"))


@router.get("/schedules/{schedule_id}/timeline")
async def schedule_timeline(
    schedule_id: str, d: Deps, me: Me, upcoming: int = Query(3, ge=0, le=24)
) -> S.TimelineOut:
    timeline = await d.schedules.timeline(me.merchant_id, schedule_id, upcoming=upcoming)
    async with d.db.sessions() as s:
        found = await schedule_attempts(s, Scope.of(me.merchant_id), schedule_id)
    attempts: dict[str, list[dict[str, Any]]] = {
        intent_id: [
            {
                "attempt_id": a.id,
                "status": a.status,
                "decline_class": a.decline_class,
                "decline_code": a.decline_code,
                "created_at": a.created_at.isoformat(),
            }
            for a in rows
        ]
        for intent_id, rows in found.items()
    }
    for charge in timeline["charges"]:
        charge["attempts"] = attempts.get(charge["intent_id"], [])
    return S.TimelineOut(schedule_id=schedule_id, timeline=timeline)


async def _set(schedule_id: str, d: Deps, me: Me, target: ScheduleStatus) -> S.ScheduleOut:
    row = await d.schedules.set_status(me.merchant_id, schedule_id, target, actor=actor(me))
    return views.schedule(row)


@router.post("/schedules/{schedule_id}/pause", responses=WRITE_ERRORS)
async def pause_schedule(schedule_id: str, d: Deps, me: Me) -> S.ScheduleOut:
    return await _set(schedule_id, d, me, ScheduleStatus.paused)


@router.post("/schedules/{schedule_id}/resume", responses=WRITE_ERRORS)
async def resume_schedule(schedule_id: str, d: Deps, me: Me) -> S.ScheduleOut:
    return await _set(schedule_id, d, me, ScheduleStatus.active)


@router.post("/schedules/{schedule_id}/cancel", responses=WRITE_ERRORS)
async def cancel_schedule(schedule_id: str, d: Deps, me: Me) -> S.ScheduleOut:
    return await _set(schedule_id, d, me, ScheduleStatus.cancelled)
