"""The engine keeps signed checkpoints of its evidence: the consent chain always, the
vault audit log when the vault runs in the engine (`vault serve` keeps its own)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from ivr.consent.keys import checkpoint_dir
from ivr.consent.ledger import ConsentInput, PlayedPrompt
from tests.vault.vault_helpers import random_card
from vault.evidence import Checkpoint
from vault.factory import audit_checkpoints

from .conftest import Stack

pytestmark = pytest.mark.anyio


def _newest(where: Path, pattern: str) -> Checkpoint | None:
    found = sorted(where.glob(pattern))
    return Checkpoint.parse(found[-1].read_bytes()) if found else None


async def first_file(
    worker: Callable[[], Coroutine[Any, Any, None]], where: Path, pattern: str
) -> Checkpoint:
    task = asyncio.create_task(worker())
    try:
        for _ in range(300):
            if found := await asyncio.to_thread(_newest, where, pattern):
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {pattern} in {where}")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_engine_writes_consent_and_vault_audit_checkpoints(stack: Stack) -> None:
    rt = stack.runtime
    workers = rt.engine(ari=False, agi=False).workers
    assert {"consent-checkpoints", "vault-audit-checkpoints"} <= set(workers)
    now = stack.clock.now()
    await rt.services.consent.append(
        ConsentInput(
            stack.merchant_id,
            "creq_1",
            "registration_consent",
            "05051110001",
            "01012345678",
            "fake-1",
            now,
            now,
            (PlayedPrompt("reg.consent", "a" * 64),),
            "1",
            {"product": "임플란트 치료"},
        )
    )
    await rt.vault.tokenize(stack.merchant_id, random_card(1), who="engine:test")
    settings = rt.services.settings
    consent = await first_file(rt.consent_checkpoints, checkpoint_dir(settings).path,
                               "consent-*.json")  # fmt: skip
    assert (consent.ledger, consent.seq) == ("consent", 1)
    audit = await first_file(rt.vault_audit_checkpoints, audit_checkpoints(settings).path,
                             "vault-audit-*.json")  # fmt: skip
    assert (audit.ledger, audit.seq) == ("vault-audit", 1)
    assert (await rt.services.consent.verify([("engine", consent)])).ok
