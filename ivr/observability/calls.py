"""One call's metrics: in progress by path and flow, its outcome and length, and the
engine's share of each prompt turnaround.

The engine opens a :class:`CallMeter` per call (:meth:`CallMeter.start`) and hands it to
the :class:`~ivr.telephony.session_log.LoggedCall` every flow operation passes: the
call router names the flow once the call is admitted (:meth:`CallMeter.flow`), the
logged call marks each input read and each prompt requested, and the engine ends it
with the outcome word. Nothing about the caller is kept: no number, no digit.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ivr.observability.registry import Metrics, word

ADMITTING = "admitting"  # the flow before the call is admitted (or rejected)
FLOWS = frozenset({ADMITTING, "registration", "payment", "rejected"})
PATHS = frozenset({"ari", "agi"})


class CallMeter:
    def __init__(
        self, metrics: Metrics, path: str, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.metrics = metrics
        self.path = path if path in PATHS else "other"
        self._now = now
        self._flow = ADMITTING
        self._started = now()
        self._input_at: float | None = None
        self._ended = False
        metrics.calls_in_progress.labels(self.path, self._flow).inc()

    @classmethod
    def start(cls, metrics: Metrics, path: str) -> CallMeter:
        return cls(metrics, path)

    @property
    def current_flow(self) -> str:
        return self._flow

    def flow(self, name: str) -> None:
        """The call is now in flow ``name`` (registration, payment, rejected)."""
        name = name if name in FLOWS else "other"
        if name == self._flow or self._ended:
            return
        gauge = self.metrics.calls_in_progress
        gauge.labels(self.path, self._flow).dec()
        gauge.labels(self.path, name).inc()
        self._flow = name

    def input_read(self) -> None:
        """A collect ended: the turnaround clock starts."""
        self._input_at = self._now()

    def prompt_requested(self) -> None:
        """A prompt is being asked for: the turnaround since the last input ends."""
        if self._input_at is not None:
            self.metrics.turnaround.labels(self.path).observe(self._now() - self._input_at)
            self._input_at = None

    def end(self, outcome: str | None) -> None:
        """The call ended with ``outcome`` (a session outcome word; ``rejected:<why>``
        counts as flow ``rejected``, outcome ``<why>``)."""
        if self._ended:
            return
        text = outcome or "ended"
        if text.startswith("rejected:"):
            self.flow("rejected")
            text = text.removeprefix("rejected:")
        self._ended = True
        m = self.metrics
        m.calls_in_progress.labels(self.path, self._flow).dec()
        m.calls.labels(self.path, self._flow, word(text)).inc()
        m.call_seconds.labels(self.path, self._flow).observe(self._now() - self._started)
