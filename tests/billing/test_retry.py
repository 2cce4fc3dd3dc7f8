"""Retries after a failed automatic charge: soft only, at the offsets, capped, then
dunning (docs/product.md §8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ivr.billing.retry import Attempt, Next, RetryPolicy, after_failure
from ivr.errors import InvalidInput

T0 = datetime(2027, 1, 5, 1, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def soft(at: datetime) -> Attempt:
    return Attempt(at, "soft")


def test_soft_declines_retry_at_plus_1_3_7_days_then_dunning() -> None:
    policy = RetryPolicy()
    cycle = [soft(T0)]
    expected = [T0 + DAY, T0 + 3 * DAY, T0 + 7 * DAY]
    for when in expected:
        d = after_failure(policy, cycle, [a.at for a in cycle], brand="visa", now=cycle[-1].at)
        assert (d.next, d.at) == (Next.retry, when)
        cycle.append(soft(when))
    d = after_failure(policy, cycle, [a.at for a in cycle], brand="visa", now=cycle[-1].at)
    assert d.next is Next.dunning
    assert len(cycle) == 4  # the first try + 3 retries


def test_a_hard_decline_goes_to_dunning_at_once() -> None:
    d = after_failure(RetryPolicy(), [Attempt(T0, "hard")], [T0], brand="visa", now=T0)
    assert (d.next, d.at) == (Next.dunning, None)


def test_merchant_offsets_and_attempts() -> None:
    policy = RetryPolicy.parse({"offsets_days": [2, 5], "max_attempts": 2})
    d = after_failure(policy, [soft(T0)], [T0], brand="visa", now=T0)
    assert d.at == T0 + 2 * DAY
    d = after_failure(policy, [soft(T0), soft(T0 + 2 * DAY)], [T0], brand="visa", now=T0)
    assert d.next is Next.dunning


def test_the_network_cap_turns_a_retry_into_dunning() -> None:
    history = [T0 - i * DAY for i in range(1, 15)]  # 14 attempts in the last 30 days
    d = after_failure(RetryPolicy(), [soft(T0)], [*history, T0], brand="visa", now=T0)
    assert d.next is Next.dunning
    assert "15" in d.reason
    old = [T0 - (40 + i) * DAY for i in range(20)]  # outside the window: no effect
    d = after_failure(RetryPolicy(), [soft(T0)], [*old, T0], brand="visa", now=T0)
    assert d.next is Next.retry


def test_a_retry_due_in_the_past_is_due_now() -> None:
    late = T0 + 10 * DAY
    d = after_failure(RetryPolicy(), [soft(T0)], [T0], brand="visa", now=late)
    assert d.at == late


@pytest.mark.parametrize(
    "raw",
    [{"offsets_days": [3, 1]}, {"offsets_days": [0]}, {"max_attempts": 9}, {"retry": 1}],
)
def test_bad_retry_settings_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        RetryPolicy.parse(raw)


def test_an_unclassified_decline_is_retried_once() -> None:
    """Words no table knows are soft (not a hard refusal), but retried once per cycle."""
    first = [Attempt(T0, "soft", "unclassified")]
    d = after_failure(RetryPolicy(), first, [T0], brand="visa", now=T0)
    assert d.next is Next.retry
    again = [*first, Attempt(T0 + timedelta(days=1), "soft", "unclassified")]
    d = after_failure(RetryPolicy(), again, [T0], brand="visa", now=T0 + timedelta(days=1))
    assert d.next is Next.dunning
    assert "unclassified" in d.reason
    known = [*first, Attempt(T0 + timedelta(days=1), "soft", "insufficient_funds")]
    d = after_failure(RetryPolicy(), known, [T0], brand="visa", now=T0 + timedelta(days=1))
    assert d.next is Next.retry
