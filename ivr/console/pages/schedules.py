"""Schedules: list (rule summary, mode, amount, status, next run in Seoul time), detail
with the timeline — every cycle started, each charge in it with its attempts at the PG,
the retry due, and the next charges — and pause / resume / cancel.

The timeline is :meth:`ScheduleService.timeline` (charges and next due dates) with each
charge's attempts and, per cycle, what the scheduler's cycle job remembers (its retry
time, the consent or dunning call request). Status changes are
:meth:`ScheduleService.set_status`, as the API's; cancelling needs its confirmation box
ticked (422 and nothing changed otherwise)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ivr.billing.queries import cycle_jobs, schedules
from ivr.billing.schedules import SchedulePlan
from ivr.console.access import Deps, Reader, Viewer, Writer
from ivr.console.pages.common import fetch_owned, merchant_names, scope_of
from ivr.console.pages.fields import ConfirmField, FlagParam
from ivr.console.pages.lists import Asked, status_list
from ivr.console.pages.payments import labels as payment_labels
from ivr.console.pages.payments import word
from ivr.console.render import page
from ivr.domain.states import SCHEDULE, JobStatus, ScheduleStatus
from ivr.errors import InvalidInput
from ivr.payments.queries import schedule_attempts
from ivr.store.tables import Card, Customer, Job, PaymentAttempt, Schedule

router = APIRouter()
STATUSES = [s.value for s in ScheduleStatus]
UPCOMING = 5
ACTIONS = {
    "pause": ScheduleStatus.paused,
    "resume": ScheduleStatus.active,
    "cancel": ScheduleStatus.cancelled,
}


def rule_summary(who: Viewer, row: Schedule) -> str:
    """``매월 31일 · 총 12회 · 10:00 결제`` / ``Monthly on day 31 · 12 times · at 10:00``."""
    plan = SchedulePlan.of(row).plan
    rule = plan.rule
    if rule.every == "dates":
        parts = [who.t("sch.dates", n=len(rule.dates))]
    else:
        key = f"sch.every.{rule.every}" + ("" if rule.interval == 1 else "_n")
        parts = [who.t(key, n=rule.interval, day=rule.day)]
    if plan.count is not None:
        parts.append(who.t("sch.count", n=plan.count))
    if plan.end is not None:
        parts.append(who.t("sch.until", end=plan.end.isoformat()))
    parts.append(who.t("sch.at", at=plan.at.strftime("%H:%M")))
    return " · ".join(parts)


def labels(who: Viewer) -> dict[str, Any]:
    return {
        "rule_summary": lambda row: rule_summary(who, row),
        "mode": lambda value: word(who, "sch.mode", value),
    }


@router.get("/schedules")
async def list_schedules(
    request: Request,
    deps: Deps,
    who: Reader,
    asked: Asked,
) -> Response:
    return await status_list(request, deps, who, "schedules.html", asked, query=schedules,
                             id_column=Schedule.id, statuses=STATUSES, **labels(who))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Charge:
    """One payment intent of a cycle (the first try or a retry) and its PG attempts."""

    intent_id: str
    amount: int
    status: str
    created_at: datetime
    attempts: list[PaymentAttempt]
    try_no: int | None = None


@dataclass(slots=True)
class Cycle:
    number: int | None  # None: charges no cycle job names (should not happen)
    job_status: str | None = None
    next_at: datetime | None = None  # when the scheduler looks at the cycle again
    retry_due: bool = False
    request_id: str | None = None
    dunning_request_id: str | None = None
    charges: list[Charge] = field(default_factory=list)


def _charge(c: dict[str, Any], attempts: dict[str, list[PaymentAttempt]]) -> Charge:
    return Charge(
        intent_id=c["intent_id"],
        amount=c["amount"],
        status=c["status"],
        created_at=datetime.fromisoformat(c["created_at"]),
        attempts=attempts.get(c["intent_id"], []),
    )


def _cycles(timeline: dict[str, Any], jobs: list[Job],
            attempts: dict[str, list[PaymentAttempt]]) -> list[Cycle]:  # fmt: skip
    """The timeline's charges grouped by the cycle whose job created them."""
    charges = {c["intent_id"]: _charge(c, attempts) for c in timeline["charges"]}
    cycles: list[Cycle] = []
    for job in sorted(jobs, key=lambda j: int(j.payload.get("cycle", 0))):
        p = job.payload
        waiting = job.status == JobStatus.queued.value
        cycle = Cycle(
            number=int(p.get("cycle", 0)),
            job_status=job.status,
            next_at=job.run_at if waiting else None,
            retry_due=bool(p.get("retry_due")) and waiting,
            request_id=p.get("request_id"),
            dunning_request_id=p.get("dunning_request_id"),
        )
        for n, intent_id in enumerate(p.get("intents", []), start=1):
            found = charges.pop(intent_id, None)
            if found is not None:
                cycle.charges.append(replace(found, try_no=n))
        cycles.append(cycle)
    if charges:
        cycles.append(Cycle(None, charges=list(charges.values())))
    return cycles


async def _detail(request: Request, deps: Deps, who: Viewer, schedule_id: str, *,
                  error: str | None = None, status_code: int = 200, changed: bool = False
                  ) -> Response:  # fmt: skip
    row = await fetch_owned(deps.api.db, Schedule, schedule_id, who, "schedule")
    timeline = await deps.api.schedules.timeline(row.merchant_id, row.id, upcoming=UPCOMING)
    async with deps.api.db.sessions() as s:
        scope = scope_of(who)
        customer = await scope.get(s, Customer, row.customer_id)
        card = await scope.get(s, Card, row.card_id) if row.card_id else None
        attempts = await schedule_attempts(s, scope, row.id)
        jobs = await cycle_jobs(s, row.id)
        names = await merchant_names(s, who)
    plan = SchedulePlan.of(row)
    return page(
        request, who, "schedule.html", status_code=status_code, x=row, customer=customer,
        card=card, names=names, plan=plan, cycles=_cycles(timeline, jobs, attempts),
        upcoming=[datetime.fromisoformat(u["due_at"]) for u in timeline["upcoming"]],
        can={n: SCHEDULE.can(ScheduleStatus(row.status), v) for n, v in ACTIONS.items()},
        error=error, changed=changed, **labels(who), **payment_labels(who),
    )  # fmt: skip


@router.get("/schedules/{schedule_id}")
async def show_schedule(
    schedule_id: str,
    request: Request,
    deps: Deps,
    who: Reader,
    changed: FlagParam = None,
) -> Response:
    return await _detail(request, deps, who, schedule_id, changed=bool(changed))


@router.post("/schedules/{schedule_id}/{action}")
async def change_schedule(
    schedule_id: str,
    action: str,
    request: Request,
    deps: Deps,
    who: Writer,
    confirm: ConfirmField = "",
) -> Response:
    target = ACTIONS.get(action)
    row = await fetch_owned(deps.api.db, Schedule, schedule_id, who, "schedule")
    if target is None:
        raise InvalidInput(f"unknown schedule action {action!r}")
    if target is ScheduleStatus.cancelled and confirm != "yes":
        return await _detail(request, deps, who, row.id, error=who.t("sch.confirm_needed"),
                             status_code=422)  # fmt: skip
    await deps.api.schedules.set_status(row.merchant_id, row.id, target, actor=who.actor)
    return RedirectResponse(f"/console/schedules/{row.id}?changed=1", status_code=303)
