"""The consent evidence key: one secret in its own key file, outside the database.

HKDF derives from it the HMAC-SHA-256 key that chains the consent records and the
Ed25519 key that signs checkpoints (:mod:`vault.evidence`). It is the engine's own key,
not the vault's KEK: the engine MACs every consent record itself, also when the vault
runs as a separate process and the engine holds no card key, and the evidence does
not depend on which KEK provider (file or PKCS#11) the vault uses nor die with a KEK
that a rotation destroys.

``consent.key_file`` (default ``<paths.var_dir>/consent/evidence.key``, mode 0600) is
made on first use — but only while no consent record is sealed: once the chain is
keyed, a missing file is an error (restore it), never a silent new key. Every engine
sharing a database needs the same file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ivr.errors import ConfigError
from ivr.settings import Settings
from vault.errors import VaultError
from vault.evidence import CheckpointDir, EvidenceKey, EvidenceKeyFile

log = logging.getLogger(__name__)

LEDGER = "consent"


def key_path(settings: Settings) -> Path:
    return settings.consent.key_file or settings.paths.var_dir / "consent" / "evidence.key"


def checkpoint_dir(settings: Settings) -> CheckpointDir:
    path = settings.consent.checkpoint_dir or settings.paths.var_dir / "consent" / "checkpoints"
    return CheckpointDir(path, LEDGER)


class ConsentKeys:
    """The key file, read once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = EvidenceKeyFile(path, ledger=LEDGER)
        self._key: EvidenceKey | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ConsentKeys:
        return cls(key_path(settings))

    def exists(self) -> bool:
        return self._key is not None or self._file.exists()

    def load(self, *, create: bool) -> EvidenceKey:
        """The key; with ``create``, a missing file is made first (the caller knows no
        record is sealed yet). Errors are :class:`~ivr.errors.ConfigError`."""
        if self._key is not None:
            return self._key
        try:
            if not self._file.exists():
                if not create:
                    raise ConfigError(
                        f"{self.path}: the consent evidence key file is missing, but the "
                        "consent records are sealed under a key: restore the file (every "
                        "engine writing consent records needs the same one)"
                    )
                if self._file.create():
                    log.info("consent evidence key file created")
            self._key = self._file.load()
        except VaultError as exc:
            raise ConfigError(exc.message) from None
        return self._key

    def close(self) -> None:
        if self._key is not None:
            self._key.close()
            self._key = None
