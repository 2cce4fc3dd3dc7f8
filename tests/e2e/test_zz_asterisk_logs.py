"""Runs after the other e2e tests (file order): Asterisk's own logs hold none of the
DTMF sequences sent during this run (logger.conf keeps verbose/debug/DTMF out), nor the
ARI password or the FastAGI secret the run used."""

from __future__ import annotations

import pytest

from ivr.telephony import credentials
from ivr.testing.asterisk import Asterisk

from .conftest import CREDENTIALS_FILE, SENT_DIGITS


def test_asterisk_logs_contain_no_digits_sent(asterisk: Asterisk) -> None:
    if not SENT_DIGITS:
        pytest.fail("no e2e call sent digits in this run: run the whole tests/e2e directory")
    files = [p for p in asterisk.log_dir.rglob("*") if p.is_file()]
    assert files, f"no Asterisk log files under {asterisk.log_dir}"
    # Long sequences only: 4-digit ones could appear by chance in timestamps and ids.
    needles = {d for d in SENT_DIGITS if len(d) >= 5}
    needles |= {d.rstrip("#") for d in needles}
    secrets = credentials.read_file(CREDENTIALS_FILE)
    for path in files:
        text = path.read_text(errors="replace")
        for needle in needles:
            assert needle not in text, f"{path.name} contains DTMF sent in a test"
        assert "DTMF" not in text, f"{path.name} logs DTMF events"
        for name, secret in secrets.items():
            assert secret not in text, f"{path.name} contains the {name}"
