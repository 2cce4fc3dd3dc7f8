"""Upgrading a database that holds consent records from before keyed MACs, and
downgrades that would drop the evidence."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from ivr.clock import FakeClock
from ivr.errors import IntegrityViolation
from ivr.store.db import Database
from tests.consent.support import (
    as_admin,
    chain,
    consent,
    downgrade_to,
    ledger_for,
    legacy_records,
    refused,
    rewrite,
)

pytestmark = pytest.mark.anyio


# --------------------------------------------------------------------------- upgrade


async def test_upgrade_in_place_seals_the_existing_records(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    m = await legacy_records(db, clock, 4)
    ledger = ledger_for(db, clock, tmp_path)
    before = await ledger.verify()
    assert not before.ok
    assert "not sealed" in (before.problem or "")
    assert not ledger.keys.exists()
    await ledger.append(consent(m, 5, clock))  # the first append seals (as the engine start does)
    result = await ledger.verify()
    assert (result.ok, result.records, result.sealed_through) == (True, 5, 4), result.lines()
    info = await ledger.seal()
    assert (info.created, info.sealed_through, info.note) == (False, 4, None)
    # rewriting a sealed record, hashes recomputed, is caught by the seal
    await rewrite(db, 2, "3", mac_key=None)
    broken = await ledger.verify()
    assert not broken.ok
    assert any("from before keyed sealing changed since they were sealed" in p.reason
               for p in broken.problems)  # fmt: skip
    assert any(p.seq == 5 and "MAC does not match" in p.reason for p in broken.problems)


async def test_a_broken_chain_is_not_sealed_unless_an_operator_acknowledges(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    m = await legacy_records(db, clock, 3)
    await as_admin(db, "UPDATE consent_records SET key_pressed = '3' WHERE seq = 2")
    ledger = ledger_for(db, clock, tmp_path)
    with pytest.raises(IntegrityViolation, match="acknowledge-broken"):
        await ledger.append(consent(m, 4, clock))
    async with db.sessions() as s:
        assert await s.scalar(text("SELECT count(*) FROM consent_records")) == 3
        assert await s.scalar(text("SELECT count(*) FROM consent_seals")) == 0
    info = await ledger.seal(acknowledge_broken=True)
    assert info.created
    assert info.note is not None
    assert "record 2" in info.note
    await ledger.append(consent(m, 4, clock))
    result = await ledger.verify()
    assert result.ok, result.lines()
    assert result.notes
    assert "record 2: hash does not match content" in result.notes[0]


async def test_downgrade_below_0008_is_refused_once_sealed(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    await chain(db, clock, tmp_path, 1)
    with pytest.raises(RuntimeError, match="refusing to downgrade"):
        await downgrade_to(db, "0007")


async def test_downgrade_to_0007_keeps_the_append_only_triggers(
    db: Database, clock: FakeClock
) -> None:
    """SQLite rebuilds the table to drop ``mac``, which drops its triggers: 0008's
    downgrade puts 0001's back."""
    await legacy_records(db, clock, 1)
    await downgrade_to(db, "0007")
    await refused(db, "UPDATE consent_records SET key_pressed = '2'", "DELETE FROM consent_records")
