"""The dashboard: amount collected per day (an SVG bar chart drawn here, no chart
library), charge success rate, retry recovery rate, DID pool usage and calls in
progress. Numbers are the viewer's merchant's (operators: all merchants); DID pool
usage is the operator's alone. The figures refresh every 10 s (htmx)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from ivr.console.access import Deps, Reader, Viewer
from ivr.console.pages.common import scope_of
from ivr.console.render import SEOUL, page
from ivr.dids.queries import pool_usage
from ivr.domain.states import AttemptStatus
from ivr.payments import queries as payments
from ivr.requests import queries as requests

router = APIRouter()
DAYS = 14
WINDOW = timedelta(days=30)
PAID = ("succeeded", "partially_refunded", "refunded")


@dataclass(frozen=True, slots=True)
class Bar:
    day: date
    amount: int
    x: int
    y: int
    height: int
    label: str


@dataclass(frozen=True, slots=True)
class Ratio:
    ok: int
    total: int

    @property
    def percent(self) -> str:
        return "—" if self.total == 0 else f"{100 * self.ok / self.total:.1f}%"


@dataclass(frozen=True, slots=True)
class Figures:
    bars: list[Bar]
    collected: int
    success: Ratio
    recovery: Ratio
    calls_now: int
    open_requests: int
    dids: Ratio | None  # operators only


CHART_W, CHART_H, BAR_GAP = 700, 160, 6


def _bars(per_day: dict[date, int], today: date) -> list[Bar]:
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    top = max([per_day.get(d, 0) for d in days] + [1])
    width = CHART_W // DAYS
    bars = []
    for i, d in enumerate(days):
        amount = per_day.get(d, 0)
        height = round(CHART_H * amount / top)
        bars.append(Bar(d, amount, i * width + BAR_GAP // 2, CHART_H - height, height,
                        d.strftime("%m/%d")))  # fmt: skip
    return bars


async def figures(s: AsyncSession, viewer: Viewer, deps: Deps) -> Figures:
    now = deps.api.clock.now()
    scope = scope_of(viewer)
    per_day: dict[date, int] = {}
    for at, amount in await payments.collected_since(s, scope, now - timedelta(days=DAYS + 1)):
        if at is not None:
            day = at.astimezone(SEOUL).date()
            per_day[day] = per_day.get(day, 0) + amount
    bars = _bars(per_day, now.astimezone(SEOUL).date())

    counts = await payments.attempt_counts(s, scope, now - WINDOW)
    ok = counts.get(AttemptStatus.succeeded.value, 0)
    success = Ratio(ok, ok + counts.get(AttemptStatus.failed.value, 0))

    retried = (await payments.retried_outcomes(s, scope, now - WINDOW)).items()
    recovery = Ratio(sum(n for st, n in retried if st in PAID), sum(n for _, n in retried))

    calls_now = await requests.calls_now(s, scope)
    open_requests = await requests.open_requests(s, scope)
    dids = None
    if viewer.scope is None:
        dids = Ratio(*await pool_usage(s, now))
    return Figures(bars, sum(b.amount for b in bars), success, recovery, calls_now,
                   open_requests, dids)  # fmt: skip


async def _figures(request: Request, deps: Deps, who: Viewer, template: str) -> Response:
    async with deps.api.db.sessions() as s:
        numbers = await figures(s, who, deps)
    return page(request, who, template, f=numbers, chart_w=CHART_W, chart_h=CHART_H,
                bar_w=CHART_W // DAYS - BAR_GAP)  # fmt: skip


@router.get("/")
async def dashboard(request: Request, deps: Deps, who: Reader) -> Response:
    return await _figures(request, deps, who, "dashboard.html")


@router.get("/dashboard/figures")
async def dashboard_figures(request: Request, deps: Deps, who: Reader) -> Response:
    """The figures alone (htmx refreshes them every 10 s)."""
    return await _figures(request, deps, who, "fragments/figures.html")
