"""The vault audit log as a tamper-evident chain (:mod:`vault.evidence`, ledger
``vault-audit``).

* **Chaining** (:func:`link`): every audit row gets ``seq`` (1, 2, … without gaps) and
  ``mac``, the chain MAC over the SHA-256 of its content (:func:`content_hash`: seq, at,
  who, peer, action, why, token, merchant id) and the previous row's MAC
  (:data:`~vault.evidence.GENESIS` before the first). Both are assigned in the inserting
  transaction under the audit lock (SQLite's write lock; a PostgreSQL advisory lock),
  so the chain stays linear across processes. A trigger refuses a row without them
  (say, from an older vault process still running).
* **Sealing** (:func:`seal`): rows written before the chain existed (``seq`` NULL) are
  sealed once, by the first start of this release: the chain's first row, action
  ``audit_sealed``, states how many there were and the SHA-256 over their content
  (:func:`legacy_digest`); from then on they are covered by its MAC. ``vault_meta``
  ``audit_key_id`` names the key the chain is under: a vault given another key file
  refuses to start rather than fork the chain.
* **Checking** (:func:`walk`): the whole chain, or only the rows after a checkpoint this
  process trusts; one problem per row that does not fit. :func:`verify` adds the
  checkpoints, :func:`make_checkpoint` signs the head of a chain that verified.

Functions taking a ``Connection`` run inside one :class:`~vault.database.VaultDatabase`
transaction (``write``) or read.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Row, insert, select, text

from vault import log
from vault.database import VaultDatabase
from vault.errors import AuditChainBroken, VaultConfigError, VaultError
from vault.evidence import (
    GENESIS,
    ChainProblem,
    Checkpoint,
    CheckpointDir,
    EvidenceKey,
    EvidenceKeyFile,
    Findings,
    canonical,
    check_checkpoints,
    macs_equal,
    sha256_hex,
    timestamp,
)
from vault.schema import vault_audit, vault_meta

LEDGER: Final = "vault-audit"
SEAL_ACTION: Final = "audit_sealed"
META_KEY_ID: Final = "audit_key_id"
BATCH: Final = 1000
_SEAL_WHY: Final = re.compile(
    r"([0-9]+) row\(s\) written before the chain began; sha256 ([0-9a-f]{64})"
)
_CONTENT: Final = ("at", "who", "peer", "action", "why", "token", "merchant_id")


def lock(conn: Connection) -> None:
    """Serialize chain appends (SQLite: the transaction already holds the write lock)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('arspay-vault-audit'))"))


