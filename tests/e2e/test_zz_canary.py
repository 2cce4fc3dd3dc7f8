"""Runs after the call tests (file order): no card number and no expiry+birth sequence
keyed in any e2e call appears in any file written by the engine (database, logs), the
vault (its store holds only ciphertext), the sandbox PG's ledger, or Asterisk (logs;
CDR/CEL are written there when enabled). BIN6 and last 4 may appear (docs/product.md §5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.testing.asterisk import Asterisk

from .conftest import CANARY_DIRS
from .test_calls import CANARY_NEEDLES


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_no_card_data_in_any_file_the_system_wrote(asterisk: Asterisk) -> None:
    if not CANARY_DIRS:
        pytest.fail("no e2e call stack ran in this run: run the whole tests/e2e directory")
    files = [f for d in CANARY_DIRS for f in _files(d)] + _files(asterisk.log_dir)
    spool = asterisk.log_dir.parent.parent / "spool" / "asterisk"
    if spool.is_dir():
        files += _files(spool)
    kinds = {f.suffix for f in files}
    assert ".db" in kinds, f"expected database files among {len(files)} files"
    hits = []
    for path in files:
        data = path.read_bytes()
        hits += [f"{path}: {n[:6]}…" for n in CANARY_NEEDLES if n.encode() in data]
    assert hits == [], hits
