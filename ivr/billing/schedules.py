"""Schedules (docs/product.md §8): create, pause, resume, cancel, and the timeline.

A schedule's ``rule`` column holds its whole plan as JSON::

    {"rule": {"every": "month", "day": 31}, "start": "2027-01-01", "end": null,
     "count": 12, "at": "10:00", "retry": {"offsets_days": [1, 3, 7]},
     "consent_hours": 72}

``runs`` counts the cycles started; ``next_run_at`` is when cycle ``runs`` is due (the
scheduler advances both in one transaction with the job that runs the cycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from ivr.audit import audit_row
from ivr.billing.calendar import Plan, Rule
from ivr.billing.retry import RetryPolicy
from ivr.clock import SEOUL, Clock
from ivr.domain.ids import new_id
from ivr.domain.states import SCHEDULE, CardStatus, ScheduleStatus
from ivr.domain.terms import check_amount
from ivr.domain.text import clean_text
from ivr.errors import Conflict, CustomerDeleted, InvalidInput, NotFound
from ivr.payments.queries import schedule_payments
from ivr.store.db import Database
from ivr.store.scope import Scope
from ivr.store.tables import Card, Customer, Schedule

MODES = ("auto", "consent", "consent_then_auto")


@dataclass(frozen=True)
class SchedulePlan:
    plan: Plan
    retry: RetryPolicy
    consent_hours: int

    @classmethod
    def of(cls, row: Schedule) -> SchedulePlan:
        return cls.parse(row.rule)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> SchedulePlan:
        extra = set(raw) - {"rule", "start", "end", "count", "at", "retry", "consent_hours"}
        if extra:
            raise InvalidInput(f"schedule: unexpected keys {sorted(extra)}")
        try:
            start = date.fromisoformat(str(raw["start"]))
            end = date.fromisoformat(str(raw["end"])) if raw.get("end") else None
            at = time.fromisoformat(str(raw.get("at") or "10:00"))
        except (KeyError, ValueError):
            raise InvalidInput("schedule: start (and end) must be YYYY-MM-DD, at HH:MM") from None
        count = raw.get("count")
        if count is not None and type(count) is not int:
            raise InvalidInput("schedule: count must be an integer")
        hours = raw.get("consent_hours", 72)
        if type(hours) is not int or not 1 <= hours <= 24 * 30:
            raise InvalidInput("schedule: consent_hours must be 1-720")
        plan = Plan(Rule.parse(raw.get("rule") or {}), start, end=end, count=count, at=at)
        return cls(plan, RetryPolicy.parse(raw.get("retry")), hours)

    def as_json(self) -> dict[str, Any]:
        p = self.plan
        return {
            "rule": p.rule.as_json(),
            "start": p.start.isoformat(),
            "end": p.end.isoformat() if p.end else None,
            "count": p.count,
            "at": p.at.strftime("%H:%M"),
            "retry": {
                "offsets_days": list(self.retry.offsets_days),
                "max_attempts": self.retry.max_attempts,
            },
            "consent_hours": self.consent_hours,
        }


@dataclass(eq=False)
class ScheduleService:
    db: Database
    clock: Clock

    async def create(
        self,
        merchant_id: str,
        customer_id: str,
        *,
        plan: dict[str, Any],
        amount: int,
        order_name: str,
        mode: str = "auto",
        card_id: str | None = None,
        actor: str = "cli",
        schedule_id: str | None = None,
    ) -> Schedule:
        check_amount(amount)
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}")
        # every cycle would carry it to the PG and the SMS
        order_name = clean_text(order_name, "order_name")
        parsed = SchedulePlan.parse(plan)
        now = self.clock.now()
        skipped, first = first_due(parsed, now)
        async with self.db.transaction() as s:
            payer = await Scope.of(merchant_id).one(s, Customer, customer_id, "customer")
            if payer.deleted_at is not None:
                raise CustomerDeleted(f"customer {customer_id} was deleted")
            if mode != "consent":
                if card_id is None:
                    raise InvalidInput(f"mode {mode} charges a registered card: give card_id")
                card = await Scope.of(merchant_id).get(s, Card, card_id)
                if card is None or card.customer_id != customer_id:
                    raise NotFound(f"card {card_id} not found")
                if card.status != CardStatus.active.value:
                    raise Conflict(f"card {card_id} is {card.status}")
            row = Schedule(
                id=schedule_id or new_id("sch"),
                merchant_id=merchant_id,
                customer_id=customer_id,
                card_id=card_id,
                rule=parsed.as_json(),
                mode=mode,
                amount=amount,
                order_name=order_name,
                status=SCHEDULE.initial.value if first else ScheduleStatus.completed.value,
                next_run_at=first,
                runs=skipped,
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            audit_row(s, self.clock, actor, "schedule.create", row, {"mode": mode})
        return row

    async def get(self, merchant_id: str, schedule_id: str) -> Schedule:
        async with self.db.sessions() as s:
            return await Scope.of(merchant_id).one(s, Schedule, schedule_id, "schedule")

    async def set_status(
        self, merchant_id: str, schedule_id: str, target: ScheduleStatus, *, actor: str
    ) -> Schedule:
        """Pause, resume or cancel. Resuming skips cycles that fell due while paused."""
        async with self.db.transaction() as s:
            row = await Scope.of(merchant_id).one(s, Schedule, schedule_id, "schedule", lock=True)
            row.status = SCHEDULE.check(row.status, target).value
            now = self.clock.now()
            row.updated_at = now
            if target is ScheduleStatus.active:
                plan = SchedulePlan.of(row).plan
                while (due := plan.next_due(row.runs)) is not None and due <= now:
                    row.runs += 1  # missed while paused: not charged late
                row.next_run_at = due
                if due is None:
                    row.status = SCHEDULE.check(row.status, ScheduleStatus.completed).value
            audit_row(s, self.clock, actor, f"schedule.{target.value}", row)
            return row

    async def timeline(
        self, merchant_id: str, schedule_id: str, *, upcoming: int = 3
    ) -> dict[str, Any]:
        """Past charges (intents with their status) and the next due dates."""
        row = await self.get(merchant_id, schedule_id)
        plan = SchedulePlan.of(row).plan
        async with self.db.sessions() as s:
            intents = await schedule_payments(s, Scope.of(merchant_id), schedule_id)
        nxt = []
        if row.status == ScheduleStatus.active.value:
            for n in range(row.runs, row.runs + upcoming):
                due = plan.next_due(n)
                if due is None:
                    break
                nxt.append({"cycle": n, "due_at": due.isoformat()})
        return {
            "schedule_id": row.id,
            "status": row.status,
            "cycles_started": row.runs,
            "charges": [
                {
                    "intent_id": i.id,
                    "amount": i.amount,
                    "status": i.status,
                    "created_at": i.created_at.isoformat(),
                }
                for i in intents
            ],
            "upcoming": nxt,
        }


def first_due(plan: SchedulePlan, now: datetime) -> tuple[int, datetime | None]:
    """(cycle number, due time) of the first cycle due at or after ``now``: a start in
    the past does not back-charge the cycles before today."""
    n = 0
    while (due := plan.plan.next_due(n)) is not None:
        if due >= now.astimezone(SEOUL):
            return n, due
        n += 1
    return n, None
