"""``/metrics`` scraped over HTTP around calls driven through the engine's handler on a
FakeCall (the real flows, store, vault and sandbox PG): the counters move by what the
calls did, and no label carries a number, an id or a card digit."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from ivr.domain.states import CallRequestKind
from ivr.observability.scrape import Samples
from ivr.telephony.ari import CONNECTED
from ivr.telephony.ari_app import AriApp
from ivr.telephony.fake import Press, Silence
from tests.flows.test_flow_registration import BIRTH, card_keys
from tests.telephony.test_ari_app import ScriptedAri, start

from .conftest import Ops

pytestmark = pytest.mark.anyio

VERIFY = [Press(BIRTH), Silence()]
DECLINED_CARD = "4000000000009995"  # the sandbox declines it: insufficient funds


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


async def test_a_registration_and_a_payment_move_the_call_pg_and_vault_metrics(ops: Ops) -> None:
    st = ops.stack
    before = await ops.metrics()

    await st.request(CallRequestKind.registration)
    outcome, _ = await st.call([Press("1"), *card_keys()])
    assert outcome == "completed"
    mid = await ops.metrics()
    reg = {"path": "other", "flow": "registration"}
    assert delta(mid, before, "arspay_calls_total", **reg, outcome="completed") == 1
    assert mid.value("arspay_calls_in_progress", path="other") == 0
    assert delta(mid, before, "arspay_call_duration_seconds_count", **reg) == 1
    # every input read was followed by a prompt: a handful of turnarounds per call
    assert delta(mid, before, "arspay_prompt_turnaround_seconds_count", path="other") >= 5
    for op in ("tokenize", "issue_billing_key"):
        ok = {"operation": op, "outcome": "ok"}
        assert delta(mid, before, "arspay_vault_operations_total", **ok) == 1, op
        assert delta(mid, before, "arspay_vault_operation_duration_seconds_count",
                     operation=op) == 1  # fmt: skip

    await st.request(CallRequestKind.payment, amount=30_000)
    outcome, _ = await st.call([Press("1"), *VERIFY, Press("1")])
    assert outcome == "completed"
    after = await ops.metrics()
    pay = {"path": "other", "flow": "payment"}
    assert delta(after, mid, "arspay_calls_total", **pay, outcome="completed") == 1
    charge = {"account": "default", "operation": "charge_billing_key"}
    assert delta(after, mid, "arspay_pg_requests_total", **charge, outcome="ok") == 1
    assert delta(after, mid, "arspay_pg_request_duration_seconds_count", **charge) == 1
    assert after.value("arspay_pg_request_duration_seconds_sum", **charge) > 0
    assert after.value("arspay_pg_breaker_state", account="default", state="closed") == 1
    assert after.value("arspay_pg_breaker_state", account="default", state="open") == 0
    no_pii(after)


async def test_a_declined_card_is_counted_by_reason(ops: Ops) -> None:
    st = ops.stack
    before = await ops.metrics()
    await st.request(CallRequestKind.payment, amount=10_000)
    script = [Press("1"), *card_keys(DECLINED_CARD), Press("2"), Press("1"), Press("3")]
    outcome, _ = await st.call(script)
    assert outcome == "payment_failed"
    after = await ops.metrics()
    decline = {"stage": "payment", "account": "default", "reason": "insufficient_funds"}
    assert delta(after, before, "arspay_declines_total", **decline, kind="soft") == 1
    assert delta(after, before, "arspay_declines_total") == 1  # counted once, in one place
    # the card is registered first (a billing key), then charged: the PG declines that
    charge = {"account": "default", "operation": "charge_billing_key", "outcome": "declined"}
    assert delta(after, before, "arspay_pg_requests_total", **charge) == 1
    flow = {"path": "other", "flow": "payment", "outcome": "payment_failed"}
    assert delta(after, before, "arspay_calls_total", **flow) == 1
    no_pii(after)


async def test_a_call_to_a_number_without_a_lease_counts_as_rejected(ops: Ops) -> None:
    before = await ops.metrics()
    outcome, _ = await ops.stack.call([Press("1")], did="05059999999")
    assert outcome is not None
    assert outcome.startswith("rejected:")
    after = await ops.metrics()
    reason = outcome.removeprefix("rejected:")
    rejected = {"path": "other", "flow": "rejected", "outcome": reason}
    assert delta(after, before, "arspay_calls_total", **rejected) == 1
    assert after.value("arspay_calls_in_progress") == 0


async def test_metrics_need_the_token_when_one_is_set(ops: Ops) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(ops.url + "/metrics") as resp:
            assert resp.status == 401
        wrong = {"Authorization": "Bearer nope"}
        async with session.get(ops.url + "/metrics", headers=wrong) as resp:
            assert resp.status == 401
        async with session.get(ops.url + "/health") as resp:  # liveness stays open
            assert resp.status == 200
    assert "arspay_build_info" in (await ops.metrics()).names()


_LONG_DIGITS = re.compile(r"\d{6,}")


def no_pii(samples: Samples) -> None:
    """No label value holds a run of 6+ digits (a card, a phone number, a DID) or an
    engine id (merchant, customer, request, payment: ``prefix_…``)."""
    for s in samples.samples:
        for key, value in s.labels.items():
            assert not _LONG_DIGITS.search(value), (s.name, key)
            assert not re.match(r"(mer|cus|creq|pi|pa|card|cses|lse)_", value), (s.name, key)


async def test_a_call_over_ari_counts_under_its_path(ops: Ops) -> None:
    """The engine's own ARI app on a scripted ARI connection: a call to a number with
    no lease is answered, told why, and hangs up — path ``ari``, flow ``rejected``."""
    rt = ops.stack.runtime
    engine = rt.engine(ari=True, agi=False, scheduler=False)
    ari = ScriptedAri()
    engine.ari_app = app = AriApp(ari, engine._handle_ari, on_link=engine._ari_link)  # type: ignore[arg-type]
    log_task = asyncio.create_task(engine.session_log.run())
    task = asyncio.create_task(app.run())
    try:
        ari.queue.put_nowait(CONNECTED)
        await asyncio.wait_for(app.connected.wait(), 2)
        before = await ops.metrics()
        event = start("ch-ari-1")
        event["channel"]["dialplan"]["exten"] = "05059999999"
        ari.send(event)
        for _ in range(200):  # the rejection prompt is playing: the caller hangs up
            if any(c[0] == "play" for c in ari.calls):
                break
            await asyncio.sleep(0.01)
        during = await ops.metrics()
        assert during.value("arspay_calls_in_progress", path="ari", flow="rejected") == 1
        ari.send({"type": "StasisEnd", "channel": {"id": "ch-ari-1"}})
        for _ in range(200):
            if not app.calls:
                break
            await asyncio.sleep(0.01)
        after = await ops.metrics()
        assert delta(after, before, "arspay_calls_total", path="ari", flow="rejected") == 1
        assert after.value("arspay_calls_in_progress", path="ari") == 0
    finally:
        task.cancel()
        log_task.cancel()
        await asyncio.gather(task, log_task, return_exceptions=True)
