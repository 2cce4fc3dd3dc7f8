"""``arspay schedules``: recurring charges (docs/product.md §8)."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy import select

from ivr.cli.app import app, emit, fields, with_services
from ivr.domain.states import ScheduleStatus
from ivr.store.tables import Schedule
from ivr.wiring import Services

schedules_app = typer.Typer(help="Recurring charges.", no_args_is_help=True)
app.add_typer(schedules_app, name="schedules")


def _row(r: Schedule) -> dict[str, Any]:
    shown = fields(r, "id", "customer_id", "mode", "amount", "status")
    return shown | {"cycles_started": r.runs, "next_run_at": r.next_run_at}


@schedules_app.command("create")
def create(
    ctx: typer.Context,
    merchant_id: str,
    customer_id: str,
    amount: int = typer.Option(..., help="KRW per cycle"),
    order_name: str = typer.Option(..., "--order-name"),
    every: str = typer.Option("month", help="month | week | day"),
    day: int | None = typer.Option(None, help="monthly: day of month (31 = last day)"),
    interval: int = typer.Option(1, help="every N months/weeks/days"),
    start: str = typer.Option(..., help="first date, YYYY-MM-DD (Seoul)"),
    end: str | None = typer.Option(None, help="last date, YYYY-MM-DD"),
    count: int | None = typer.Option(None, help="number of cycles"),
    at: str = typer.Option("10:00", help="time of day charges are due (Seoul)"),
    mode: str = typer.Option("auto", help="auto | consent | consent_then_auto"),
    card_id: str | None = typer.Option(None, "--card", help="the registered card to charge"),
) -> None:
    """Create a schedule."""
    rule: dict[str, Any] = {"every": every, "interval": interval}
    if day is not None:
        rule["day"] = day
    plan = {"rule": rule, "start": start, "end": end, "count": count, "at": at}

    async def body(s: Services) -> None:
        row = await s.schedules.create(
            merchant_id, customer_id, plan=plan, amount=amount, order_name=order_name,
            mode=mode, card_id=card_id,
        )  # fmt: skip
        emit(ctx, "Schedule", [_row(row)])

    with_services(ctx, body)


@schedules_app.command("list")
def list_(ctx: typer.Context, merchant_id: str) -> None:
    """A merchant's schedules."""

    async def body(s: Services) -> None:
        async with s.db.sessions() as session:
            rows = await session.scalars(
                select(Schedule).where(Schedule.merchant_id == merchant_id).order_by(Schedule.id)
            )
            emit(ctx, "Schedules", [_row(r) for r in rows])

    with_services(ctx, body)


@schedules_app.command("show")
def show(ctx: typer.Context, merchant_id: str, schedule_id: str) -> None:
    """Past charges and the next due dates."""

    async def body(s: Services) -> None:
        t = await s.schedules.timeline(merchant_id, schedule_id)
        emit(ctx, f"Schedule {schedule_id} ({t['status']})", t["charges"] + t["upcoming"])

    with_services(ctx, body)


def _status_command(name: str, target: ScheduleStatus) -> None:
    @schedules_app.command(name)
    def command(ctx: typer.Context, merchant_id: str, schedule_id: str) -> None:
        async def body(s: Services) -> None:
            row = await s.schedules.set_status(merchant_id, schedule_id, target, actor="cli")
            emit(ctx, "Schedule", [_row(row)])

        with_services(ctx, body)

    command.__doc__ = f"{name.capitalize()} a schedule."


_status_command("pause", ScheduleStatus.paused)
_status_command("resume", ScheduleStatus.active)
_status_command("cancel", ScheduleStatus.cancelled)
