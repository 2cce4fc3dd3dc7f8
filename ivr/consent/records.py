"""A consent record's content hash: SHA-256 over the canonical JSON (sorted keys, no
spaces, UTF-8) of every column but ``hash`` and ``mac`` — ``seq`` and ``prev_hash``
included, times as ISO 8601 with microseconds. :func:`canonical_body` is that JSON as
text, which the evidence export carries so anyone can recompute the hash offline."""

from __future__ import annotations

import hashlib
from typing import Any

from ivr.store.tables import ConsentRecord
from vault.evidence import canonical, timestamp

GENESIS = "0" * 64  # the first record's prev_hash


def body(row: ConsentRecord) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "id": row.id,
        "merchant_id": row.merchant_id,
        "call_request_id": row.call_request_id,
        "kind": row.kind,
        "did": row.did,
        "caller_id": row.caller_id,
        "call_id": row.call_id,
        "call_started_at": timestamp(row.call_started_at),
        "decided_at": timestamp(row.decided_at),
        "prompts": row.prompts,
        "key_pressed": row.key_pressed,
        "details": row.details,
        "prev_hash": row.prev_hash,
        "created_at": timestamp(row.created_at),
    }


def canonical_body(row: ConsentRecord) -> str:
    return canonical(body(row)).decode()


def record_hash(row: ConsentRecord) -> str:
    return hashlib.sha256(canonical(body(row))).hexdigest()
