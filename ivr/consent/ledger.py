"""The consent ledger: append-only records, chained with a keyed MAC.

One record per choice in a call that moves money or stores a card (docs/product.md §4.3,
issue #26): :data:`MENU_KEYS` for menus (the key pressed), :data:`ENTRIES` for keyed
entries whose value is not a menu key (``key_pressed`` empty; the months chosen, or
that the knowledge factor passed — never the digits — in ``details``). Each holds the
prompts played so far in the call with the sha256 of every audio file.

Each record's ``hash`` is SHA-256 over its canonical content, ``prev_hash`` included
(:mod:`ivr.consent.records`); its ``mac`` is HMAC-SHA-256, under the consent evidence
key (:mod:`ivr.consent.keys`, a file outside the database), over its ``seq``, its
``hash`` and the previous record's ``mac`` — so rewriting, inserting or removing a
record, even recomputing every hash after it, shows at the first record whose MAC no
longer fits, unless one holds the key. Appends are serialized (SQLite's write lock, a
PostgreSQL advisory lock) so the chain is linear; database triggers refuse UPDATE,
DELETE, TRUNCATE and an INSERT without a MAC (migrations 0001 and 0008).

**Sealing** (:meth:`ConsentLedger.seal`): the first append (or the engine's start)
of a release with keyed MACs writes the one ``consent_seals`` row: the records already
there, from before keyed MACs, are checked and summed up in a digest, and the seal's
MAC covers it; the first keyed record chains from that MAC. If those records do not
verify, nothing is sealed and no consent is recorded until an operator has looked and
runs ``arspay consent seal --acknowledge-broken`` (the problem is kept in the seal).

What a chain cannot show by itself — its newest records deleted, or all of them — the
signed checkpoints of its head do (:mod:`ivr.consent.evidence`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import Clock
from ivr.consent.chain import (
    SEAL_ID,
    VerifyResult,
    judge_seal,
    load_seal,
    seal_fields,
    walk,
)
from ivr.consent.keys import ConsentKeys
from ivr.consent.records import GENESIS, canonical_body, record_hash
from ivr.domain.ids import new_id
from ivr.errors import ConfigError, IntegrityViolation, InvalidInput
from ivr.store.db import Database
from ivr.store.scope import Scope
from ivr.store.tables import ConsentRecord, ConsentSeal
from vault.evidence import Checkpoint, CheckpointDir, EvidenceKey, check_checkpoints

__all__ = [
    "GENESIS",
    "KINDS",
    "ConsentInput",
    "ConsentLedger",
    "PlayedPrompt",
    "VerifyResult",
    "canonical_body",
    "record_hash",
]

_ADVISORY_LOCK = 0x4152_5350_4159  # "ARSPAY"
MENU_KEYS: dict[str, str] = {
    "registration_consent": "12",  # reg.consent: 1 agree, 2 decline (and end)
    "card_choice": "123",  # pay.card_choice: 1 registered card, 2 another, 3 no payment;
    # pay.enter_or_decline (no registered card): 1 key a card, 3 no payment
    "save_card": "12",  # pay.save_card: 1 store it for automatic payment, 2 do not
    "installment_choice": "12",  # pay.installment: 1 lump sum, 2 installments
    # (also pay.retry_lump_sum's 1 after an installment_unavailable decline)
    "payment_confirmation": "1",  # pay.confirm.*: 1 charge
}
"""Every choice in a call that moves money or stores a card, and the keys it takes."""
ENTRIES = frozenset(
    {
        "installment_months",  # the months keyed (+ #): details.installment_months
        "identity_verification",  # the knowledge factor passed: never the digits keyed
    }
)
"""Records of a keyed entry rather than a menu key: ``key_pressed`` is empty and what
was decided is in ``details``."""
KINDS = frozenset(MENU_KEYS) | ENTRIES


@dataclass(frozen=True, slots=True)
class PlayedPrompt:
    prompt_id: str
    sha256: str  # of the audio file that played
    sound: str | None = None  # the file's sound name, when a prompt is built from segments


@dataclass(frozen=True, slots=True)
class ConsentInput:
    merchant_id: str
    call_request_id: str
    kind: str
    did: str
    caller_id: str
    call_id: str
    call_started_at: datetime
    decided_at: datetime
    prompts: tuple[PlayedPrompt, ...]
    key_pressed: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SealInfo:
    sealed_through: int  # records from before keyed MACs
    key_id: str
    created_at: datetime
    note: str | None
    created: bool  # by this call


@dataclass(eq=False)
class ConsentLedger:
    """``saved``: the directory the engine keeps its checkpoints in; :meth:`verify`
    compares the newest one there too when asked."""

    db: Database
    clock: Clock
    keys: ConsentKeys
    saved: CheckpointDir | None = None

    # ------------------------------------------------------------------ writing

    async def append(self, item: ConsentInput) -> ConsentRecord:
        async with self.db.transaction() as s:
            return await self.append_in(s, item)

    async def append_in(self, s: AsyncSession, item: ConsentInput) -> ConsentRecord:
        if item.kind not in KINDS:
            raise InvalidInput(f"unknown consent kind {item.kind!r}")
        keys = MENU_KEYS.get(item.kind)
        if keys is None and item.key_pressed:
            raise InvalidInput(f"key_pressed must be empty for {item.kind} (see details)")
        if keys is not None and (len(item.key_pressed) != 1 or item.key_pressed not in keys):
            raise InvalidInput(f"key_pressed must be one of the keys of {item.kind}: {keys}")
        await self._lock(s)
        seal, _ = await self._sealed_in(s, acknowledge=False)
        key = self._key(seal)
        last = (
            await s.execute(
                select(ConsentRecord.seq, ConsentRecord.hash, ConsentRecord.mac)
                .order_by(ConsentRecord.seq.desc())
                .limit(1)
            )
        ).first()
        seq, prev_hash, prev_mac = 1, GENESIS, seal.mac
        if last is not None:
            seq, prev_hash = last.seq + 1, last.hash
            if last.seq < seal.sealed_through:
                raise IntegrityViolation(
                    f"the consent chain ends at record {last.seq} but records up to "
                    f"{seal.sealed_through} were sealed: records were deleted (see `arspay "
                    "consent verify`); no consent is recorded"
                )
            if last.seq > seal.sealed_through:
                if last.mac is None:
                    raise IntegrityViolation(
                        f"consent record {last.seq} has no MAC: it was written outside the "
                        "keyed chain (see `arspay consent verify`); no consent is recorded"
                    )
                prev_mac = last.mac
        row = ConsentRecord(
            seq=seq,
            id=new_id("cns"),
            merchant_id=item.merchant_id,
            call_request_id=item.call_request_id,
            kind=item.kind,
            did=item.did,
            caller_id=item.caller_id,
            call_id=item.call_id,
            call_started_at=item.call_started_at,
            decided_at=item.decided_at,
            prompts={
                "played": [
                    {"prompt_id": p.prompt_id, "sha256": p.sha256}
                    | ({"sound": p.sound} if p.sound else {})
                    for p in item.prompts
                ]
            },
            key_pressed=item.key_pressed,
            details=dict(item.details),
            prev_hash=prev_hash,
            created_at=self.clock.now(),
        )
        row.hash = record_hash(row)
        row.mac = key.mac(seq, row.hash, prev_mac)
        s.add(row)
        await s.flush()
        return row

    async def _lock(self, s: AsyncSession) -> None:
        if self.db.is_postgres:
            await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})

    def _key(self, seal: ConsentSeal) -> EvidenceKey:
        key = self.keys.load(create=False)
        if seal.key_id != key.key_id:
            raise ConfigError(
                f"the consent records are sealed under key {seal.key_id} but "
                f"{self.keys.path} holds key {key.key_id}: restore the key file they were "
                "sealed with (every engine writing consent records needs the same one)"
            )
        return key

    # ------------------------------------------------------------------ sealing

    async def seal(self, *, acknowledge_broken: bool = False) -> SealInfo:
        """Seal the records from before keyed MACs, if not done yet (the engine does it
        when it starts; the first append too). ``acknowledge_broken``: seal them even if
        they do not verify, keeping the first problem in the seal."""
        async with self.db.transaction() as s:
            await self._lock(s)
            seal, created = await self._sealed_in(s, acknowledge=acknowledge_broken)
            self._key(seal)
            return SealInfo(seal.sealed_through, seal.key_id, seal.created_at, seal.note, created)

    async def _sealed_in(self, s: AsyncSession, *, acknowledge: bool) -> tuple[ConsentSeal, bool]:
        """The seal, written now if there is none (under the append lock)."""
        seal = await load_seal(s)
        if seal is not None:
            return seal, False
        keyed = await s.scalar(
            select(ConsentRecord.seq).where(ConsentRecord.mac.is_not(None)).limit(1)
        )
        if keyed is not None:
            raise IntegrityViolation(
                "consent records carry MACs but the seal record is missing (see `arspay "
                "consent verify`); no consent is recorded"
            )
        w = await walk(s, None, None)
        note = None
        if w.findings:
            first = w.findings.problems[0].line()
            if not acknowledge:
                raise IntegrityViolation(
                    "the consent records written before keyed sealing do not verify "
                    f"({first}): none is sealed and no consent is recorded until an operator "
                    "has looked — `arspay consent verify`, then `arspay consent seal "
                    "--acknowledge-broken`"
                )
            note = f"{first} (and {len(w.findings.problems) - 1 + w.findings.more} more)"[:300]
        # No record is keyed: a key file made now loses nothing.
        key = await asyncio.to_thread(self.keys.load, create=True)
        seal = ConsentSeal(
            id=SEAL_ID,
            sealed_through=w.head_seq,
            legacy_digest=w.legacy_digest,
            key_id=key.key_id,
            note=note,
            created_at=self.clock.now(),
        )
        seal.mac = key.mac_document(seal_fields(seal))
        s.add(seal)
        await s.flush()
        return seal, True

    async def is_sealed(self) -> bool:
        async with self.db.sessions() as s:
            return await load_seal(s) is not None

    # ------------------------------------------------------------------ checking

    async def verify(
        self,
        checkpoints: Sequence[tuple[str, Checkpoint]] = (),
        *,
        saved: bool = False,
        since: Checkpoint | None = None,
        batch: int = 1000,
    ) -> VerifyResult:
        """Walk the chain (from ``since`` on, when it still fits) and compare each
        ``(label, checkpoint)`` — with ``saved``, also the newest in :attr:`saved`
        (any newer file there that is not this deployment's is a problem); every
        problem found, one line each."""
        checkpoints = list(checkpoints)
        skipped: list[str] = []
        async with self.db.sessions() as s:
            seal = await load_seal(s)
            key = None
            if seal is not None or checkpoints or (saved and self.keys.exists()):
                key = self.keys.load(create=False)
            if saved and key is not None and self.saved is not None:
                found, skipped = await asyncio.to_thread(self.saved.newest, key)
                if found is not None:
                    checkpoints.append((str(found[0]), found[1]))
            want = {cp.seq for _, cp in checkpoints}
            w = await walk(s, key, seal, since=since, want=want, batch=batch)
        for line in skipped:
            w.findings.add(None, line)
        judge_seal(w, seal, key)
        accepted = 0
        if key is not None:
            accepted = check_checkpoints(w.findings, key, checkpoints, head_seq=w.head_seq,
                                         count=w.records, macs=w.macs)  # fmt: skip
        problems = tuple(w.findings.problems)
        first = problems[0] if problems else None
        return VerifyResult(
            records=w.records,
            ok=not problems,
            first_bad_seq=first.seq if first else None,
            problem=first.reason if first else None,
            problems=problems,
            more_problems=w.findings.more,
            head_seq=w.head_seq,
            head_mac=w.head_mac,
            sealed_through=seal.sealed_through if seal is not None else None,
            checkpoints=accepted,
            notes=tuple(w.notes),
        )

    # ------------------------------------------------------------------ reading

    async def for_request(self, merchant_id: str, call_request_id: str) -> list[ConsentRecord]:
        async with self.db.sessions() as s:
            q = Scope.of(merchant_id).where(
                select(ConsentRecord).where(ConsentRecord.call_request_id == call_request_id),
                ConsentRecord,
            )
            return list(await s.scalars(q.order_by(ConsentRecord.seq)))
