"""FastAGI authentication on a real Asterisk (issue #26, deliverable 5).

The rendered dialplan passes the deployment's secret as the first AGI argument
(``agi_arg_1``). An engine expecting another secret closes the connection before it
sends a single command: the call is never answered, nothing is played, no flow runs.
And the secret stays out of Asterisk's log even when Asterisk cannot reach the engine
and logs a warning about the AGI URL — the reason it is an argument, not in the URL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ivr.engine import Engine, running
from ivr.runtime import build
from ivr.settings import load_settings
from ivr.store import migrate
from ivr.store.db import Database
from ivr.store.tables import CallSession
from ivr.telephony import credentials
from ivr.telephony.session_log import LoggedCall
from ivr.testing.asterisk import Asterisk
from ivr.testing.sipp import SippCall, run_calls

from .conftest import CREDENTIALS_FILE

pytestmark = pytest.mark.anyio

DID = "05051234567"
CALLER = "01099998888"
AGI = {"X-Arspay-Endpoint": "sipp-agi"}
# Asterisk's Hangup() on a channel nobody answered: PJSIP declines the INVITE.
NOT_ANSWERED = 603
WRONG = "not-the-secret-asterisk-was-given"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith("ARSPAY_")}
    env.pop("ARSPAY_DATABASE_URL", None)
    return env | {
        "ARSPAY_CONFIG": "/nonexistent.toml",
        "ARSPAY_PATHS_VAR_DIR": str(tmp_path / "var"),
        **extra,
    }


async def test_a_fastagi_connection_with_a_wrong_secret_plays_nothing_and_runs_no_flow(
    asterisk: Asterisk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(env=_env(tmp_path, ARSPAY_ASTERISK_AGI_SECRET=WRONG))
    rendered = credentials.read_file(CREDENTIALS_FILE)["agi_secret"]
    assert rendered != WRONG
    db = Database(settings.database_url)
    await migrate.upgrade(db)
    services = build(settings, db=db)
    ran: list[str] = []

    async def flow(call: LoggedCall) -> str:
        ran.append(call.call_id)
        await call.answer()
        await call.play(["beep"], barge_in=False)
        return "ran"

    engine = Engine(services, flow, ari=False)  # FastAGI only, expecting another secret
    try:
        with caplog.at_level(logging.WARNING, logger="ivr.telephony.agi"):
            async with running(engine):
                call = SippCall(did=DID, caller_id=CALLER, headers=AGI,
                                expect_status=NOT_ANSWERED)  # fmt: skip
                [result] = await run_calls([call], workdir=tmp_path, timeout_s=30)
                assert engine.agi_server is not None
                refused = engine.agi_server.refused
        assert result.ok, result.errors  # declined, never answered: no audio at all
        assert refused == 1
        assert ran == []
        await engine.session_log.flush()
        async with db.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(CallSession)) == 0
        assert "FastAGI connection refused" in caplog.text
        assert rendered not in caplog.text  # what Asterisk presented is not logged
        assert WRONG not in caplog.text
    finally:
        await services.close()


async def test_the_agi_secret_stays_out_of_asterisks_log_when_the_engine_is_down(
    asterisk: Asterisk, tmp_path: Path
) -> None:
    """No engine listens: Asterisk logs a WARNING naming the AGI URL it could not reach
    (logger.conf keeps warnings) — and the secret, an argument, is not in it."""
    creds = credentials.read_file(CREDENTIALS_FILE)
    port = load_settings(env=_env(tmp_path)).asterisk.agi_port
    messages = asterisk.log_dir / "messages"
    start = messages.stat().st_size if messages.exists() else 0
    call = SippCall(did=DID, caller_id=CALLER, headers=AGI, expect_status=NOT_ANSWERED)
    [result] = await run_calls([call], workdir=tmp_path, timeout_s=30)
    assert result.ok, result.errors
    url = f"agi://127.0.0.1:{port}/arspay"
    deadline = time.monotonic() + 10
    while True:
        with messages.open("rb") as fh:
            fh.seek(start)
            new = fh.read().decode(errors="replace")
        if url in new or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert url in new, f"Asterisk did not log the failed FastAGI connection: {new[-2000:]}"
    everything = "\n".join(
        p.read_text(errors="replace") for p in asterisk.log_dir.rglob("*") if p.is_file()
    )
    assert creds["agi_secret"] not in everything
    assert creds["ari_password"] not in everything
