"""``Idempotency-Key`` (docs/product.md §6): same key + same request (method, path, query
string and body) → the same response for 24 h; same key + a different request → 422; a
duplicate while the first is still running → 409. A replayed answer never holds a
signing secret (:func:`replay_body`).

A key belongs to the merchant (any of its API keys). :meth:`IdempotencyStore.begin`
inserts an ``in_progress`` row holding a fresh ``resource_id`` *before* the handler
runs; the handler gives that id to what it creates. If the process dies mid-request,
the row's lock lapses and the next retry runs the handler again with the *same*
resource id — the handler finds the object it already created and answers with it, so
nothing is created (or charged) twice. A handler that fails with a 5xx releases the
lock at once for the same reason; answers below 500 are stored and replayed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from ivr.clock import Clock
from ivr.domain.ids import ulid
from ivr.store.db import Database
from ivr.store.tables import IdempotencyKey
from ivr.web.problems import Problem

HEADER = "Idempotency-Key"
MAX_KEY = 255
KEEP = timedelta(hours=24)
LOCK = timedelta(minutes=2)  # a handler taking longer than this may be run again


FINGERPRINT_VERSION = "v"  # fingerprints with method, path, query and body start so


def fingerprint(method: str, path: str, query: str, content_type: str, body: bytes) -> str:
    """What makes two requests the same: method, path, query string (parameters in a
    canonical order) and body (JSON canonicalised: key order and spacing do not matter;
    a multipart boundary neutralised: it differs on every upload). 64 characters: the
    version mark and 63 hex digits of SHA-256."""
    params = sorted(parse_qsl(query, keep_blank_values=True), key=lambda kv: kv[0])
    h = hashlib.sha256(f"{method} {path}\n{urlencode(params)}\n".encode())
    h.update(_canonical_body(content_type, body))
    return FINGERPRINT_VERSION + h.hexdigest()[:63]


def legacy_fingerprint(method: str, path: str, content_type: str, body: bytes) -> str:
    """The fingerprint keys stored before the query string counted (no version mark);
    such a key is compared this way until it expires (24 h after the upgrade)."""
    h = hashlib.sha256(f"{method} {path}\n".encode())
    h.update(_canonical_body(content_type, body))
    return h.hexdigest()


def _canonical_body(content_type: str, body: bytes) -> bytes:
    ctype = content_type.lower()
    if ctype.startswith("application/json"):
        # Not JSON after all: the bytes as they are (validation will refuse them).
        with contextlib.suppress(ValueError, UnicodeDecodeError, RecursionError):
            body = json.dumps(
                json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ).encode()
    elif ctype.startswith("multipart/") and "boundary=" in ctype:
        boundary = content_type.split("boundary=", 1)[1].split(";", 1)[0].strip().strip('"')
        if boundary:
            body = body.replace(boundary.encode(), b"BOUNDARY")
    return body


WITHHELD = "secret"  # an answer's field never kept for replay (webhook signing secrets)


def replay_body(body: str) -> str:
    """The answer as kept for replay: a JSON object's ``secret`` (a webhook endpoint's
    signing secret, on creation and rotation) is replaced by ``null`` with
    ``"secret_withheld": true``. The secret is shown once, in the first answer; a
    replay says it was withheld (rotate the secret if that answer was lost)."""
    if f'"{WITHHELD}"' not in body:
        return body
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    if not isinstance(answer, dict) or not answer.get(WITHHELD):
        return body
    answer[WITHHELD] = None
    answer["secret_withheld"] = True
    return json.dumps(answer, ensure_ascii=False)


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY or not key.isascii() or not key.isprintable():
        raise Problem(
            400,
            "invalid-idempotency-key",
            f"{HEADER} must be 1-{MAX_KEY} printable ASCII characters",
        )
    return key


@dataclass(frozen=True, slots=True)
class Stored:
    status: int
    body: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Begun:
    """Either a stored answer to replay, or the resource id for a run of the handler."""

    replay: Stored | None
    resource_id: str


@dataclass(frozen=True, slots=True)
class IdempotencyStore:
    db: Database
    clock: Clock

    async def begin(
        self,
        merchant_id: str,
        key: str,
        *,
        method: str,
        path: str,
        fingerprint: str,
        legacy_fingerprint: str | None = None,
    ) -> Begun:
        now = self.clock.now()
        row = IdempotencyKey(
            merchant_id=merchant_id,
            key=key,
            fingerprint=fingerprint,
            method=method,
            path=path[:300],
            resource_id=ulid(),
            state="in_progress",
            locked_until=now + LOCK,
            created_at=now,
            expires_at=now + KEEP,
        )
        try:
            async with self.db.transaction() as s:
                s.add(row)
            return Begun(None, row.resource_id)
        except IntegrityError:
            pass
        async with self.db.transaction() as s:
            old = await s.get(IdempotencyKey, (merchant_id, key), with_for_update=True)
            if old is None:  # purged between the insert and here: the caller retries
                raise Problem(409, "idempotency-in-progress", "retry the request") from None
            if old.expires_at <= now:  # an old key used again: a new request
                await s.delete(old)
                await s.flush()
                s.add(row)
                return Begun(None, row.resource_id)
            stored_as = fingerprint
            if not old.fingerprint.startswith(FINGERPRINT_VERSION) and legacy_fingerprint:
                stored_as = legacy_fingerprint  # stored before the query counted
            if old.fingerprint != stored_as:
                raise Problem(
                    422,
                    "idempotency-key-reused",
                    f"this {HEADER} was used with a different request "
                    f"({old.method} {old.path}) in the last 24 hours",
                )
            if old.state == "done" and old.response_status is not None:
                return Begun(
                    Stored(
                        old.response_status,
                        old.response_body or "",
                        {str(k): str(v) for k, v in (old.response_headers or {}).items()},
                    ),
                    old.resource_id,
                )
            if old.locked_until > now:
                raise Problem(
                    409,
                    "idempotency-in-progress",
                    f"a request with this {HEADER} is still being processed; retry later",
                    headers={"Retry-After": "1"},
                )
            old.locked_until = now + LOCK  # the earlier run died: take it over
            return Begun(None, old.resource_id)

    async def finish(self, merchant_id: str, key: str, stored: Stored) -> None:
        async with self.db.transaction() as s:
            await s.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.merchant_id == merchant_id, IdempotencyKey.key == key)
                .values(
                    state="done",
                    response_status=stored.status,
                    response_body=stored.body,
                    response_headers=stored.headers,
                )
            )

    async def release(self, merchant_id: str, key: str) -> None:
        """The handler failed (5xx): let the next retry run it again at once."""
        async with self.db.transaction() as s:
            await s.execute(
                update(IdempotencyKey)
                .where(
                    IdempotencyKey.merchant_id == merchant_id,
                    IdempotencyKey.key == key,
                    IdempotencyKey.state == "in_progress",
                )
                .values(locked_until=self.clock.now())
            )

    async def purge(self) -> int:
        """Delete expired keys; how many."""
        async with self.db.transaction() as s:
            result: Any = await s.execute(
                delete(IdempotencyKey).where(IdempotencyKey.expires_at <= self.clock.now())
            )
            return int(result.rowcount or 0)
