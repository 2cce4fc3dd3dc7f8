"""Consent evidence outside the database: signed checkpoints of the chain head and the
signed attestation that goes with an export.

* :func:`make_checkpoint` verifies the chain — from the newest checkpoint in the
  checkpoint directory on, or whole — and only then signs its head (sequence number,
  head MAC, record count, time; :class:`~vault.evidence.Checkpoint`). The engine writes
  one every ``consent.checkpoint_interval_minutes`` into ``consent.checkpoint_dir``
  (the ledger's ``saved``) when the head has moved (:func:`run_checkpoints`);
  ``arspay consent checkpoint`` hands one out. Compared with the chain later, a
  checkpoint shows records deleted from the end, or all of them, which the chain alone
  cannot.
* :func:`export_evidence` is what the API and the console export for a call request:
  each record with its canonical JSON (its SHA-256 is ``hash``), its MAC and whether
  the MAC verified; a checkpoint of the current head; and an attestation signed with
  the same Ed25519 key binding each record's hash and MAC to that checkpoint — so a
  merchant holding the public key (``arspay consent public-key``) checks the export
  offline (docs/consent.md). Nothing is signed over a record whose MAC does not verify.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import func, select

from ivr.consent.chain import VerifyResult, load_seal, seal_fields
from ivr.consent.ledger import ConsentLedger
from ivr.consent.records import canonical_body, record_hash
from ivr.errors import ArspayError, ConfigError, IntegrityViolation
from ivr.store.scope import Scope
from ivr.store.tables import ConsentRecord, ConsentSeal
from vault.evidence import Checkpoint, EvidenceKey, macs_equal, timestamp

log = logging.getLogger(__name__)

ATTESTATION_FORMAT: Final = "arspay-consent-attestation/1"


async def make_checkpoint(ledger: ConsentLedger) -> tuple[Checkpoint, VerifyResult]:
    """Seal if needed, verify (from the newest checkpoint in the ledger's directory that
    this key signed, else whole), sign the head. :class:`IntegrityViolation` if the
    chain does not verify: no checkpoint is ever signed over a broken chain."""
    info = await ledger.seal()
    key = ledger.keys.load(create=False)
    base, found, saved = None, None, ledger.saved
    if saved is not None:
        found, _ = await asyncio.to_thread(saved.newest, key)
        base = found[1] if found is not None else None
    checks = [(str(found[0]), base)] if base is not None and found is not None else []
    result = await ledger.verify(checks, since=base)
    if not result.ok:
        raise IntegrityViolation(
            f"the consent chain does not verify ({result.lines()[0]}); no checkpoint signed"
        )
    head_mac = result.head_mac
    assert head_mac is not None, info  # sealed: the head MAC is the seal's or a record's
    cp = Checkpoint.make(key, seq=result.head_seq, count=result.records, head_mac=head_mac,
                         at=ledger.clock.now())  # fmt: skip
    return cp, result


async def checkpoint_now(ledger: ConsentLedger) -> Checkpoint | None:
    """One periodic round: verify, and write a checkpoint in the ledger's directory if
    the chain has records and its head moved since the newest one there (None
    otherwise)."""
    saved = ledger.saved
    if saved is None:
        raise ConfigError("no consent checkpoint directory configured")
    if not ledger.keys.exists():
        async with ledger.db.sessions() as s:
            if await s.scalar(select(ConsentRecord.seq).limit(1)) is None:
                return None  # a new install: no key file made for nothing
    cp, _ = await make_checkpoint(ledger)
    found, _ = await asyncio.to_thread(saved.newest, ledger.keys.load(create=False))
    if cp.count == 0 or (
        found is not None and (found[1].seq, found[1].count) == (cp.seq, cp.count)
    ):
        return None
    await asyncio.to_thread(saved.save, cp)
    return cp


async def run_checkpoints(ledger: ConsentLedger, interval_s: float) -> None:
    """The engine's worker: seal at start (an upgraded database), then a checkpoint
    round every ``interval_s``. A chain that does not verify is logged as an error and
    gets no checkpoint; the worker goes on."""
    while True:
        try:
            cp = await checkpoint_now(ledger)
            if cp is not None:
                log.info("consent checkpoint written: seq %d, %d record(s)", cp.seq, cp.count)
        except ArspayError as exc:
            log.error("consent checkpoint not written: %s", exc.message)
        except OSError as exc:
            log.error("consent checkpoint not written: %s (%s)", exc.filename, exc.strerror)
        except Exception as exc:  # a database hiccup: the next round tries again
            log.error("consent checkpoint not written: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)


# --------------------------------------------------------------------------- export


@dataclass(frozen=True, slots=True)
class RecordEvidence:
    row: ConsentRecord
    canonical: str  # the JSON whose SHA-256 is row.hash
    hash_valid: bool
    mac_valid: bool | None  # None: written before keyed MACs (covered by the seal)


@dataclass(frozen=True, slots=True)
class Evidence:
    records: list[RecordEvidence]
    checkpoint: Checkpoint | None  # of the chain head now (None: it did not verify)
    attestation: dict[str, Any] | None  # None unless every record and the head verify


def _prev_mac(seq: int, seal: ConsentSeal, macs: dict[int, str | None]) -> str | None:
    return seal.mac if seq - 1 == seal.sealed_through else macs.get(seq - 1)


async def export_evidence(
    ledger: ConsentLedger, merchant_id: str, call_request_id: str
) -> Evidence:
    rows = await ledger.for_request(merchant_id, call_request_id)
    records, ctx = await _check(ledger, rows, with_head=True)
    if ctx is None:
        return Evidence(records, None, None)
    key, seal, head, macs, count, seal_ok = ctx
    cp = _head_checkpoint(ledger, key, seal, head, macs, count, seal_ok)
    attestation = None
    if cp is not None and all(r.hash_valid and r.mac_valid for r in records):
        attestation = _attest(key, merchant_id, call_request_id, records, cp, ledger)
    return Evidence(records, cp, attestation)


async def check_records(ledger: ConsentLedger, rows: list[ConsentRecord]) -> list[RecordEvidence]:
    """Each record's hash and MAC checked (the console's record page)."""
    records, _ = await _check(ledger, rows, with_head=False)
    return records


_Context = tuple[EvidenceKey, ConsentSeal, ConsentRecord | None, dict[int, str | None], int, bool]


async def _check(
    ledger: ConsentLedger, rows: list[ConsentRecord], *, with_head: bool
) -> tuple[list[RecordEvidence], _Context | None]:
    async with ledger.db.sessions() as s:
        seal = await load_seal(s)
        key = ledger.keys.load(create=False) if seal is not None else None
        if seal is None or key is None or seal.key_id != key.key_id:
            return [_unchecked(r) for r in rows], None
        # The chain is one for every merchant: its head, its length and the MACs of the
        # records before the exported ones are read across merchants, on purpose (the
        # export proves the records' place in the whole chain and shows no other data).
        chain = Scope.everyone()
        head: list[ConsentRecord] = []
        count = 0
        if with_head:
            head = list(await s.scalars(chain.where(select(ConsentRecord), ConsentRecord)
                                        .order_by(ConsentRecord.seq.desc()).limit(1)))  # fmt: skip
            count = int(await s.scalar(chain.where(select(func.count()).select_from(ConsentRecord),
                                                   ConsentRecord)) or 0)  # fmt: skip
        wanted = {r.seq - 1 for r in [*rows, *head]}
        found = await s.execute(chain.where(
            select(ConsentRecord.seq, ConsentRecord.mac).where(ConsentRecord.seq.in_(wanted)),
            ConsentRecord))  # fmt: skip
        macs: dict[int, str | None] = {seq: mac for seq, mac in found}
    seal_ok = macs_equal(key.mac_document(seal_fields(seal)), seal.mac)
    records = [_checked(r, key, seal, macs, seal_ok) for r in rows]
    return records, (key, seal, head[0] if head else None, macs, count, seal_ok)


def _unchecked(row: ConsentRecord) -> RecordEvidence:
    return RecordEvidence(row, canonical_body(row), record_hash(row) == row.hash, None)


def _checked(
    row: ConsentRecord,
    key: EvidenceKey,
    seal: ConsentSeal,
    macs: dict[int, str | None],
    seal_ok: bool,
) -> RecordEvidence:
    hash_valid = record_hash(row) == row.hash
    if row.seq <= seal.sealed_through:
        return RecordEvidence(row, canonical_body(row), hash_valid, None)
    prev = _prev_mac(row.seq, seal, macs)
    mac_valid = (
        seal_ok and prev is not None and macs_equal(key.mac(row.seq, row.hash, prev), row.mac)
    )
    return RecordEvidence(row, canonical_body(row), hash_valid, mac_valid)


def _head_checkpoint(
    ledger: ConsentLedger,
    key: EvidenceKey,
    seal: ConsentSeal,
    head: ConsentRecord | None,
    macs: dict[int, str | None],
    count: int,
    seal_ok: bool,
) -> Checkpoint | None:
    """A checkpoint of the head now, if the head's own MAC verifies (a full walk is
    the periodic checkpoints' and ``verify``'s job)."""
    if not seal_ok:
        return None
    if head is None or head.seq <= seal.sealed_through:
        seq = head.seq if head is not None else 0
        if seq != seal.sealed_through:
            return None
        head_mac = seal.mac
    else:
        checked = _checked(head, key, seal, macs, seal_ok)
        if not (checked.hash_valid and checked.mac_valid) or head.mac is None:
            return None
        seq, head_mac = head.seq, head.mac
    return Checkpoint.make(key, seq=seq, count=count, head_mac=head_mac, at=ledger.clock.now())


def _attest(
    key: EvidenceKey,
    merchant_id: str,
    call_request_id: str,
    records: list[RecordEvidence],
    cp: Checkpoint,
    ledger: ConsentLedger,
) -> dict[str, Any]:
    payload = {
        "format": ATTESTATION_FORMAT,
        "merchant_id": merchant_id,
        "call_request_id": call_request_id,
        "records": [
            {"seq": r.row.seq, "id": r.row.id, "hash": r.row.hash, "mac": r.row.mac}
            for r in records
        ],
        "checkpoint": {"seq": cp.seq, "head_mac": cp.head_mac},
        "issued_at": timestamp(ledger.clock.now()),
        "key_id": key.key_id,
        "public_key": cp.payload()["public_key"],
    }
    return payload | {"signature": key.sign(payload)}
