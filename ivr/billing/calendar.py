"""When a schedule charges: pure calendar arithmetic in Asia/Seoul (docs/product.md §8).

Rules (the ``schedules.rule`` JSON):

- ``{"every": "month", "day": 31, "interval": 1}`` — monthly on day N; a day the month
  lacks falls on its last day (31 → 28/29 Feb, 30 Apr …), and the next month goes back
  to day N;
- ``{"every": "week", "interval": 2}`` — every N weeks from the start date;
- ``{"every": "day", "interval": 3}`` — every N days from the start date;
- ``{"dates": ["2026-12-01", …]}`` — an explicit list.

A :class:`Plan` adds the start date, an optional end date and/or count, and the time of
day charges are due (Seoul). Occurrence *n* (0-based) is a pure function of the plan,
so a scheduler only stores how many cycles it has done.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from ivr.clock import SEOUL
from ivr.errors import InvalidInput

Every = Literal["month", "week", "day", "dates"]
MAX_OCCURRENCES = 10_000  # a plan with neither end nor count still stops somewhere


@dataclass(frozen=True)
class Rule:
    every: Every
    interval: int = 1
    day: int | None = None  # monthly only: 1..31
    dates: tuple[date, ...] = field(default=())

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Rule:
        """Validate a rule from JSON; errors name the field."""
        if not isinstance(raw, Mapping):
            raise InvalidInput("rule must be an object")
        if "dates" in raw:
            extra = set(raw) - {"dates"}
            if extra:
                raise InvalidInput(f"rule: unexpected keys with dates: {sorted(extra)}")
            values = raw["dates"]
            if not isinstance(values, list) or not values or len(values) > MAX_OCCURRENCES:
                raise InvalidInput(f"rule.dates must be a list of 1-{MAX_OCCURRENCES} dates")
            try:
                parsed = sorted({date.fromisoformat(str(v)) for v in values})
            except ValueError:
                raise InvalidInput("rule.dates must be ISO dates (YYYY-MM-DD)") from None
            return cls("dates", dates=tuple(parsed))
        every = raw.get("every")
        if every not in ("month", "week", "day"):
            raise InvalidInput("rule.every must be month, week or day (or give rule.dates)")
        allowed = {"every", "interval"} | ({"day"} if every == "month" else set())
        extra = set(raw) - allowed
        if extra:
            raise InvalidInput(f"rule: unexpected keys for every={every}: {sorted(extra)}")
        interval = raw.get("interval", 1)
        if type(interval) is not int or not 1 <= interval <= 366:
            raise InvalidInput("rule.interval must be an integer 1-366")
        day = None
        if every == "month":
            day = raw.get("day")
            if type(day) is not int or not 1 <= day <= 31:
                raise InvalidInput("rule.day must be an integer 1-31 for a monthly rule")
        return cls(every, interval=interval, day=day)

    def as_json(self) -> dict[str, Any]:
        if self.every == "dates":
            return {"dates": [d.isoformat() for d in self.dates]}
        out: dict[str, Any] = {"every": self.every, "interval": self.interval}
        if self.day is not None:
            out["day"] = self.day
        return out


def _month_day(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


@dataclass(frozen=True)
class Plan:
    rule: Rule
    start: date
    end: date | None = None
    count: int | None = None
    at: time = time(10, 0)  # charges are due at this Seoul time of day

    def __post_init__(self) -> None:
        if self.end is not None and self.end < self.start:
            raise InvalidInput("end must not be before start")
        if self.count is not None and not 1 <= self.count <= MAX_OCCURRENCES:
            raise InvalidInput(f"count must be 1-{MAX_OCCURRENCES}")

    def _raw(self) -> Iterator[date]:
        """Candidate dates from the start, before end/count are applied."""
        r = self.rule
        if r.every == "dates":
            yield from (d for d in r.dates if d >= self.start)
            return
        if r.every in ("week", "day"):
            step = timedelta(days=r.interval * (7 if r.every == "week" else 1))
            d = self.start
            while True:
                yield d
                d += step
        assert r.day is not None
        k = 0
        while True:
            year, month = _add_months(self.start.year, self.start.month, k * r.interval)
            d = _month_day(year, month, r.day)
            if d >= self.start:
                yield d
            k += 1

    def occurrences(self) -> Iterator[date]:
        """Every charge date, in order (bounded by end, count and MAX_OCCURRENCES)."""
        limit = min(self.count or MAX_OCCURRENCES, MAX_OCCURRENCES)
        for n, d in enumerate(self._raw()):
            if n >= limit or (self.end is not None and d > self.end):
                return
            yield d

    def nth(self, n: int) -> date | None:
        """Occurrence ``n`` (0-based), or None past the end."""
        for i, d in enumerate(self.occurrences()):
            if i == n:
                return d
        return None

    def due_at(self, d: date) -> datetime:
        """The aware instant a charge on ``d`` is due (``at`` in Seoul)."""
        return datetime.combine(d, self.at, tzinfo=SEOUL)

    def next_due(self, done: int) -> datetime | None:
        """When cycle number ``done`` (0-based: how many cycles are done) is due."""
        d = self.nth(done)
        return None if d is None else self.due_at(d)
