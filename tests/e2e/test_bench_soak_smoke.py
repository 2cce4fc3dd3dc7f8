"""``bench/soak.py`` still runs: a dozen calls through its whole stack (the bench's own
Asterisk, the engine process, the sandbox PG, SIPp) with its checks.

The soak is a benchmark, run by ``scripts/bench``, not by the suite; it reuses
``bench/ivr_load.py``'s helpers, and a change there once broke it unnoticed (a new
``run_sipp`` argument). This small run keeps it honest; the 1,000-call figures stay in
``bench/results/soak.*``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.testing.asterisk import Asterisk

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_a_small_soak_passes_its_own_checks(asterisk: Asterisk, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSPAY_")}
    out = subprocess.run(
        [sys.executable, "bench/soak.py", "--calls", "12", "--seed", "3", "--out", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "problems: none" in out.stdout
    result = json.loads((tmp_path / "soak.json").read_text())
    assert result["sipp"]["successful"] == 12
    assert result["sipp"]["failed"] == 0
    db = result["db"]
    assert db["call_sessions"] == 12
    assert db["orphan_sessions"] == 0
    assert db["requests_in_call"] == 0
    assert db["vault_records_without_card"] == 0
    assert db["cards_without_vault_record"] == 0
