"""Tamper-evident logs: a keyed MAC chain over the records, and signed checkpoints of
its head, so that someone with full access to the database — but not to the key file —
can neither rewrite, insert nor delete records unnoticed.

* **The key** (:class:`EvidenceKey`): one random 256-bit secret in a key file of its own
  (:class:`EvidenceKeyFile`: the :mod:`vault.keyfile` format, mode 0600, never in the
  database), from which HKDF-SHA-256 derives, per ledger, an HMAC-SHA-256 key and an
  Ed25519 signing key. The public half names the deployment: ``key_id`` is the first 16
  hex digits of SHA-256 over the raw 32-byte public key.
* **The chain** (:meth:`EvidenceKey.mac`): record *n*'s MAC is HMAC-SHA-256 over
  ``arspay-chain/1|<ledger>|<n>|<sha256 of the record's content>|<MAC of record n-1>``;
  the first record chains from the ledger's anchor (its seal, or :data:`GENESIS`).
  Changing, inserting or removing a record breaks its MAC or the next one's, and only
  the key holder can compute new ones.
* **Checkpoints** (:class:`Checkpoint`): the chain head — sequence number, head MAC,
  record count, time — signed with Ed25519 into a small JSON document kept outside the
  database (:class:`CheckpointDir`, or handed to a merchant). Compared with the chain
  later it shows what no chain can show by itself: records deleted from the end (or
  all of them). Anyone holding the public key can check a checkpoint's signature.

The wire format of a checkpoint (every field but ``signature`` is signed, as the
canonical JSON of :func:`canonical`; ``public_key`` and ``signature`` are base64)::

    {"format": "arspay-checkpoint/1", "ledger": "consent", "seq": 42, "count": 42,
     "head_mac": "<64 hex>", "at": "2026-12-07T01:00:00.000000+00:00",
     "key_id": "<16 hex>", "public_key": "<base64>", "signature": "<base64>"}

The engine's consent ledger and the vault's audit log both use this module; it needs
nothing but :mod:`cryptography` and the vault's key file format.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.card import wipe
from vault.errors import CheckpointRefused, VaultConfigError
from vault.keyfile import DEFAULT_SCRYPT_N, KeyFile

GENESIS: Final = "0" * 64
CHECKPOINT_FORMAT: Final = "arspay-checkpoint/1"
PUBLIC_KEY_FORMAT: Final = "arspay-public-key/1"
MAX_DOCUMENT_BYTES: Final = 64 * 1024
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_LEDGER: Final = re.compile(r"[a-z][a-z0-9-]{0,31}")


def canonical(value: Any) -> bytes:
    """The one JSON encoding that is hashed, MAC'ed and signed: sorted keys, no spaces,
    UTF-8 (not ASCII-escaped)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def timestamp(value: datetime) -> str:
    """A UTC time as it is hashed and signed: ISO 8601, microseconds, ``+00:00``."""
    if value.tzinfo is None:
        raise ValueError("naive datetime in evidence")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def key_id_of(public_key: bytes) -> str:
    return sha256_hex(public_key)[:16]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class EvidenceKey:
    """The MAC and signing keys of one ledger, derived from its key file's secret.

    ``repr`` shows the key id only; :meth:`close` wipes the MAC key."""

    def __init__(self, secret: bytes | bytearray, ledger: str) -> None:
        if len(secret) != 32 or not _LEDGER.fullmatch(ledger):
            raise ValueError("an evidence key is 32 bytes for a named ledger")
        self.ledger = ledger
        self._mac_key = bytearray(_derive(secret, f"arspay evidence mac|{ledger}"))
        seed = _derive(secret, f"arspay evidence checkpoint signing|{ledger}")
        self._signing = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = self._signing.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id_of(self.public_key)

    def __repr__(self) -> str:
        return f"EvidenceKey({self.ledger}, key_id={self.key_id})"

    def mac(self, seq: int, content_hash: str, prev_mac: str) -> str:
        """The chain MAC of record ``seq`` (hex)."""
        message = f"arspay-chain/1|{self.ledger}|{seq}|{content_hash}|{prev_mac}".encode()
        return hmac.new(self._mac_key, message, hashlib.sha256).hexdigest()

    def mac_document(self, fields: Mapping[str, Any]) -> str:
        """The MAC of a small document (a ledger's seal), over its canonical JSON."""
        message = f"arspay-chain/1|{self.ledger}|document|".encode() + canonical(dict(fields))
        return hmac.new(self._mac_key, message, hashlib.sha256).hexdigest()

    def sign(self, payload: Mapping[str, Any]) -> str:
        """Base64 Ed25519 signature over the canonical JSON of ``payload``."""
        return _b64(self._signing.sign(canonical(dict(payload))))

    def public_key_document(self) -> dict[str, str]:
        """What ``… public-key`` exports: enough to check checkpoints offline."""
        pem = self._signing.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {"format": PUBLIC_KEY_FORMAT, "ledger": self.ledger, "algorithm": "Ed25519",
                "key_id": self.key_id, "public_key": _b64(self.public_key),
                "public_key_pem": pem.decode("ascii")}  # fmt: skip

    def close(self) -> None:
        wipe(self._mac_key)


