"""Values the vault returns. None of them holds card data beyond BIN6 and last 4."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CardMetadata:
    """What the engine may keep about a stored card (docs/product.md §5)."""

    token: str
    merchant_id: str
    bin6: str
    last4: str
    brand: str
    issuer: str | None
    card_type: str | None  # credit | check, when the BIN table knows
    owner_type: str  # personal | corporate (a business number was given)
    fingerprint: str  # HMAC-SHA256 hex: same card at the same merchant -> same value
    created_at: datetime


@dataclass(frozen=True)
class BirthCheck:
    """The answer of a knowledge-factor check (``verify_birth``): whether the birth date
    or business number keyed matched the stored one. Nothing else comes back."""

    matched: bool


@dataclass(frozen=True)
class TokenRef:
    """A stored record named, not opened: what the engine's orphan sweep lists."""

    token: str
    merchant_id: str
    created_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    who: str  # the caller's identity as it stated it
    peer: str  # how it reached the vault: "in-process" or "uid=…,pid=…" on the socket
    action: str
    why: str
    token: str | None
    merchant_id: str | None


@dataclass(frozen=True)
class KekInfo:
    kek_id: str
    state: str  # current | retiring | retired
    records: int
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class VaultStatus:
    kek_provider: str
    current_kek: str
    keks: tuple[KekInfo, ...]
    records: int


@dataclass(frozen=True)
class RotationReport:
    new_kek: str
    retired: tuple[str, ...]
    rewrapped: int
    seconds: float
