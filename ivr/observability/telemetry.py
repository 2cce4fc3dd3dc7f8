"""One runtime's telemetry: its metrics, the readiness checks and the scrape-time
sampler, built once by :func:`ivr.runtime.open_runtime` and served by the API
(``/metrics``, ``/ready``: ivr/api/probes.py)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ivr.observability.readiness import Readiness
from ivr.observability.registry import Metrics
from ivr.observability.sampler import Sampler

CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class Telemetry:
    metrics: Metrics
    readiness: Readiness
    sampler: Sampler

    async def exposition(self) -> bytes:
        """The Prometheus text format of this runtime's registry, gauges sampled now."""
        await self.sampler.sample()
        return generate_latest(self.metrics.registry)