def content_hash(seq: int, values: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a row's canonical content; ``values`` has the audit columns."""
    body = {name: values[name] for name in _CONTENT} | {"seq": seq, "at": timestamp(values["at"])}
    return sha256_hex(canonical(body))


def _head(conn: Connection) -> tuple[int, str]:
    row = conn.execute(
        select(vault_audit.c.seq, vault_audit.c.mac)
        .where(vault_audit.c.seq.is_not(None))
        .order_by(vault_audit.c.seq.desc())
        .limit(1)
    ).first()
    return (0, GENESIS) if row is None else (int(row.seq), row.mac or GENESIS)


def link(
    conn: Connection, key: EvidenceKey, rows: Sequence[Mapping[str, Any]]
) -> list[tuple[int, str]]:
    """``(seq, mac)`` for each new row, in order, after the current head (takes the lock)."""
    lock(conn)
    seq, prev = _head(conn)
    out: list[tuple[int, str]] = []
    for values in rows:
        seq += 1
        prev = key.mac(seq, content_hash(seq, values), prev)
        out.append((seq, prev))
    return out


def _values(row: Row[Any]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _CONTENT}


def legacy_digest(conn: Connection) -> tuple[int, str]:
    """How many rows carry no ``seq``, and SHA-256 over their content in id order."""
    digest, count, after = hashlib.sha256(), 0, -1
    while True:
        rows = conn.execute(
            select(vault_audit)
            .where(vault_audit.c.seq.is_(None), vault_audit.c.id > after)
            .order_by(vault_audit.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return count, digest.hexdigest()
        for r in rows:
            values = _values(r) | {"id": r.id, "at": timestamp(r.at)}
            digest.update(canonical(values) + b"\n")
            count += 1
        after = rows[-1].id


def recorded_key_id(conn: Connection) -> str | None:
    return conn.execute(
        select(vault_meta.c.value).where(vault_meta.c.key == META_KEY_ID)
    ).scalar_one_or_none()


def is_chained(conn: Connection) -> bool:
    """Whether the chain has begun (a key is recorded, or a row carries a MAC)."""
    if recorded_key_id(conn) is not None:
        return True
    return (
        conn.execute(
            select(vault_audit.c.id).where(vault_audit.c.seq.is_not(None)).limit(1)
        ).first()
        is not None
    )


def seal(conn: Connection, key: EvidenceKey, now: datetime) -> int:
    """Record the chain's key (refusing another) and seal the rows written before the
    chain began, once. Returns how many rows this call sealed."""
    lock(conn)
    recorded = recorded_key_id(conn)
    if recorded is not None and recorded != key.key_id:
        raise VaultConfigError(
            f"the vault audit log is chained under key {recorded} but vault.audit_key_file "
            f"holds key {key.key_id}: restore the file the log was written with"
        )
    if recorded is None:
        conn.execute(insert(vault_meta).values(key=META_KEY_ID, value=key.key_id))
    if _head(conn)[0]:
        return 0
    count, digest = legacy_digest(conn)
    if not count:
        return 0
    values = {"at": now, "who": "vault", "peer": "in-process", "action": SEAL_ACTION,
              "why": f"{count} row(s) written before the chain began; sha256 {digest}",
              "token": None, "merchant_id": None}  # fmt: skip
    mac = key.mac(1, content_hash(1, values), GENESIS)
    conn.execute(insert(vault_audit).values(**values, seq=1, mac=mac))
    return count


async def start(store: VaultDatabase, key_file: EvidenceKeyFile, now: datetime) -> EvidenceKey:
    """The audit key for this vault: loaded, or made on first use — only while no chain
    exists, so a lost key file is an error rather than a silent new chain. Seals what
    needs sealing."""
    if not key_file.exists():
        if await store.read(is_chained):
            raise VaultConfigError(
                f"{key_file.path}: the vault audit key file is missing, but the audit log "
                "is already chained under a key: restore the file"
            )
        key_file.create()
    key = key_file.load()
    try:
        await store.write(functools.partial(seal, key=key, now=now))
    except BaseException:
        key.close()
        raise
    return key


# --------------------------------------------------------------------------- checking


@dataclass
class AuditWalk:
    rows: int = 0  # audit rows counted: those before the chain and the chained ones
    head_seq: int = 0
    head_mac: str = GENESIS
    sealed: int = 0  # rows sealed from before the chain (full walks only)
    macs: dict[int, str | None] = field(default_factory=dict)
    findings: Findings = field(default_factory=Findings)


def _row_at(conn: Connection, seq: int) -> Row[Any] | None:
    return conn.execute(select(vault_audit).where(vault_audit.c.seq == seq)).first()


def walk(
    conn: Connection, key: EvidenceKey, *, since: Checkpoint | None = None,
    want: Collection[int] = (),
) -> AuditWalk:  # fmt: skip
    """Check the chain, from the start or — when the row at ``since`` still has the MAC
    that checkpoint signed — from there on; remember the MACs at the ``want`` seqs."""
    w = AuditWalk()
    recorded = recorded_key_id(conn)
    if recorded is not None and recorded != key.key_id:
        w.findings.add(None, f"the audit log is chained under key {recorded}; this key file "
                             f"holds key {key.key_id}")  # fmt: skip
        return w
    start_seq, prev = 0, GENESIS
    if since is not None and since.seq > 0:
        at = _row_at(conn, since.seq)
        if at is not None and macs_equal(at.mac, since.head_mac):
            start_seq, prev, w.rows = since.seq, since.head_mac, since.count
            w.macs[since.seq] = at.mac
    if start_seq == 0:
        _check_before_chain(conn, w)
    w.head_seq, w.head_mac = start_seq, prev
    expected, after, gap = start_seq + 1, start_seq, False
    while True:
        rows = conn.execute(
            select(vault_audit).where(vault_audit.c.seq > after).order_by(vault_audit.c.seq)
            .limit(BATCH)
        ).all()  # fmt: skip
        if not rows:
            return w
        for r in rows:
            if r.seq != expected:
                if r.seq == expected + 1:
                    w.findings.add(expected, "missing (deleted)")
                else:
                    w.findings.add(None, f"rows {expected}-{r.seq - 1} missing (deleted)")
                gap = True
            if r.mac is None:
                w.findings.add(r.seq, "no MAC: written outside the chain")
            elif not gap and not macs_equal(
                key.mac(r.seq, content_hash(r.seq, _values(r)), prev), r.mac
            ):
                w.findings.add(
                    r.seq, "MAC does not match: changed, inserted, or MAC'ed with another key"
                )
            prev, expected, gap = r.mac or GENESIS, r.seq + 1, False
            w.rows += 1
            w.head_seq, w.head_mac = r.seq, prev
            if r.seq in want:
                w.macs[r.seq] = r.mac
        after = rows[-1].seq


def _check_before_chain(conn: Connection, w: AuditWalk) -> None:
    """The rows without ``seq``: exactly those the seal row (seq 1) names."""
    count, digest = legacy_digest(conn)
    w.rows += count
    first = _row_at(conn, 1)
    sealed = _SEAL_WHY.fullmatch(first.why) if first is not None else None
    if first is None or first.action != SEAL_ACTION or sealed is None:
        if count:
            w.findings.add(None, f"{count} row(s) carry no MAC and no seal covers them: "
                                 "written behind the vault's back")  # fmt: skip
        return
    w.sealed = int(sealed[1])
    if (count, digest) != (w.sealed, sealed[2]):
        w.findings.add(None, f"the {w.sealed} row(s) written before the chain began changed "
                             f"since they were sealed (now {count} such rows)")  # fmt: skip


@dataclass(frozen=True)
class AuditReport:
    rows: int
    head_seq: int
    head_mac: str
    sealed: int
    problems: tuple[ChainProblem, ...]
    more_problems: int = 0
    checkpoints: int = 0  # checkpoints accepted and compared

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [p.line("row") for p in self.problems]
        if self.more_problems:
            out.append(f"… and {self.more_problems} more problem(s)")
        return out


async def verify(
    store: VaultDatabase,
    key: EvidenceKey,
    checkpoints: Sequence[tuple[str, Checkpoint]] = (),
    *,
    since: Checkpoint | None = None,
) -> AuditReport:
    want = {cp.seq for _, cp in checkpoints}
    w = await store.read(functools.partial(walk, key=key, since=since, want=want))
    accepted = check_checkpoints(
        w.findings, key, checkpoints, head_seq=w.head_seq, count=w.rows, macs=w.macs
    )
    return AuditReport(w.rows, w.head_seq, w.head_mac, w.sealed, tuple(w.findings.problems),
                       w.findings.more, accepted)  # fmt: skip


async def make_checkpoint(
    store: VaultDatabase, key: EvidenceKey, now: datetime, saved: CheckpointDir | None = None
) -> tuple[Checkpoint, AuditReport]:
    """Verify (from the newest checkpoint ``saved`` holds, else from the start), then
    sign the head; :class:`AuditChainBroken` instead if anything does not verify."""
    found, _skipped = saved.newest(key) if saved is not None else (None, [])
    base = found[1] if found is not None else None
    checks = [(str(found[0]), found[1])] if found is not None else []
    report = await verify(store, key, checks, since=base)
    if not report.ok:
        raise AuditChainBroken(
            f"the vault audit log does not verify ({report.lines()[0]}); no checkpoint signed"
        )
    cp = Checkpoint.make(key, seq=report.head_seq, count=report.rows, head_mac=report.head_mac,
                         at=now)  # fmt: skip
    return cp, report


async def checkpoint_now(
    store: VaultDatabase, key: EvidenceKey, now: datetime, saved: CheckpointDir
) -> Checkpoint | None:
    """One periodic round: a new checkpoint in ``saved`` if the head moved since the
    newest one there (None if it did not). Raises as :func:`make_checkpoint` does."""
    found, _skipped = saved.newest(key)
    cp, _report = await make_checkpoint(store, key, now, saved)
    if found is not None and (found[1].seq, found[1].count) == (cp.seq, cp.count):
        return None
    if cp.count == 0:
        return None
    saved.save(cp)
    return cp


async def run_checkpoints(
    store: VaultDatabase,
    key: EvidenceKey,
    now: Callable[[], datetime],
    saved: CheckpointDir,
    interval_s: float,
) -> None:
    """Every ``interval_s`` (first at once): :func:`checkpoint_now`. A chain that does not
    verify is logged (error id only) and gets no checkpoint; the loop goes on."""
    while True:
        try:
            cp = await checkpoint_now(store, key, now(), saved)
            if cp is not None:
                log.event("audit_checkpoint", count=cp.seq)
        except VaultError as exc:
            log.event("audit_checkpoint", level=logging.ERROR, error_id=exc.error_id)
        except OSError:
            log.event("audit_checkpoint", level=logging.ERROR, error_id="checkpoint-dir-unwritable")
        except Exception:  # a database hiccup: the next round tries again
            log.event("audit_checkpoint", level=logging.ERROR, error_id="checkpoint-failed")
        await asyncio.sleep(interval_s)
