"""Every state machine: allowed transitions pass, every other pair is refused."""

from __future__ import annotations

import itertools

import pytest

from ivr.domain.states import (
    ATTEMPT,
    CALL_REQUEST,
    MACHINES,
    PAYMENT_INTENT,
    AttemptStatus,
    CallRequestStatus,
    PaymentIntentStatus,
    StateMachine,
)
from ivr.errors import InvalidTransition

ALL_PAIRS = [
    pytest.param(m, a, b, id=f"{m.name}:{a}->{b}")
    for m in MACHINES
    for a, b in itertools.product(list(m.states), repeat=2)
]


@pytest.mark.parametrize(("machine", "current", "target"), ALL_PAIRS)
def test_given_any_pair_when_checked_then_only_table_entries_pass(
    machine: StateMachine,
    current: str,
    target: str,  # type: ignore[type-arg]
) -> None:
    allowed = target in machine.transitions.get(current, frozenset())
    if allowed:
        assert machine.check(current, target) == target
    else:
        with pytest.raises(InvalidTransition) as err:
            machine.check(current, target)
        assert err.value.error_id == "invalid-state-transition"
        assert machine.name in str(err.value)


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_every_state_is_reachable_from_the_initial_state(machine: StateMachine) -> None:  # type: ignore[type-arg]
    seen, frontier = {machine.initial}, [machine.initial]
    while frontier:
        for nxt in machine.transitions.get(frontier.pop(), frozenset()):
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(machine.states)


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_terminal_states_have_no_way_out(machine: StateMachine) -> None:  # type: ignore[type-arg]
    for state in machine.states:
        assert machine.is_terminal(state) == (not machine.transitions.get(state))


def test_money_machines_match_the_product_spec() -> None:
    # docs/product.md §6: pending -> succeeded | failed | unknown; unknown resolved by lookup
    assert ATTEMPT.is_terminal(AttemptStatus.succeeded)
    assert ATTEMPT.is_terminal(AttemptStatus.failed)
    assert not ATTEMPT.is_terminal(AttemptStatus.unknown)
    assert not ATTEMPT.can(AttemptStatus.failed, AttemptStatus.pending)  # never re-send
    assert PAYMENT_INTENT.can(PaymentIntentStatus.succeeded, PaymentIntentStatus.refunded)
    assert not PAYMENT_INTENT.can(PaymentIntentStatus.refunded, PaymentIntentStatus.succeeded)
    # docs/product.md §3 end states
    for end in ("completed", "declined", "failed", "expired", "cancelled"):
        assert CALL_REQUEST.is_terminal(CallRequestStatus(end))


def test_unknown_status_string_is_rejected() -> None:
    with pytest.raises(ValueError, match="not a valid"):
        ATTEMPT.check("pending", "charged")
