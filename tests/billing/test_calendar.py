"""Schedule calendar (issue #8 acceptance: day 31 in February, leap and non-leap;
weekly across the year end; counts and end dates)."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from ivr.billing.calendar import Plan, Rule
from ivr.clock import SEOUL
from ivr.errors import InvalidInput


def dates(plan: Plan) -> list[str]:
    return [d.isoformat() for d in plan.occurrences()]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # non-leap year: 31 -> 28 Feb, back to 31 in March, 30 in April
        ("2027-01-31", ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31"]),
        # leap year: 29 Feb
        ("2028-01-31", ["2028-01-31", "2028-02-29", "2028-03-31", "2028-04-30", "2028-05-31"]),
        # starting after day 31's slot in a month: the first charge is next month
        ("2026-11-15", ["2026-11-30", "2026-12-31", "2027-01-31", "2027-02-28", "2027-03-31"]),
    ],
)
def test_monthly_day_31(start: str, expected: list[str]) -> None:
    plan = Plan(Rule.parse({"every": "month", "day": 31}), date.fromisoformat(start), count=5)
    assert dates(plan) == expected


def test_monthly_day_29_around_february_and_an_interval() -> None:
    plan = Plan(Rule.parse({"every": "month", "day": 29}), date(2027, 1, 1), count=3)
    assert dates(plan) == ["2027-01-29", "2027-02-28", "2027-03-29"]
    quarterly = Plan(Rule.parse({"every": "month", "day": 30, "interval": 3}), date(2026, 11, 1),
                     count=4)  # fmt: skip
    assert dates(quarterly) == ["2026-11-30", "2027-02-28", "2027-05-30", "2027-08-30"]


def test_day_before_start_in_the_first_month_is_skipped() -> None:
    plan = Plan(Rule.parse({"every": "month", "day": 5}), date(2026, 11, 28), count=2)
    assert dates(plan) == ["2026-12-05", "2027-01-05"]


def test_weekly_across_the_year_end() -> None:
    plan = Plan(Rule.parse({"every": "week"}), date(2026, 12, 17), end=date(2027, 1, 14))
    assert dates(plan) == ["2026-12-17", "2026-12-24", "2026-12-31", "2027-01-07", "2027-01-14"]
    biweekly = Plan(Rule.parse({"every": "week", "interval": 2}), date(2026, 12, 24), count=3)
    assert dates(biweekly) == ["2026-12-24", "2027-01-07", "2027-01-21"]


def test_every_n_days_with_count_and_end_whichever_first() -> None:
    rule = Rule.parse({"every": "day", "interval": 10})
    assert dates(Plan(rule, date(2026, 12, 25), count=3)) == ["2026-12-25", "2027-01-04",
                                                               "2027-01-14"]  # fmt: skip
    both = Plan(rule, date(2026, 12, 25), end=date(2027, 1, 10), count=5)
    assert dates(both) == ["2026-12-25", "2027-01-04"]


def test_explicit_dates_are_sorted_deduplicated_and_bounded() -> None:
    rule = Rule.parse({"dates": ["2027-03-01", "2027-01-01", "2027-03-01", "2026-01-01"]})
    plan = Plan(rule, date(2026, 12, 1), end=date(2027, 2, 1))
    assert dates(plan) == ["2027-01-01"]


def test_nth_and_due_time_in_seoul() -> None:
    plan = Plan(Rule.parse({"every": "month", "day": 31}), date(2027, 1, 1), count=2,
                at=time(9, 30))  # fmt: skip
    assert plan.nth(1) == date(2027, 2, 28)
    assert plan.nth(2) is None
    due = plan.next_due(1)
    assert due == datetime(2027, 2, 28, 9, 30, tzinfo=SEOUL)
    assert due is not None
    assert due.utcoffset() is not None
    assert due.astimezone(SEOUL).hour == 9


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"every": "month"}, "day"),
        ({"every": "month", "day": 32}, "day"),
        ({"every": "year"}, "every"),
        ({"every": "week", "interval": 0}, "interval"),
        ({"every": "week", "day": 3}, "unexpected"),
        ({"dates": []}, "dates"),
        ({"dates": ["2027-02-30"]}, "dates"),
    ],
)
def test_bad_rules_name_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        Rule.parse(raw)


def test_end_before_start_and_bad_counts_are_refused() -> None:
    rule = Rule.parse({"every": "day"})
    with pytest.raises(InvalidInput):
        Plan(rule, date(2027, 1, 2), end=date(2027, 1, 1))
    with pytest.raises(InvalidInput):
        Plan(rule, date(2027, 1, 2), count=0)


def test_rule_json_round_trip() -> None:
    for raw in ({"every": "month", "day": 31, "interval": 1}, {"every": "week", "interval": 2},
                {"dates": ["2027-01-01"]}):  # fmt: skip
        assert Rule.parse(Rule.parse(raw).as_json()) == Rule.parse(raw)
