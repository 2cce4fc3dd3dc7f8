"""Every ordering of record / answer / failure a real PG produces, per endpoint.

A real PG is slow and flaky in more ways than "answers 500": it records a payment and
the answer is lost; it answers after the client gave up; it records *later* than the
client's lookup; it loses the request before recording. A payment engine is only
proven exactly-once if a test can produce each of these on purpose. The sandbox applies
one :class:`Ordering` per request of four endpoints (:class:`Endpoint`):

========================  =================================================================
``normal``                record, answer at once
``late``                  wait ``delay_ms`` *before recording* (a lookup meanwhile: not
                          found), then record and answer — to nobody if the client left
``slow_answer``           record at once, answer after ``delay_ms``
``slow_processing``       record the payment ``ready`` (in progress), finish it after
                          ``delay_ms``, then answer (charges only; others: ``late``)
``record_then_drop``      record, wait ``delay_ms``, cut the connection (no answer)
``drop_before_record``    wait ``delay_ms``, cut the connection; nothing recorded
``error_before``          HTTP 500; nothing recorded
``error_after``           record, then answer HTTP 500
========================  =================================================================

Rules come two ways: **by probability** (:class:`FaultSpec`, from configuration such as
``charge:late:0.1:3000`` — endpoint, ordering, probability, delay, or a delay range
``500-2500`` drawn per request, so some answers beat the client's timeout and some do
not) and **by deterministic
trigger** (:class:`Trigger`, posted to ``/sandbox/faults`` by a test: the next ``count``
requests of an endpoint, optionally only for one ``merchant_uid``/``customer_uid``).
Triggers are consulted first, in the order they were posted.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ivr.errors import ConfigError, InvalidInput


class Endpoint(StrEnum):
    charge = "charge"  # POST /subscribe/payments/again
    keyed = "keyed"  # POST /subscribe/payments/onetime
    billing_key = "billing_key"  # POST /subscribe/customers/{customer_uid}
    cancel = "cancel"  # POST /payments/cancel


class Ordering(StrEnum):
    normal = "normal"
    late = "late"
    slow_answer = "slow_answer"
    slow_processing = "slow_processing"
    record_then_drop = "record_then_drop"
    drop_before_record = "drop_before_record"
    error_before = "error_before"
    error_after = "error_after"

    @property
    def records(self) -> bool:
        return self not in (Ordering.drop_before_record, Ordering.error_before)


PAYMENT_ENDPOINTS = (Endpoint.charge, Endpoint.keyed)
ALL_ENDPOINTS = tuple(Endpoint)


@dataclass(frozen=True)
class Fault:
    """What happens to one request."""

    ordering: Ordering = Ordering.normal
    delay_ms: int = 0

    @property
    def delay_s(self) -> float:
        return self.delay_ms / 1000


NORMAL = Fault()


def _endpoints(text: str) -> tuple[Endpoint, ...]:
    if text == "*":
        return ALL_ENDPOINTS
    if text == "payments":
        return PAYMENT_ENDPOINTS
    try:
        return (Endpoint(text),)
    except ValueError:
        raise ConfigError(
            f"sandbox fault: unknown endpoint {text!r} "
            f"(one of {', '.join(Endpoint)}, 'payments' or '*')"
        ) from None


@dataclass(frozen=True)
class FaultSpec:
    """``ordering`` for a ``probability`` share of the requests of ``endpoints``."""

    endpoints: tuple[Endpoint, ...]
    ordering: Ordering
    probability: float
    delay_ms: int = 0
    delay_max_ms: int | None = None  # set: each request's delay is drawn from the range

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ConfigError("sandbox fault probability must be between 0 and 1")
        if self.delay_ms < 0:
            raise ConfigError("sandbox fault delay must be >= 0 ms")
        if self.delay_max_ms is not None and self.delay_max_ms < self.delay_ms:
            raise ConfigError("sandbox fault delay range must be low-high, low <= high")

    def delay(self, rng: random.Random) -> int:
        if self.delay_max_ms is None:
            return self.delay_ms
        return rng.randint(self.delay_ms, self.delay_max_ms)

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """``endpoint:ordering:probability[:delay_ms]``, e.g. ``charge:late:0.1:3000`` or
        ``charge:late:0.1:500-2500`` (a range); endpoint ``payments`` = charge and keyed,
        ``*`` = all four."""
        parts = text.strip().split(":")
        if len(parts) not in (3, 4):
            raise ConfigError(
                f"sandbox fault {text!r}: expected endpoint:ordering:probability[:delay_ms]"
            )
        try:
            ordering = Ordering(parts[1])
        except ValueError:
            raise ConfigError(
                f"sandbox fault {text!r}: unknown ordering (one of {', '.join(Ordering)})"
            ) from None
        try:
            probability = float(parts[2])
            low, _, high = (parts[3] if len(parts) == 4 else "0").partition("-")
            delay, delay_max = int(low), (int(high) if high else None)
        except ValueError:
            raise ConfigError(f"sandbox fault {text!r}: probability/delay not numbers") from None
        return cls(_endpoints(parts[0]), ordering, probability, delay, delay_max)


@dataclass
class Trigger:
    """The next ``count`` requests of ``endpoint`` (for ``match`` only, when set: a
    ``merchant_uid`` or ``customer_uid``) get ``ordering``."""

    id: int
    endpoint: Endpoint
    ordering: Ordering
    delay_ms: int = 0
    count: int = 1
    match: str | None = None

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "endpoint": self.endpoint.value, "ordering": self.ordering.value,
                "delay_ms": self.delay_ms, "count": self.count, "match": self.match}  # fmt: skip


def trigger_from(data: Mapping[str, Any], trigger_id: int) -> Trigger:
    """A trigger from a ``/sandbox/faults`` body; InvalidInput names what is wrong."""
    try:
        endpoint = Endpoint(str(data.get("endpoint")))
        ordering = Ordering(str(data.get("ordering")))
    except ValueError:
        raise InvalidInput(
            f"endpoint must be one of {', '.join(Endpoint)}; ordering one of {', '.join(Ordering)}"
        ) from None
    delay, count, match = data.get("delay_ms", 0), data.get("count", 1), data.get("match")
    if type(delay) is not int or delay < 0 or type(count) is not int or count < 1:
        raise InvalidInput("delay_ms must be an integer >= 0 and count an integer >= 1")
    if match is not None and (not isinstance(match, str) or not match):
        raise InvalidInput("match must be a non-empty string")
    return Trigger(trigger_id, endpoint, ordering, delay, count, match)


@dataclass
class FaultPlan:
    """The sandbox's fault rules: posted triggers first, then the configured specs."""

    specs: tuple[FaultSpec, ...]
    rng: random.Random
    triggers: list[Trigger] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, data: Mapping[str, Any]) -> Trigger:
        trigger = trigger_from(data, next(self._ids))
        self.triggers.append(trigger)
        return trigger

    def clear(self) -> None:
        self.triggers.clear()

    def draw(self, endpoint: Endpoint, *keys: str | None) -> Fault:
        """The fault for one request of ``endpoint`` about ``keys`` (its order id and/or
        customer uid); counted per ordering for the summary."""
        fault = self._draw(endpoint, {k for k in keys if k})
        if fault.ordering is not Ordering.normal:
            name = f"{endpoint.value}_{fault.ordering.value}"
            self.counts[name] = self.counts.get(name, 0) + 1
        return fault

    def _draw(self, endpoint: Endpoint, keys: set[str]) -> Fault:
        for trigger in self.triggers:
            if trigger.endpoint is endpoint and (trigger.match is None or trigger.match in keys):
                trigger.count -= 1
                if trigger.count == 0:
                    self.triggers.remove(trigger)
                return Fault(trigger.ordering, trigger.delay_ms)
        for spec in self.specs:
            hit = endpoint in spec.endpoints and spec.probability > 0
            if hit and self.rng.random() < spec.probability:
                return Fault(spec.ordering, spec.delay(self.rng))
        return NORMAL
