"""Every metric the engine exports, defined once, in a registry of its own.

:class:`Metrics` builds a fresh :class:`~prometheus_client.CollectorRegistry` (never the
library's global ``REGISTRY``): each runtime owns one, so a test can build several
runtimes in one process and read each one's numbers apart. The names, labels and
meaning of each metric are in docs/operating.md; the rules for labels:

* no card digits, phone numbers, DIDs, order ids, request ids or merchant ids — a label
  value is a word from a closed set (path, flow, outcome, operation, reason, queue,
  state) or a PG account id (operator-made: a handful per deployment);
* outcome words come from the code, never from input, and are still passed through
  :func:`word` (a lower-case letter, then ``[a-z0-9_]``, at most 40 characters, no
  four digits in a row; ``other`` otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from ivr import __version__

NS = "arspay"

# Seconds. The engine's share of a prompt turnaround is a few ms; a PG call 50 ms-30 s.
TURNAROUND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PG_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0)
VAULT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CALL_BUCKETS = (5.0, 15.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)

_WORD = re.compile(r"[a-z][a-z0-9_]{0,39}")
_DIGITS = re.compile(r"\d{4}")  # no label holds a run of digits (a number, a card)
_ACCOUNT = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # PG account ids (ivr/pg_accounts/model.py)


def word(value: str | None, default: str = "other") -> str:
    """``value`` when it is a bounded label word, else ``default``."""
    if value and _WORD.fullmatch(value) and not _DIGITS.search(value):
        return value
    return default


def account(value: str | None) -> str:
    """A PG account id as a label (``default`` for none, ``other`` if it is not one)."""
    if not value:
        return "default"
    ok = _ACCOUNT.fullmatch(value) and not _DIGITS.search(value)
    return value if ok else "other"


@dataclass(eq=False)
class Metrics:
    """The instruments; ``registry`` is this runtime's (pass it to the exposition)."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry())
    process: bool = True  # also the process and Python collectors (CPU, memory, fds, GC)

    def __post_init__(self) -> None:
        r = self.registry
        if self.process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        info = Gauge(f"{NS}_build_info", "arspay version (value 1)", ["version"], registry=r)
        info.labels(__version__).set(1)

        # --- calls ------------------------------------------------------------------
        self.calls_in_progress = Gauge(
            f"{NS}_calls_in_progress",
            "calls being handled now, by path (ari, agi, other) and flow (admitting, "
            "registration, payment, rejected)",
            ["path", "flow"],
            registry=r,
        )
        self.calls = Counter(
            f"{NS}_calls",
            "calls ended, by path, flow and outcome word",
            ["path", "flow", "outcome"],
            registry=r,
        )
        self.call_seconds = Histogram(
            f"{NS}_call_duration_seconds",
            "how long calls lasted in the engine, by path and flow",
            ["path", "flow"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.turnaround = Histogram(
            f"{NS}_prompt_turnaround_seconds",
            "the engine's share of a prompt turnaround: an input read (collect ended) to "
            "the next prompt requested, by path",
            ["path"],
            buckets=TURNAROUND_BUCKETS,
            registry=r,
        )
        self.ari_connected = Gauge(
            f"{NS}_ari_connected", "1 while the ARI WebSocket is up (0: down)", registry=r
        )
        self.ari_connects = Counter(
            f"{NS}_ari_connects", "times the ARI WebSocket came up", registry=r
        )

        # --- PG -----------------------------------------------------------------------
        self.pg_requests = Counter(
            f"{NS}_pg_requests",
            "requests to a PG account, by account, operation and outcome (ok, declined, "
            "refused, unavailable, unknown, duplicate, auth_failed, circuit_open, error)",
            ["account", "operation", "outcome"],
            registry=r,
        )
        self.pg_seconds = Histogram(
            f"{NS}_pg_request_duration_seconds",
            "PG request latency by account and operation (requests the breaker stopped "
            "are not observed)",
            ["account", "operation"],
            buckets=PG_BUCKETS,
            registry=r,
        )
        self.declines = Counter(
            f"{NS}_declines",
            "card declines by stage (registration, payment), account, normalized reason "
            "and kind (soft, hard)",
            ["stage", "account", "reason", "kind"],
            registry=r,
        )
        self.breaker_state = Gauge(
            f"{NS}_pg_breaker_state",
            "each PG account's circuit breaker: 1 for its current state, 0 for the others",
            ["account", "state"],
            registry=r,
        )

        # --- DID pool -----------------------------------------------------------------
        self.did_numbers = Gauge(
            f"{NS}_did_pool_numbers", "DIDs in the pool by status", ["status"], registry=r
        )
        self.did_leases = Gauge(
            f"{NS}_did_pool_active_leases", "active (DID, mobile) leases", registry=r
        )
        self.did_mobiles = Gauge(
            f"{NS}_did_pool_mobiles", "mobiles holding at least one active lease", registry=r
        )
        self.did_utilisation = Gauge(
            f"{NS}_did_pool_max_mobile_utilisation",
            "the busiest mobile's share of the active DIDs (leased to it or cooling down "
            "for it); 1 means that mobile can get no DID now",
            registry=r,
        )
        self.did_exhausted = Counter(
            f"{NS}_did_pool_exhausted",
            "lease attempts refused because no DID was free for the mobile",
            registry=r,
        )

        # --- queues -------------------------------------------------------------------
        self.queue_depth = Gauge(
            f"{NS}_queue_depth",
            "items waiting or in progress, by queue (jobs, sms, webhooks, notices)",
            ["queue"],
            registry=r,
        )
        self.queue_oldest = Gauge(
            f"{NS}_queue_oldest_age_seconds",
            "age of the oldest item that is due and not done, by queue (0: none)",
            ["queue"],
            registry=r,
        )
        self.queue_dead = Gauge(
            f"{NS}_queue_dead",
            "items given up on (dead jobs, failed SMS and webhook deliveries), by queue",
            ["queue"],
            registry=r,
        )

        # --- vault --------------------------------------------------------------------
        self.vault_ops = Counter(
            f"{NS}_vault_operations",
            "vault operations by operation and outcome (ok, declined, pg_down, not_sent, "
            "unknown, unavailable, error)",
            ["operation", "outcome"],
            registry=r,
        )
        self.vault_seconds = Histogram(
            f"{NS}_vault_operation_duration_seconds",
            "vault operation latency by operation (forwarding ones include the PG call)",
            ["operation"],
            buckets=VAULT_BUCKETS,
            registry=r,
        )

        # --- readiness (set by /ready and by every scrape) ----------------------------
        self.dependency_up = Gauge(
            f"{NS}_dependency_up",
            "1 when the dependency answered its readiness check (database, vault, engine, ari)",
            ["dependency"],
            registry=r,
        )
        self.ready = Gauge(
            f"{NS}_ready",
            "1 ready, 0.5 degraded (a PG breaker not closed), 0 not ready",
            registry=r,
        )
        self.scrape_errors = Counter(
            f"{NS}_metrics_sample_errors",
            "scrapes whose database sampling failed (the gauges kept their last values)",
            registry=r,
        )
