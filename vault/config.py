"""The vault's own configuration: the ``[vault]`` section, and what else it reads.

The vault imports nothing from the engine (``ivr``), so its settings model lives here.
The engine's :class:`ivr.settings.Settings` embeds :class:`VaultSettings` as its
``vault`` section (same TOML keys, same ``ARSPAY_VAULT_*`` variables) and satisfies
:class:`HostSettings` structurally: :mod:`vault.factory` takes any object shaped like
it, so the engine passes its whole settings and tests may pass a small stand-in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from vault.gateway_hosts import DEFAULT_GATEWAY_HOSTS, check_host_name


class VaultSettings(BaseModel):
    """The ``[vault]`` section (``ARSPAY_VAULT_*``): the vault's keys, database, socket
    and access policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["local", "remote"] = Field(
        "local",
        description="local: the engine opens the vault in-process; remote: it talks to "
        "`arspay vault serve` over vault.socket",
    )
    kek_provider: Literal["file", "pkcs11"] = "file"
    key_file: Path = Path("var/vault/kek.key")
    key_passphrase: SecretStr = SecretStr("")
    pkcs11_module: str = "/usr/lib/softhsm/libsofthsm2.so"
    pkcs11_token: str = "arspay"  # noqa: S105 - a token label, not a secret
    pkcs11_pin: SecretStr = SecretStr("")
    socket: Path = Path("var/vault/vault.sock")
    database_url: SecretStr = Field(
        SecretStr(""),
        description="the vault's own database; empty = sqlite+aiosqlite:///<var_dir>/vault/vault.db",
    )
    fingerprint_key_file: Path = Path("var/vault/fingerprint.key")
    max_frame_bytes: int = Field(65_536, ge=1_024, le=16 * 1024 * 1024)
    softhsm_conf: str = Field("", description="SOFTHSM2_CONF for the pkcs11 provider (empty: env)")
    rotation_batch: int = Field(500, ge=1, le=100_000, description="records re-wrapped per batch")
    orphan_grace_minutes: int = Field(
        60,
        ge=10,
        le=7 * 24 * 60,
        description="the engine erases a vault record no card refers to once it is this old",
    )
    sweep_interval_minutes: int = Field(
        60, ge=1, le=7 * 24 * 60, description="how often the engine sweeps orphan vault records"
    )
    engine_uids: tuple[int, ...] = Field(
        (),
        description="`vault serve`: uids whose processes hold the engine role on the socket "
        "(tokenize, metadata, billing keys, keyed charges, delete, tokens); with "
        "engine_gids also empty: the uid `vault serve` runs as",
    )
    engine_gids: tuple[int, ...] = Field(
        (), description="`vault serve`: a peer in one of these groups holds the engine role"
    )
    admin_uids: tuple[int, ...] = Field(
        (0,),
        description="`vault serve`: uids holding the admin role (delete, tokens, audit, "
        "status; never tokenize, decrypt or charge)",
    )
    admin_gids: tuple[int, ...] = Field(
        (), description="`vault serve`: a peer in one of these groups holds the admin role"
    )
    max_connections: int = Field(
        64,
        ge=1,
        le=10_000,
        description="`vault serve`: connections served at once; more "
        "are refused at once (vault-busy)",
    )
    handshake_timeout_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="`vault serve`: a new connection's first request must arrive within this",
    )
    idle_timeout_s: float = Field(
        60.0,
        gt=0,
        le=86_400,
        description="`vault serve`: a connection idle this long is "
        "closed (clients reuse theirs for half of it)",
    )

    @field_validator("engine_uids", "engine_gids", "admin_uids", "admin_gids", mode="before")
    @classmethod
    def _id_list(cls, value: Any) -> Any:
        """``ARSPAY_VAULT_ENGINE_UIDS="1001,1002"``: a comma-separated list from the env."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("engine_uids", "engine_gids", "admin_uids", "admin_gids")
    @classmethod
    def _ids_in_range(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 <= v < 2**32 - 1 for v in value):
            raise ValueError("uids and gids are 0 to 4294967294")
        return value

    audit_key_file: Path | None = Field(
        None,
        description="the secret that MACs the vault audit log and signs its checkpoints "
        "(made by `arspay vault init` or on first start, mode 0600, vault.key_passphrase "
        "applies); never in the database: keep a backup; empty: "
        "<paths.var_dir>/vault/audit.key",
    )
    audit_checkpoint_dir: Path | None = Field(
        None,
        description="where the vault (`vault serve`, or the engine with a local vault) "
        "writes signed checkpoints of its audit log; empty: "
        "<paths.var_dir>/vault/audit-checkpoints",
    )
    audit_checkpoint_interval_minutes: int = Field(
        60, ge=1, le=7 * 24 * 60, description="how often a vault audit checkpoint is written"
    )
    verify_birth_limit: int = Field(
        20,
        ge=1,
        le=1_000,
        description="the vault answers at most this many unmatched birth date checks of one "
        "card per 24 h (its own ceiling, behind the engine's per-card lock)",
    )
    gateway_hosts: tuple[str, ...] = Field(
        DEFAULT_GATEWAY_HOSTS,
        description="the only hosts a forwarding route (a PG account the engine names) may "
        "send card data to; plain http only to loopback ones. Refused routes are audited "
        "(vault-gateway-host-refused)",
    )

    @field_validator("gateway_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: Any) -> Any:
        """``ARSPAY_VAULT_GATEWAY_HOSTS="api.portone.io,127.0.0.1"`` from the env."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("gateway_hosts")
    @classmethod
    def _host_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_host_name(h) for h in value)


class PathsLike(Protocol):
    """Where the vault's default files live: ``<var_dir>/vault/...``."""

    @property
    def var_dir(self) -> Path: ...


class DatabaseLike(Protocol):
    """The connection tuning the vault's store shares with the engine's database."""

    @property
    def busy_timeout_ms(self) -> int: ...

    @property
    def pool_size(self) -> int: ...


class HostSettings(Protocol):
    """What :mod:`vault.factory` reads: the ``vault`` section, the runtime directory and
    the database tuning. :class:`ivr.settings.Settings` is one."""

    @property
    def vault(self) -> VaultSettings: ...

    @property
    def paths(self) -> PathsLike: ...

    @property
    def database(self) -> DatabaseLike: ...
