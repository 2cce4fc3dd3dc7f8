"""Walking the consent chain: what ``arspay consent verify``, the console's check and
the checkpoints run (:meth:`~ivr.consent.ledger.ConsentLedger.verify`).

For each record in ``seq`` order: no gap before it, its ``hash`` recomputed from its
content, its ``prev_hash`` the previous record's ``hash`` and — after the seal — its
``mac`` the chain MAC from the previous one (the seal's MAC for the first). The records
from before keyed sealing are summed up as :func:`legacy_line` digests and compared
with the seal; the seal's own MAC and key id are checked. Every record that does not fit
is one :class:`~vault.evidence.ChainProblem`; checkpoints are compared by the caller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.consent.records import GENESIS, record_hash
from ivr.store.tables import ConsentRecord, ConsentSeal
from vault.evidence import ChainProblem, Checkpoint, EvidenceKey, Findings, macs_equal, timestamp

SEAL_ID = 1


def seal_fields(seal: ConsentSeal) -> dict[str, Any]:
    """What the seal's MAC covers."""
    return {"kind": "consent-seal", "id": seal.id, "sealed_through": seal.sealed_through,
            "legacy_digest": seal.legacy_digest, "key_id": seal.key_id, "note": seal.note,
            "created_at": timestamp(seal.created_at)}  # fmt: skip


def legacy_line(row: ConsentRecord, content_hash: str) -> bytes:
    """One record's share of the digest that seals the records from before keyed MACs."""
    return f"{row.seq}:{content_hash}:{row.hash}\n".encode()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """``ok`` when no problem was found; ``first_bad_seq`` and ``problem`` name the
    first record that does not fit (``problem`` also for a chain-wide problem)."""

    records: int
    ok: bool
    first_bad_seq: int | None = None
    problem: str | None = None
    problems: tuple[ChainProblem, ...] = ()
    more_problems: int = 0
    head_seq: int = 0
    head_mac: str | None = None
    sealed_through: int | None = None  # records before keyed MACs (None: not sealed)
    checkpoints: int = 0  # checkpoints accepted and compared
    notes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = [p.line() for p in self.problems]
        if self.more_problems:
            out.append(f"… and {self.more_problems} more problem(s)")
        return out


@dataclass
class Walk:
    records: int = 0
    head_seq: int = 0
    head_mac: str | None = None  # the MAC the next record chains from (after the seal)
    legacy_count: int = 0
    legacy_digest: str = ""
    keyed_seen: bool = False
    full: bool = True
    macs: dict[int, str | None] = field(default_factory=dict)
    findings: Findings = field(default_factory=Findings)
    notes: list[str] = field(default_factory=list)


async def load_seal(s: AsyncSession) -> ConsentSeal | None:
    return await s.get(ConsentSeal, SEAL_ID, populate_existing=True)


async def walk(
    s: AsyncSession,
    key: EvidenceKey | None,
    seal: ConsentSeal | None,
    *,
    since: Checkpoint | None = None,
    want: Collection[int] = (),
    batch: int = 1000,
) -> Walk:
    """Check every record (from ``since`` on when the record it names still has the
    MAC it signed). Without ``seal`` every record is from before keyed MACs."""
    w = Walk()
    legacy_end = seal.sealed_through if seal is not None else None
    keyed = seal is not None and key is not None and seal.key_id == key.key_id
    quiet_legacy = seal is not None and seal.note is not None  # acknowledged at sealing
    prev_hash, prev_mac = GENESIS, seal.mac if seal is not None else None
    expected = 1
    if since is not None and keyed and legacy_end is not None and since.seq > legacy_end:
        at = await s.get(ConsentRecord, since.seq, populate_existing=True)
        if at is not None and macs_equal(at.mac, since.head_mac):
            w.full = False
            prev_hash, prev_mac, expected = at.hash, at.mac, since.seq + 1
            w.records, w.head_seq, w.macs[since.seq] = since.count, since.seq, at.mac
    digest, gap, after = hashlib.sha256(), False, expected - 1
    while True:
        rows = list(
            await s.scalars(
                select(ConsentRecord)
                .where(ConsentRecord.seq > after)
                .order_by(ConsentRecord.seq)
                .limit(batch)
                .execution_options(populate_existing=True)
            )
        )
        if not rows:
            break
        after = rows[-1].seq
        for row in rows:
            if row.seq != expected:
                gone = f"{expected}" if row.seq == expected + 1 else f"{expected}-{row.seq - 1}"
                w.findings.add(expected, "record missing" if row.seq == expected + 1
                               else f"records {gone} missing")  # fmt: skip
                gap = True
            legacy = legacy_end is None or row.seq <= legacy_end
            content = record_hash(row)
            if not (legacy and quiet_legacy):
                if content != row.hash:
                    w.findings.add(row.seq, "hash does not match content")
                elif row.prev_hash != prev_hash and not gap:
                    w.findings.add(row.seq, "prev_hash does not link")
            if legacy:
                digest.update(legacy_line(row, content))
                w.legacy_count += 1
                w.keyed_seen |= row.mac is not None
            else:
                if row.mac is None:
                    w.findings.add(row.seq, "no MAC: written outside the keyed chain")
                elif (
                    keyed
                    and not gap
                    and key is not None
                    and not macs_equal(key.mac(row.seq, row.hash, prev_mac or GENESIS), row.mac)
                ):
                    w.findings.add(
                        row.seq,
                        "MAC does not match: rewritten, inserted, or sealed with another key",
                    )
                prev_mac = row.mac
            if row.seq in want:
                w.macs[row.seq] = row.mac if not legacy else (
                    prev_mac if row.seq == legacy_end else None
                )  # fmt: skip
            prev_hash, expected, gap = row.hash, row.seq + 1, False
            w.records += 1
            w.head_seq = row.seq
    w.head_mac = prev_mac
    w.legacy_digest = digest.hexdigest()
    return w


def judge_seal(w: Walk, seal: ConsentSeal | None, key: EvidenceKey | None) -> None:
    """The chain-wide checks of a full walk: the seal, and what it sealed."""
    if not w.full:
        return
    if seal is None:
        if w.keyed_seen:
            w.findings.add(None, "the seal record is missing: the keyed records cannot be "
                                 "checked")  # fmt: skip
        elif w.records:
            w.findings.add(None, f"not sealed: {w.records} record(s) carry no MAC (the "
                                 "engine seals them when it starts; or run `arspay consent "
                                 "seal`)")  # fmt: skip
        return
    if key is not None and seal.key_id != key.key_id:
        w.findings.add(None, f"the records are sealed under key {seal.key_id}; this key file "
                             f"holds key {key.key_id}")  # fmt: skip
    elif key is not None and not macs_equal(key.mac_document(seal_fields(seal)), seal.mac):
        w.findings.add(None, "the seal record was altered: its MAC does not match")
    if (w.legacy_count, w.legacy_digest) != (seal.sealed_through, seal.legacy_digest):
        w.findings.add(None, f"the {seal.sealed_through} record(s) from before keyed sealing "
                             f"changed since they were sealed (now {w.legacy_count})")  # fmt: skip
    if seal.note is not None:
        w.notes.append(f"sealed with a problem an operator acknowledged: {seal.note}")
