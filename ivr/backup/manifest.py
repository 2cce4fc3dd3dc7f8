"""The archive's manifest (``manifest.json``, its first member): what the archive holds
and what reading it needs — never key material.

It records the format, when and by which arspay the archive was made, each database
(dialect, the member holding it, its schema revision, its rows per table at the
snapshot), each member's SHA-256 and size, the KEK ids its card records are wrapped
with, and the key files (by setting) a restore needs besides the KEKs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ivr.backup.errors import ArchiveInvalid

FORMAT = "arspay-backup/1"
MANIFEST = "manifest.json"

# The key files a restored system needs (none of them is ever in the archive).
KEYS_NEEDED = (
    "vault.key_file (or the PKCS#11 token): the KEKs named in kek_ids",
    "vault.fingerprint_key_file",
    "vault.audit_key_file",
    "consent.key_file",
    "console.mfa_key_file",
    "gateway.accounts_key_file",
)


@dataclass(frozen=True)
class Member:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class DatabaseInfo:
    """One database in the archive. ``revision``: the engine's Alembic revision, the
    vault's ``schema_version``; ``tables``: rows per table in the snapshot."""

    role: str  # engine | vault
    dialect: str  # sqlite | postgresql
    member: str
    revision: str | None
    tables: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    format: str
    created_at: datetime
    arspay_version: str
    engine: DatabaseInfo
    vault: DatabaseInfo
    members: tuple[Member, ...]
    kek_ids: tuple[str, ...]
    keys_needed: tuple[str, ...] = KEYS_NEEDED
    tools: dict[str, str] = field(default_factory=dict)

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    def to_json(self) -> bytes:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise ArchiveInvalid(f"not an {FORMAT} archive (format {data.get('format')!r})")
            return cls(
                format=data["format"],
                created_at=datetime.fromisoformat(data["created_at"]),
                arspay_version=str(data["arspay_version"]),
                engine=_database(data["engine"]),
                vault=_database(data["vault"]),
                members=tuple(
                    Member(str(m["name"]), str(m["sha256"]), int(m["size"]))
                    for m in data["members"]
                ),
                kek_ids=tuple(str(k) for k in data["kek_ids"]),
                keys_needed=tuple(str(k) for k in data["keys_needed"]),
                tools={str(k): str(v) for k, v in data.get("tools", {}).items()},
            )
        except ArchiveInvalid:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ArchiveInvalid(f"the manifest is not readable: {type(exc).__name__}") from None


def _database(data: Any) -> DatabaseInfo:
    revision = data["revision"]
    return DatabaseInfo(
        role=str(data["role"]),
        dialect=str(data["dialect"]),
        member=str(data["member"]),
        revision=None if revision is None else str(revision),
        tables={str(k): int(v) for k, v in data["tables"].items()},
    )
