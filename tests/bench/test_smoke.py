"""The benchmarks keep running (tiny sizes); their numbers come from scripts, not tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each runs a benchmark in a subprocess

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_dids_bench_prints_rates_for_both_databases(pg_factory: object) -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH / "dids.py"), "--ops", "20", "--concurrency", "1,4"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env={**os.environ, "ARSPAY_TEST_PG_URL": pg_factory.base_url},  # type: ignore[attr-defined]
    )
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    assert {(r[0], r[1]) for r in rows} == {
        ("sqlite", "1"),
        ("sqlite", "4"),
        ("postgresql", "1"),
        ("postgresql", "4"),
    }
    assert all(float(r[3]) > 0 for r in rows)


def test_api_bench_prints_rates_for_both_databases(pg_factory: object) -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH / "api.py"), "--requests", "20", "--concurrency", "4", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env={**os.environ, "ARSPAY_TEST_PG_URL": pg_factory.base_url},  # type: ignore[attr-defined]
    )
    rows = json.loads(out.stdout)["results"]
    assert {(r["database"], r["endpoint"]) for r in rows} == {
        (db, endpoint)
        for db in ("sqlite", "postgresql")
        for endpoint in ("GET /health", "POST /v1/payment-requests")
    }
    assert all(r["requests"] == 20 and r["errors"] == 0 and r["rps"] > 0 for r in rows)
    assert all(r["p99_ms"] >= r["p50_ms"] > 0 for r in rows)
