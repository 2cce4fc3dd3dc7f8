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
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from ivr.billing.queries import cycle_jobs, schedules
from ivr.billing.schedules import SchedulePlan
from ivr.console.access import Deps, Reader, Viewer, Writer
from ivr.console.i18n import register
from ivr.console.pages.common import merchant_names, owned, scope_of
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

register(
    {
        "sch.title": ("정기결제", "Schedules"),
        "sch.detail": ("정기결제 상세", "Schedule"),
        "sch.rule": ("주기", "Rule"),
        "sch.mode": ("방식", "Mode"),
        "sch.mode.auto": ("자동 결제", "Automatic charge"),
        "sch.mode.consent": ("매회 ARS 동의", "Consent call each time"),
        "sch.mode.consent_then_auto": ("ARS 동의, 없으면 자동", "Consent call, then automatic"),
        "sch.next_run": ("다음 결제 (한국 시간)", "Next run (Seoul time)"),
        "sch.every.month": ("매월 {day}일", "Monthly on day {day}"),
        "sch.every.month_n": ("{n}개월마다 {day}일", "Every {n} months on day {day}"),
        "sch.every.week": ("매주", "Weekly"),
        "sch.every.week_n": ("{n}주마다", "Every {n} weeks"),
        "sch.every.day": ("매일", "Daily"),
        "sch.every.day_n": ("{n}일마다", "Every {n} days"),
        "sch.dates": ("지정일 {n}회", "{n} set dates"),
        "sch.count": ("총 {n}회", "{n} times"),
        "sch.until": ("{end}까지", "until {end}"),
        "sch.at": ("{at} 결제", "at {at}"),
        "sch.start": ("시작일", "Start"),
        "sch.runs": ("시작된 회차", "Cycles started"),
        "sch.retry": ("재시도", "Retries"),
        "sch.retry_days": ("실패 후 {days}일째", "{days} days after a failure"),
        "sch.timeline": ("타임라인", "Timeline"),
        "sch.upcoming": ("다음 결제 예정", "Next charges"),
        "sch.no_upcoming": ("예정된 결제가 없습니다.", "No charge is due."),
        "sch.past": ("지난 결제", "Past charges"),
        "sch.cycle_n": ("{n}회차", "Cycle {n}"),
        "sch.other": ("회차 미상", "Cycle unknown"),
        "sch.try_n": ("{n}번째 시도", "Try {n}"),
        "sch.retry_at": ("재시도 예정", "Retry due"),
        "sch.next_step": ("다음 처리", "Next step"),
        "sch.consent_request": ("동의 요청", "Consent request"),
        "sch.dunning_request": ("미납 안내 요청", "Dunning request"),
        "sch.no_attempts": ("PG 요청 없음", "No request to the PG"),
        "sch.pause": ("일시 중지", "Pause"),
        "sch.resume": ("재개", "Resume"),
        "sch.cancel": ("정기결제 해지", "Cancel schedule"),
        "sch.cancel_confirm": ("해지합니다 (되돌릴 수 없음)", "Yes, cancel it (cannot be undone)"),
        "sch.confirm_needed": (
            "해지하려면 확인란을 선택하세요. 아무것도 변경되지 않았습니다.",
            "Tick the box to confirm the cancellation. Nothing was changed.",
        ),
        "sch.changed": ("상태를 변경했습니다.", "The status was changed."),
    }
)


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
    async with deps.api.db.sessions() as s:
        row = await owned(s, Schedule, schedule_id, who, "schedule")
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
    changed: Annotated[str | None, Query(max_length=4)] = None,
) -> Response:
    return await _detail(request, deps, who, schedule_id, changed=bool(changed))


@router.post("/schedules/{schedule_id}/{action}")
async def change_schedule(
    schedule_id: str,
    action: str,
    request: Request,
    deps: Deps,
    who: Writer,
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    target = ACTIONS.get(action)
    async with deps.api.db.sessions() as s:
        row = await owned(s, Schedule, schedule_id, who, "schedule")
    if target is None:
        raise InvalidInput(f"unknown schedule action {action!r}")
    if target is ScheduleStatus.cancelled and confirm != "yes":
        return await _detail(request, deps, who, row.id, error=who.t("sch.confirm_needed"),
                             status_code=422)  # fmt: skip
    await deps.api.schedules.set_status(row.merchant_id, row.id, target, actor=who.actor)
    return RedirectResponse(f"/console/schedules/{row.id}?changed=1", status_code=303)
