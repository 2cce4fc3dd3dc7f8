"""Issue #30 item 1 on the real Asterisk 22: ``/metrics``, served over HTTP by the API,
scraped before, during and after a real payment call (SIPp -> Asterisk -> ARI -> engine
-> sandbox PG): the in-progress gauge shows the call while it lasts, and the call, prompt
turnaround, PG request and vault counters move by what the call did."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr.api.deps import ApiDeps
from ivr.domain.states import CallRequestKind
from ivr.observability.scrape import Samples, scrape
from ivr.settings import load_settings
from ivr.testing.asterisk import Asterisk
from ivr.testing.sipp import SippCall, start_call
from ivr.web.app import create_app
from tests.stack import serving

from .test_calls import BIRTH, CARD, MOBILE, Calls, Dialogue, open_calls

pytestmark = pytest.mark.anyio

TOKEN = "metrics-token-for-the-e2e-test"


@pytest.fixture
async def served(
    asterisk: Asterisk, prompts_dir: Path, tmp_path: Path
) -> AsyncIterator[tuple[Calls, str]]:
    async with open_calls(prompts_dir, tmp_path, ARSPAY_API_METRICS_TOKEN=TOKEN) as calls:
        api = load_settings(env={"ARSPAY_CONFIG": "/nonexistent.toml"}).api
        app = create_app(ApiDeps.from_runtime(calls.runtime))
        async with serving(app, api) as url:
            yield calls, url + "/metrics"


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


async def test_metrics_move_around_a_real_payment_call(served: tuple[Calls, str]) -> None:
    calls, url = served
    await calls.register_directly(CARD)
    req = await calls.request(CallRequestKind.payment, amount=30_000)
    before = await scrape(url, token=TOKEN)
    assert before.value("arspay_ari_connected") == 1
    assert before.value("arspay_calls_in_progress", path="ari") == 0

    dialogue = (
        Dialogue()
        .at("pay.card_choice", "1")
        .at("pay.verify_birth", BIRTH)
        .at("pay.confirm.lump_sum", "1")
    )
    call = SippCall(did=req.did, caller_id=MOBILE, script=dialogue.script(),
                    headers=dialogue.headers)  # fmt: skip
    async with start_call(call, workdir=calls.workdir, timeout_s=180) as handle:
        during: Samples | None = None
        for signal, prompt_id in dialogue.waits:
            await calls.harness.wait_for_prompt(prompt_id, timeout_s=45)
            if prompt_id == "pay.confirm.lump_sum":  # mid-call: the payer is on the line
                during = await scrape(url, token=TOKEN)
            await handle.release(signal)
        result = await handle.wait()
    assert result.ok, result.errors
    [session] = await calls.harness.wait_sessions_closed(1)
    assert session.outcome == "completed"
    assert during is not None
    assert during.value("arspay_calls_in_progress", path="ari", flow="payment") == 1

    after = await scrape(url, token=TOKEN)
    assert after.value("arspay_calls_in_progress", path="ari") == 0
    done = {"path": "ari", "flow": "payment", "outcome": "completed"}
    assert moved(before, after, "arspay_calls_total", **done) == 1
    assert moved(before, after, "arspay_call_duration_seconds_count", path="ari") == 1
    # every keyed answer was followed by the engine's next prompt: 3 inputs, 3 turnarounds
    turnarounds = moved(before, after, "arspay_prompt_turnaround_seconds_count", path="ari")
    assert turnarounds >= 3
    charged = {"operation": "charge_billing_key", "outcome": "ok"}
    assert moved(before, after, "arspay_pg_requests_total", **charged) == 1
    assert moved(before, after, "arspay_vault_operations_total", operation="verify_birth") == 1
    assert moved(before, after, "arspay_declines_total") == 0
    # nothing of the call in any label: no phone number, no card digits
    text = " ".join(f"{s.name}{sorted(s.labels.items())}" for s in after.samples)
    for needle in (MOBILE, CARD, req.did):
        assert needle not in text
