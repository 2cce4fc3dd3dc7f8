"""Label values stay words: a phone number, a card number or an id passed by mistake
as an outcome or an account becomes ``other``."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from ivr.observability.calls import CallMeter
from ivr.observability.registry import Metrics, account, word
from ivr.observability.scrape import Samples


@pytest.mark.parametrize("value", ["completed", "caller_hung_up", "rejected_busy", "pg2"])
def test_words_pass(value: str) -> None:
    assert word(value) == value


@pytest.mark.parametrize(
    "value", ["01012345678", "4111111111111111", "mer_01M9X", "Completed", "", None, "a" * 41,
              "paid_1234", "x-y"],
)  # fmt: skip
def test_anything_else_is_other(value: str | None) -> None:
    assert word(value) == "other"


def test_accounts() -> None:
    assert account(None) == "default"
    assert account("main-pg") == "main-pg"
    assert account("pg-01012345678") == "other"
    assert account("Bad Name") == "other"


def test_a_meter_moves_the_flow_and_counts_the_end_once() -> None:
    metrics = Metrics(process=False)
    ticks = iter([0.0, 1.0, 1.004, 30.0])
    meter = CallMeter(metrics, "agi", now=lambda: next(ticks))
    meter.flow("payment")
    meter.input_read()
    meter.prompt_requested()
    meter.prompt_requested()  # no input since: not a turnaround
    meter.end("completed")
    meter.end("error")  # already ended
    got = Samples.parse(generate_latest(metrics.registry).decode())
    assert got.value("arspay_calls_in_progress") == 0
    assert got.value("arspay_calls_total", path="agi", flow="payment", outcome="completed") == 1
    assert got.value("arspay_calls_total") == 1
    assert got.value("arspay_prompt_turnaround_seconds_count", path="agi") == 1
    assert got.value("arspay_prompt_turnaround_seconds_sum") == pytest.approx(0.004)
    assert got.value("arspay_call_duration_seconds_sum", flow="payment") == 30.0
