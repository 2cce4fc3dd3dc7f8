"""Building the vault from its settings (the one place that does).

Every function takes a :class:`~vault.config.HostSettings`: the engine passes its
:class:`ivr.settings.Settings` as it is (its ``vault`` section, ``paths.var_dir`` and the
``database`` tuning are all the vault reads).

``vault.kek_provider`` picks the KEK provider: ``file`` (``vault.key_file``, optional
``vault.key_passphrase``) or ``pkcs11`` (``vault.pkcs11_module``, ``pkcs11_token``,
``pkcs11_pin``, ``softhsm_conf``). The fingerprint key is always its own key file
(``vault.fingerprint_key_file``, same passphrase), never a KEK; so is the audit log's
evidence key (``vault.audit_key_file``): it must outlive every KEK rotation (old audit
rows stay verifiable when old KEKs are destroyed) and works the same whichever KEK
provider holds the card keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vault.audit_chain import LEDGER as AUDIT_LEDGER
from vault.card import wipe
from vault.clock import VaultClock, WallClock
from vault.config import HostSettings
from vault.errors import KekNotFound, VaultConfigError
from vault.evidence import CheckpointDir, EvidenceKeyFile
from vault.forwarding import CardGateway
from vault.kek import KekProvider
from vault.kek.file import FileKekProvider
from vault.keyfile import DEFAULT_SCRYPT_N, KeyFile
from vault.service import LocalVault
from vault.store import VaultStore
from vault.tokens import Fingerprinter


def database_url(settings: HostSettings) -> str:
    url = settings.vault.database_url.get_secret_value()
    return url or f"sqlite+aiosqlite:///{settings.paths.var_dir / 'vault' / 'vault.db'}"


def kek_provider(settings: HostSettings, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> KekProvider:
    v = settings.vault
    if v.kek_provider == "file":
        passphrase = v.key_passphrase.get_secret_value()
        return FileKekProvider(v.key_file, passphrase=passphrase, scrypt_n=scrypt_n)
    from vault.kek.pkcs11 import Pkcs11KekProvider  # loads python-pkcs11 only when used

    return Pkcs11KekProvider(
        v.pkcs11_module,
        v.pkcs11_token,
        v.pkcs11_pin.get_secret_value(),
        softhsm_conf=v.softhsm_conf,
    )


def fingerprint_key_file(settings: HostSettings, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> KeyFile:
    return KeyFile(
        settings.vault.fingerprint_key_file,
        kind="fingerprint",
        passphrase=settings.vault.key_passphrase.get_secret_value(),
        scrypt_n=scrypt_n,
    )


def audit_key_path(settings: HostSettings) -> Path:
    return settings.vault.audit_key_file or settings.paths.var_dir / "vault" / "audit.key"


def audit_key_file(settings: HostSettings) -> EvidenceKeyFile:
    return EvidenceKeyFile(
        audit_key_path(settings),
        ledger=AUDIT_LEDGER,
        passphrase=settings.vault.key_passphrase.get_secret_value(),
    )


def audit_checkpoints(settings: HostSettings) -> CheckpointDir:
    path = settings.vault.audit_checkpoint_dir
    return CheckpointDir(path or settings.paths.var_dir / "vault" / "audit-checkpoints",
                         AUDIT_LEDGER)  # fmt: skip


def load_fingerprinter(settings: HostSettings) -> Fingerprinter:
    keys = fingerprint_key_file(settings).load()
    try:
        if keys.current is None:
            raise VaultConfigError("fingerprint key file holds no key: run `arspay vault init`")
        return Fingerprinter(bytearray(keys.keys[keys.current]))
    finally:
        keys.wipe()


@dataclass(frozen=True)
class InitReport:
    kek_id: str
    kek_created: bool
    fingerprint_key_created: bool


def init_keys(settings: HostSettings, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> InitReport:
    """Create the first KEK and the fingerprint key where missing (idempotent)."""
    kek = kek_provider(settings, scrypt_n=scrypt_n)
    try:
        try:
            kek_id, created = kek.current_id, False
        except KekNotFound:
            kek_id, created = kek.generate_new(), True
    finally:
        kek.close()
    fp_file = fingerprint_key_file(settings, scrypt_n=scrypt_n)
    fp_created = False
    if not fp_file.exists():
        with fp_file.editing() as keys:
            keys.add_new()
        fp_created = True
    else:
        wipe(*fp_file.load().keys.values())  # checks mode and passphrase
    fp_file.close()
    return InitReport(kek_id, created, fp_created)


async def open_vault(
    settings: HostSettings, *, clock: VaultClock | None = None, gateway: CardGateway | None = None
) -> LocalVault:
    """A started :class:`LocalVault` (schema created, current KEK registered)."""
    kek = kek_provider(settings)
    try:
        fingerprinter = load_fingerprinter(settings)
    except BaseException:
        kek.close()
        raise
    store = VaultStore(
        database_url(settings),
        busy_timeout_ms=settings.database.busy_timeout_ms,
        pool_size=settings.database.pool_size,
    )
    vault = LocalVault(
        store,
        kek,
        fingerprinter,
        clock=clock or WallClock(),
        audit_key_file=audit_key_file(settings),
        gateway=gateway,
        rotation_batch=settings.vault.rotation_batch,
        verify_limit=settings.vault.verify_birth_limit,
        gateway_hosts=settings.vault.gateway_hosts,
    )
    return await vault.started()
