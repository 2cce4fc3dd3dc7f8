"""A circuit breaker per PG account, and a :class:`Gateway` guarded by one (issue #27,
failover).

The breaker is a small state machine::

    closed ──(policy.failures consecutive failures)──▶ open
    open ──(policy.open_s passed)──▶ half_open
    half_open ──(the one probe answered)──▶ closed
    half_open ──(the probe failed)──▶ open (for another open_s)

* ``closed``: every call goes. A failure adds one to the count, an answer resets it.
* ``open``: nothing is sent; :class:`GuardedGateway` raises
  :class:`~ivr.gateways.errors.CircuitOpen` (a ``GatewayUnavailable``: *not sent*, the same
  order id may be sent later) without touching the PG.
* ``half_open``: exactly one call at a time — the probe — goes; the others get
  ``CircuitOpen``. A probe that ends without a verdict (cancelled, a bug) frees the slot
  for the next call.

Any answer closes the breaker, also one to a call that began before it opened; any
failure while half-open (the probe's, or a late one's) opens it again. A failure that
ends while it is open only counts.

What counts (:func:`verdict`). A **failure** is an account that did not answer:
``GatewayUnavailable`` (connect refused, HTTP 429, and also ``retry_safe=False`` — a bad
URL or TLS error is the operator's fault, but the account is just as unusable, so it
counts), ``OutcomeUnknown`` (timeouts, resets, 5xx, garbled answers), ``TimeoutError``
(``asyncio.TimeoutError``), and ``AuthenticationFailed`` (its keys are refused: every
request will be). A **success** is any other answer from the PG, refusals included: a
charge result (approved or declined), ``CardDeclined``, ``CancelRefused``,
``GatewayRejected``, and ``DuplicateOrder`` (the PG answering "order id already used").
``CircuitOpen`` itself never counts, and neither does an exception that is not the
PG's (``InvalidInput``, a bug): those only free the probe slot.

Time is a monotonic ``now()`` for the state machine and a wall clock (UTC) for what the
console shows; :meth:`CircuitBreaker.on_clock` takes both from a
:class:`~ivr.clock.Clock`. One breaker belongs to one event loop (no locks: asyncio).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from ivr.clock import Clock
from ivr.gateways.config import GatewaySettings
from ivr.gateways.contract import (
    BillingKey,
    BillingKeyRequest,
    CancelRequest,
    CancelResult,
    ChargeRequest,
    Gateway,
    GatewayCharge,
    KeyedChargeRequest,
    OrderStatus,
)
from ivr.gateways.errors import (
    AuthenticationFailed,
    CircuitOpen,
    DuplicateOrder,
    GatewayError,
    GatewayUnavailable,
    OutcomeUnknown,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class BreakerState(StrEnum):
    closed = "closed"  # calls go
    open = "open"  # nothing is sent until open_s has passed
    half_open = "half_open"  # one probe call at a time goes


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failures: int = 5  # consecutive failures that open the breaker
    open_s: float = 30.0  # time open before one half-open probe is let through

    def __post_init__(self) -> None:
        if self.failures < 1 or not self.open_s > 0:
            raise ValueError("a breaker needs failures >= 1 and open_s > 0")

    @classmethod
    def from_settings(cls, gw: GatewaySettings) -> BreakerPolicy:
        return cls(failures=gw.breaker_failures, open_s=gw.breaker_open_s)


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """What the console shows of one breaker."""

    name: str  # the PG account
    state: BreakerState
    consecutive_failures: int
    opened_at: datetime | None  # UTC; when it last opened (None: closed)
    retry_at: datetime | None  # UTC; when it lets (let) the probe through (None: closed)
    probing: bool  # half_open with its probe in flight


class _Ticket:
    """One call let through by the breaker: the half-open probe is known by identity."""

    __slots__ = ()


_CLOSED = _Ticket()  # every call let through while closed


def _utc_now() -> datetime:
    return datetime.now(UTC)


def verdict(exc: BaseException) -> bool | None:
    """How a call that raised ``exc`` counts: ``True`` a failure of the account,
    ``False`` an answer from the PG (a success), ``None`` neither (see the module)."""
    if isinstance(exc, CircuitOpen):
        return None
    if isinstance(exc, GatewayUnavailable | TimeoutError | AuthenticationFailed):
        return True
    if isinstance(exc, OutcomeUnknown):  # DuplicateOrder is the PG answering
        return not isinstance(exc, DuplicateOrder)
    if isinstance(exc, GatewayError):  # declined, refused, rejected: answered
        return False
    return None


class CircuitBreaker:
    """The breaker of one PG account; see the module docstring."""

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy | None = None,
        now: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.name = name
        self.policy = policy or BreakerPolicy()
        self._now = now
        self._wall = wall
        self._state = BreakerState.closed
        self._failures = 0
        self._opened_mono = 0.0
        self._opened_at: datetime | None = None
        self._probe: _Ticket | None = None

    @classmethod
    def on_clock(cls, name: str, policy: BreakerPolicy | None, clock: Clock) -> CircuitBreaker:
        """A breaker whose time is ``clock`` (a FakeClock in tests)."""
        return cls(name, policy, now=lambda: clock.now().timestamp(), wall=clock.now)

    # --- state -------------------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        """The state now: an ``open`` breaker is ``half_open`` once ``open_s`` passed."""
        if (
            self._state is BreakerState.open
            and self._now() - self._opened_mono >= self.policy.open_s
        ):
            self._state = BreakerState.half_open
            self._probe = None
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def retry_at(self) -> datetime | None:
        """When the breaker lets (or let) its probe through; ``None`` while closed."""
        if self._opened_at is None:
            return None
        return self._opened_at + timedelta(seconds=self.policy.open_s)

    def snapshot(self) -> BreakerSnapshot:
        state = self.state
        return BreakerSnapshot(
            name=self.name,
            state=state,
            consecutive_failures=self._failures,
            opened_at=self._opened_at,
            retry_at=self.retry_at,
            probing=state is BreakerState.half_open and self._probe is not None,
        )

    # --- calls -------------------------------------------------------------------------
    def allow(self) -> bool:
        """Whether a call may go now (half-open: takes the probe slot). A caller that
        got ``True`` must end the call with :meth:`record_success`,
        :meth:`record_failure` or :meth:`release`; :meth:`guard` does all of that."""
        return self._admit() is not None

    def record_success(self) -> None:
        """The PG answered: the breaker closes and the count starts again."""
        if self._state is not BreakerState.closed:
            log.info("PG account %s: circuit breaker closed (the PG answered)", self.name)
        self._state = BreakerState.closed
        self._failures = 0
        self._opened_at = None
        self._probe = None

    def record_failure(self) -> None:
        """The account did not answer: counts; opens the breaker at the threshold, and
        re-opens it (for another ``open_s``) when half-open."""
        state = self.state
        self._failures += 1
        if state is BreakerState.half_open or (
            state is BreakerState.closed and self._failures >= self.policy.failures
        ):
            self._open()

    def release(self) -> None:
        """A call let through ended with no verdict (cancelled): free the probe slot."""
        self._probe = None

    def guard(self) -> Guard:
        """``with breaker.guard(): answer = await call()``: raises ``CircuitOpen`` when
        the call may not go, and records how the call ended (:func:`verdict`)."""
        return Guard(self)

    # --- internals ---------------------------------------------------------------------
    def _admit(self) -> _Ticket | None:
        state = self.state
        if state is BreakerState.closed:
            return _CLOSED
        if state is BreakerState.open or self._probe is not None:
            return None
        self._probe = _Ticket()
        return self._probe

    def _end(self, ticket: _Ticket, failed: bool | None) -> None:
        if failed is None:
            if ticket is self._probe:
                self._probe = None
        elif failed:
            self.record_failure()
        else:
            self.record_success()

    def _open(self) -> None:
        self._state = BreakerState.open
        self._opened_mono = self._now()
        self._opened_at = self._wall()
        self._probe = None
        log.warning(
            "PG account %s: circuit breaker open after %d consecutive failures; "
            "nothing is sent to it for %.0f s",
            self.name, self._failures, self.policy.open_s,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, {self.state.value}, failures={self._failures})"


class Guard:
    """One guarded call (:meth:`CircuitBreaker.guard`)."""

    __slots__ = ("_breaker", "_ticket")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._ticket: _Ticket | None = None

    def __enter__(self) -> None:
        breaker = self._breaker
        self._ticket = breaker._admit()
        if self._ticket is None:
            is_open = breaker.state is BreakerState.open  # else a probe is in flight
            raise CircuitOpen(breaker.name, retry_at=breaker.retry_at if is_open else None)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._ticket is not None:  # always, after __enter__ returned
            self._breaker._end(self._ticket, False if exc is None else verdict(exc))


class Meter(Protocol):
    """What counts and times a guarded gateway's requests
    (:class:`ivr.observability.gateways.GatewayMeter`)."""

    async def observe(self, operation: str, call: Callable[[], Awaitable[T]]) -> T: ...


class GuardedGateway:
    """``gateway`` behind ``breaker``: every call first asks the breaker (``CircuitOpen``
    without calling the PG when it says no) and tells it how the call ended. Answers and
    exceptions pass through unchanged; ``meter`` sees each call, the breaker's refusals
    included."""

    def __init__(
        self, gateway: Gateway, breaker: CircuitBreaker, meter: Meter | None = None
    ) -> None:
        self.gateway = gateway
        self.breaker = breaker
        self.meter = meter

    async def _call(self, call: Callable[[], Awaitable[T]], operation: str = "") -> T:
        if self.meter is not None:
            return await self.meter.observe(operation, lambda: self._guarded(call))
        return await self._guarded(call)

    async def _guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        with self.breaker.guard():
            return await call()

    async def register_billing_key(self, req: BillingKeyRequest) -> BillingKey:
        return await self._call(
            lambda: self.gateway.register_billing_key(req), "register_billing_key"
        )

    async def charge_billing_key(self, req: ChargeRequest) -> GatewayCharge:
        return await self._call(lambda: self.gateway.charge_billing_key(req), "charge_billing_key")

    async def keyed_charge(self, req: KeyedChargeRequest) -> GatewayCharge:
        return await self._call(lambda: self.gateway.keyed_charge(req), "keyed_charge")

    async def cancel(self, req: CancelRequest) -> CancelResult:
        return await self._call(lambda: self.gateway.cancel(req), "cancel")

    async def find(self, order_id: str) -> OrderStatus | None:
        return await self._call(lambda: self.gateway.find(order_id), "find")

    async def delete_billing_key(self, customer_uid: str, *, reason: str) -> bool:
        return await self._call(
            lambda: self.gateway.delete_billing_key(customer_uid, reason=reason),
            "delete_billing_key",
        )

    # --- the connection, when the inner gateway holds one --------------------------------
    async def aclose(self) -> None:
        close: Any = getattr(self.gateway, "aclose", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> Self:
        enter: Any = getattr(self.gateway, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        leave: Any = getattr(self.gateway, "__aexit__", None)
        if leave is not None:
            await leave(exc_type, exc, tb)
        else:
            await self.aclose()

    def __repr__(self) -> str:
        return f"GuardedGateway({self.gateway!r}, {self.breaker!r})"


def _check_protocol(guarded: GuardedGateway) -> Gateway:
    return guarded  # mypy proves GuardedGateway satisfies the Gateway protocol


__all__ = [
    "BreakerPolicy",
    "BreakerSnapshot",
    "BreakerState",
    "CircuitBreaker",
    "Guard",
    "GuardedGateway",
    "verdict",
]
