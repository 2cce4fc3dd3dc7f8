"""Signed checkpoints of the consent chain (altered, forged, foreign ones refused; written
only when the head moved) and the key files they depend on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivr.clock import FakeClock
from ivr.consent.evidence import checkpoint_now, make_checkpoint
from ivr.errors import ConfigError, IntegrityViolation
from ivr.store.db import Database
from tests.consent.support import any_merchant, as_admin, chain, consent, ledger_for
from vault.errors import CheckpointRefused
from vault.evidence import Checkpoint

pytestmark = pytest.mark.anyio


# --------------------------------------------------------------------------- checkpoints


async def test_checkpoint_is_signed_and_parses_back(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    ledger = await chain(db, clock, tmp_path, 3)
    cp, result = await make_checkpoint(ledger)
    doc = json.loads(cp.to_json())
    assert set(doc) == {"format", "ledger", "seq", "count", "head_mac", "at", "key_id",
                        "public_key", "signature"}  # fmt: skip
    assert (doc["ledger"], doc["seq"], doc["count"], doc["head_mac"]) == (
        "consent",
        3,
        3,
        result.head_mac,
    )
    again = Checkpoint.parse(cp.to_json())
    assert again == cp
    assert again.refusal(ledger.keys.load(create=False)) is None
    verified = await ledger.verify([("cp", again)])
    assert (verified.ok, verified.checkpoints) == (True, 1)


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", 2), ("count", 99), ("head_mac", "a" * 64), ("at", "2020-01-01T00:00:00.000000+00:00")],
)
async def test_altered_checkpoint_is_refused(
    db: Database, clock: FakeClock, tmp_path: Path, field: str, value: object
) -> None:
    ledger = await chain(db, clock, tmp_path, 3)
    cp, _ = await make_checkpoint(ledger)
    doc = json.loads(cp.to_json()) | {field: value}
    altered = Checkpoint.parse(json.dumps(doc))
    result = await ledger.verify([("altered.json", altered)])
    assert not result.ok
    assert result.lines() == [
        "checkpoint altered.json: refused: signature does not verify: the checkpoint was "
        "altered or forged"
    ]


async def test_forged_signature_and_foreign_checkpoints_are_refused(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    ledger = await chain(db, clock, tmp_path, 3)
    cp, _ = await make_checkpoint(ledger)
    doc = json.loads(cp.to_json())
    doc["signature"] = json.loads(cp.to_json())["signature"][:-4] + "AAA="
    forged = Checkpoint.parse(json.dumps(doc))
    # another deployment: its own key, same shape of chain
    other = ledger_for(db, clock, tmp_path, "other")
    other_key = other.keys.load(create=True)
    foreign = Checkpoint.make(other_key, seq=cp.seq, count=cp.count, head_mac=cp.head_mac,
                              at=clock.now())  # fmt: skip
    result = await ledger.verify([("forged.json", forged), ("foreign.json", foreign)])
    assert not result.ok
    lines = result.lines()
    assert lines[0] == ("checkpoint forged.json: refused: signature does not verify: the "
                        "checkpoint was altered or forged")  # fmt: skip
    assert lines[1].startswith("checkpoint foreign.json: refused: signed by another key")
    assert other_key.key_id in lines[1]
    for junk in (b"not json", b"{}", json.dumps(doc | {"extra": 1}).encode()):
        with pytest.raises(CheckpointRefused):
            Checkpoint.parse(junk)


async def test_periodic_checkpoint_only_when_the_head_moved(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    fresh = ledger_for(db, clock, tmp_path, "fresh")
    assert await checkpoint_now(fresh) is None  # nothing yet, and no key file made
    assert not fresh.keys.exists()
    ledger = await chain(db, clock, tmp_path, 2)
    first = await checkpoint_now(ledger)
    assert first is not None
    assert first.seq == 2
    assert await checkpoint_now(ledger) is None
    await ledger.append(consent(await any_merchant(db), 7, clock))
    second = await checkpoint_now(ledger)
    assert second is not None
    assert second.seq == 3
    assert len(list((tmp_path / "a" / "checkpoints").glob("consent-*.json"))) == 2
    await as_admin(db, "DELETE FROM consent_records WHERE seq = 3")
    with pytest.raises(IntegrityViolation, match="records deleted"):
        await checkpoint_now(ledger)


# --------------------------------------------------------------------------- keys


async def test_a_missing_or_other_key_file_stops_consent_writes(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    await chain(db, clock, tmp_path, 1)
    m = await any_merchant(db)
    (tmp_path / "a" / "evidence.key").unlink()
    lost = ledger_for(db, clock, tmp_path)  # a new process: nothing cached
    with pytest.raises(ConfigError, match="key file is missing"):
        await lost.append(consent(m, 2, clock))
    with pytest.raises(ConfigError, match="key file is missing"):
        await lost.verify()
    other = ledger_for(db, clock, tmp_path, "other")
    other.keys.load(create=True)
    with pytest.raises(ConfigError, match="sealed under key"):
        await other.append(consent(m, 3, clock))
    assert not (tmp_path / "a" / "evidence.key").exists()  # never silently re-made