def _derive(secret: bytes | bytearray, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(
        bytes(secret)
    )


def macs_equal(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a, b)


def verify_signature(public_key: bytes, payload: Mapping[str, Any], signature: str) -> bool:
    """Whether ``signature`` (base64) is ``public_key``'s Ed25519 signature of ``payload``."""
    try:
        raw = base64.b64decode(signature, validate=True)
        Ed25519PublicKey.from_public_bytes(public_key).verify(raw, canonical(dict(payload)))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


# --------------------------------------------------------------------------- key file


class EvidenceKeyFile:
    """A ledger's key file: one current 256-bit secret (kind ``<ledger>-evidence``, so
    the consent key and the vault audit key cannot be swapped unnoticed)."""

    def __init__(
        self, path: Path, *, ledger: str, passphrase: str = "", scrypt_n: int = DEFAULT_SCRYPT_N
    ) -> None:
        self.path = path
        self.ledger = ledger
        self._file = KeyFile(path, kind=f"{ledger}-evidence", passphrase=passphrase,
                             scrypt_n=scrypt_n)  # fmt: skip

    def exists(self) -> bool:
        return self._file.exists()

    def load(self) -> EvidenceKey:
        """The key; :class:`VaultConfigError` if the file is missing, open to others,
        or holds no key."""
        keys = self._file.load()
        try:
            if keys.current is None:
                raise VaultConfigError(f"{self.path}: the evidence key file holds no key")
            return EvidenceKey(keys.keys[keys.current], self.ledger)
        finally:
            keys.wipe()
            self._file.close()

    def create(self) -> bool:
        """Make the file with a fresh secret unless it exists (another process may make
        it at the same moment: the file lock keeps it to one); True if made here."""
        made = False
        with self._file.editing() as keys:
            if keys.current is None:
                keys.add_new()
                made = True
        self._file.close()
        return made


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True, slots=True)
class Checkpoint:
    ledger: str
    seq: int  # the head record's sequence number (0: an empty chain)
    count: int  # records in the chain up to and including the head
    head_mac: str
    at: datetime
    public_key: bytes
    signature: str  # base64

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def payload(self) -> dict[str, Any]:
        """The signed fields."""
        return {"format": CHECKPOINT_FORMAT, "ledger": self.ledger, "seq": self.seq,
                "count": self.count, "head_mac": self.head_mac, "at": timestamp(self.at),
                "key_id": self.key_id, "public_key": _b64(self.public_key)}  # fmt: skip

    def document(self) -> dict[str, Any]:
        return self.payload() | {"signature": self.signature}

    def to_json(self) -> str:
        return json.dumps(self.document(), indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def make(
        cls, key: EvidenceKey, *, seq: int, count: int, head_mac: str, at: datetime
    ) -> Checkpoint:
        unsigned = cls(key.ledger, seq, count, head_mac, at, key.public_key, "")
        return cls(key.ledger, seq, count, head_mac, at, key.public_key,
                   key.sign(unsigned.payload()))  # fmt: skip

    @classmethod
    def parse(cls, raw: bytes | str) -> Checkpoint:
        """Read a checkpoint document; :class:`CheckpointRefused` if it is not one."""
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise CheckpointRefused("not a checkpoint: too large")
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise CheckpointRefused("not a checkpoint: not JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointRefused(f"not a checkpoint: format is not {CHECKPOINT_FORMAT}")
        try:
            seq, count = doc["seq"], doc["count"]
            ledger, head_mac = doc["ledger"], doc["head_mac"]
            ok = (
                isinstance(seq, int) and isinstance(count, int) and seq >= 0 and count >= 0
                and not isinstance(seq, bool) and not isinstance(count, bool)
                and isinstance(ledger, str) and _LEDGER.fullmatch(ledger) is not None
                and isinstance(head_mac, str) and _HEX64.fullmatch(head_mac) is not None
                and isinstance(doc["signature"], str) and isinstance(doc["key_id"], str)
            )  # fmt: skip
            at = datetime.fromisoformat(doc["at"])
            public_key = base64.b64decode(doc["public_key"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise CheckpointRefused("not a checkpoint: a field is missing or malformed") from None
        if not ok or at.tzinfo is None or len(public_key) != 32:
            raise CheckpointRefused("not a checkpoint: a field is missing or malformed")
        cp = cls(ledger, seq, count, head_mac, at, public_key, doc["signature"])
        if set(doc) != set(cp.document()) or doc["key_id"] != cp.key_id:
            raise CheckpointRefused("not a checkpoint: unexpected or inconsistent fields")
        return cp

    def refusal(self, key: EvidenceKey) -> str | None:
        """Why this checkpoint cannot be evidence for ``key``'s ledger (None: it can)."""
        if self.ledger != key.ledger:
            return f"a checkpoint of the {self.ledger} ledger, not of {key.ledger}"
        if not hmac.compare_digest(self.public_key, key.public_key):
            return (
                f"signed by another key (key id {self.key_id}; this deployment's is "
                f"{key.key_id}): a checkpoint of another deployment, or forged"
            )
        if not verify_signature(self.public_key, self.payload(), self.signature):
            return "signature does not verify: the checkpoint was altered or forged"
        return None

    def compare(self, *, head_seq: int, count: int, mac_at_seq: str | None) -> str | None:
        """What contradicts this checkpoint in a chain whose head is ``head_seq`` holding
        ``count`` records and whose record ``self.seq`` has MAC ``mac_at_seq`` (None:
        consistent). The chain's own MACs are checked separately."""
        when = timestamp(self.at)
        if head_seq < self.seq or count < self.count:
            return (
                f"records deleted: the checkpoint of {when} covers {self.count} record(s) up "
                f"to seq {self.seq}; the chain now holds {count}, up to seq {head_seq}"
            )
        if self.seq == 0:
            return None
        if mac_at_seq is None:
            return f"record {self.seq}, the head of the checkpoint of {when}, is missing"
        if not hmac.compare_digest(mac_at_seq, self.head_mac):
            return (
                f"record {self.seq} is not the head the checkpoint of {when} signed: records "
                "up to it were rewritten, inserted or deleted"
            )
        return None


# --------------------------------------------------------------------------- directory


class CheckpointDir:
    """Checkpoint files of one ledger in a directory (0700; files 0644, written whole):
    ``<ledger>-<seq, 12 digits>-<UTC time>.json``, so names sort oldest first."""

    def __init__(self, path: Path, ledger: str) -> None:
        self.path = path
        self.ledger = ledger

    def _names(self) -> Iterator[Path]:
        with contextlib.suppress(FileNotFoundError):
            for entry in self.path.iterdir():
                if entry.name.startswith(f"{self.ledger}-") and entry.suffix == ".json":
                    yield entry

    def save(self, cp: Checkpoint) -> Path:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = cp.at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.path / f"{self.ledger}-{cp.seq:012d}-{stamp}.json"
        tmp = target.with_name(f".{target.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(cp.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        return target

    def newest(self, key: EvidenceKey) -> tuple[tuple[Path, Checkpoint] | None, list[str]]:
        """The newest checkpoint here that ``key`` accepts (and its file), and a line for
        each newer file it had to pass over (unreadable, malformed, not signed by
        ``key``)."""
        skipped: list[str] = []
        for path in sorted(self._names(), reverse=True):
            try:
                cp = Checkpoint.parse(path.read_bytes())
            except OSError as exc:
                skipped.append(f"checkpoint {path}: unreadable ({exc.strerror})")
                continue
            except CheckpointRefused as exc:
                skipped.append(f"checkpoint {path}: refused: {exc.message}")
                continue
            why = cp.refusal(key)
            if why is None:
                return (path, cp), skipped
            skipped.append(f"checkpoint {path}: refused: {why}")
        return None, skipped


# --------------------------------------------------------------------------- findings

MAX_PROBLEMS: Final = 100


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """One thing a verification found: the record (sequence number) and why, one line,
    never key material."""

    seq: int | None
    reason: str

    def line(self, noun: str = "record") -> str:
        return self.reason if self.seq is None else f"{noun} {self.seq}: {self.reason}"


class Findings:
    """Problems in the order found; past :data:`MAX_PROBLEMS` only counted."""

    def __init__(self, cap: int = MAX_PROBLEMS) -> None:
        self.problems: list[ChainProblem] = []
        self.more = 0
        self._cap = cap

    def add(self, seq: int | None, reason: str) -> None:
        if len(self.problems) < self._cap:
            self.problems.append(ChainProblem(seq, reason))
        else:
            self.more += 1

    def __bool__(self) -> bool:
        return bool(self.problems)


def check_checkpoints(
    findings: Findings,
    key: EvidenceKey,
    checkpoints: Sequence[tuple[str, Checkpoint]],
    *,
    head_seq: int,
    count: int,
    macs: Mapping[int, str | None],
) -> int:
    """Compare each ``(label, checkpoint)`` with a walked chain (its head, its record
    count and the MACs found at the checkpoints' sequence numbers); add a problem for
    each refused or contradicted one. Returns how many were accepted."""
    accepted = 0
    for label, cp in checkpoints:
        why = cp.refusal(key)
        if why is not None:
            findings.add(None, f"checkpoint {label}: refused: {why}")
            continue
        accepted += 1
        what = cp.compare(head_seq=head_seq, count=count, mac_at_seq=macs.get(cp.seq))
        if what is not None:
            findings.add(None, f"checkpoint {label}: {what}")
    return accepted
