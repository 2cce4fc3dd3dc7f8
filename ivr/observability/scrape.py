"""Scrape ``/metrics`` and read it back: for tests (the in-process ones and the
real-Asterisk one) and for an operator's quick look.

    before = await scrape("http://127.0.0.1:8080/metrics")
    ...                                   # a call
    after = await scrape("http://127.0.0.1:8080/metrics")
    assert after.value("arspay_calls_total", flow="payment") > before.value(...)

Parsed with ``prometheus_client.parser``: a sample's name is as exposed (a counter
``arspay_calls`` is read as ``arspay_calls_total``).
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class Samples:
    samples: tuple[Sample, ...]

    @classmethod
    def parse(cls, text: str) -> Samples:
        return cls(
            tuple(s for family in text_string_to_metric_families(text) for s in family.samples)
        )

    def matching(self, name: str, **labels: str) -> list[Sample]:
        return [
            s for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]  # fmt: skip

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels``
        (0 when there are none)."""
        return sum(s.value for s in self.matching(name, **labels))

    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def label_values(self, label: str) -> set[str]:
        """Every value ``label`` takes in any sample (for cardinality checks)."""
        return {s.labels[label] for s in self.samples if label in s.labels}


async def scrape(url: str, *, token: str = "", timeout_s: float = 10.0) -> Samples:
    """GET ``url`` (``api.metrics_token`` as a bearer token when set) and parse it."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, headers=headers) as resp,
    ):
        resp.raise_for_status()
        return Samples.parse(await resp.text())
