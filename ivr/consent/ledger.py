"""The consent ledger.

One record per choice in a call that moves money or stores a card (PRODUCT §4.3,
issue #26): :data:`MENU_KEYS` for menus (the key pressed), :data:`ENTRIES` for keyed
entries whose value is not a menu key (``key_pressed`` empty; the months chosen, or
that the knowledge factor passed — never the digits — in ``details``). Each holds the
prompts played so far in the call with the sha256 of every audio file.

Each record's ``hash`` is SHA-256 over the canonical JSON (sorted keys, no spaces,
UTF-8) of all its other fields, ``seq`` and ``prev_hash`` included; ``prev_hash`` is the
previous record's ``hash`` (64 zeros for the first). Changing, removing or reordering
any record breaks every hash after it, which :meth:`ConsentLedger.verify` reports.
The database refuses UPDATE/DELETE on the table (triggers in migration 0001); appends
are serialized (SQLite's write lock, a PostgreSQL advisory lock) so the chain is linear.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.clock import Clock
from ivr.domain.ids import new_id
from ivr.errors import InvalidInput
from ivr.store.db import Database
from ivr.store.tables import ConsentRecord

GENESIS = "0" * 64
_ADVISORY_LOCK = 0x4152_5350_4159  # "ARSPAY"
MENU_KEYS: dict[str, str] = {
    "registration_consent": "12",  # reg.consent: 1 agree, 2 decline (and end)
    "card_choice": "123",  # pay.card_choice: 1 registered card, 2 another, 3 no payment
    "save_card": "12",  # pay.save_card: 1 store it for automatic payment, 2 do not
    "installment_choice": "12",  # pay.installment: 1 lump sum, 2 installments
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
class VerifyResult:
    records: int
    ok: bool
    first_bad_seq: int | None = None
    problem: str | None = None


def _ts(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


def record_hash(row: ConsentRecord) -> str:
    body = {
        "seq": row.seq,
        "id": row.id,
        "merchant_id": row.merchant_id,
        "call_request_id": row.call_request_id,
        "kind": row.kind,
        "did": row.did,
        "caller_id": row.caller_id,
        "call_id": row.call_id,
        "call_started_at": _ts(row.call_started_at),
        "decided_at": _ts(row.decided_at),
        "prompts": row.prompts,
        "key_pressed": row.key_pressed,
        "details": row.details,
        "prev_hash": row.prev_hash,
        "created_at": _ts(row.created_at),
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ConsentLedger:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

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
        if self.db.is_postgres:
            await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})
        last = (
            await s.execute(
                select(ConsentRecord.seq, ConsentRecord.hash)
                .order_by(ConsentRecord.seq.desc())
                .limit(1)
            )
        ).first()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
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
            prev_hash=prev,
            created_at=self.clock.now(),
        )
        row.hash = record_hash(row)
        s.add(row)
        await s.flush()
        return row

    async def verify(self, batch: int = 1000) -> VerifyResult:
        """Walk the chain from the start; report the first record that does not fit."""
        prev, expected_seq, count = GENESIS, 1, 0
        async with self.db.sessions() as s:
            after = 0
            while True:
                rows = list(
                    await s.scalars(
                        select(ConsentRecord)
                        .where(ConsentRecord.seq > after)
                        .order_by(ConsentRecord.seq)
                        .limit(batch)
                    )
                )
                if not rows:
                    return VerifyResult(count, True)
                for row in rows:
                    if row.seq != expected_seq:
                        return VerifyResult(count, False, expected_seq, "record missing")
                    if row.prev_hash != prev:
                        return VerifyResult(count, False, row.seq, "prev_hash does not link")
                    if record_hash(row) != row.hash:
                        return VerifyResult(count, False, row.seq, "hash does not match content")
                    prev, expected_seq, count = row.hash, expected_seq + 1, count + 1
                after = rows[-1].seq

    async def for_request(self, merchant_id: str, call_request_id: str) -> list[ConsentRecord]:
        async with self.db.sessions() as s:
            return list(
                await s.scalars(
                    select(ConsentRecord)
                    .where(
                        ConsentRecord.merchant_id == merchant_id,
                        ConsentRecord.call_request_id == call_request_id,
                    )
                    .order_by(ConsentRecord.seq)
                )
            )
