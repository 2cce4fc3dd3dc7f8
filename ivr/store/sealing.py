"""Secrets the engine database holds sealed: AES-256-GCM under a key file (32 random
bytes, owner-only, made on first use), with a purpose and the owning row's id as
associated data, so a copy of the database alone opens nothing and a sealed value
cannot be moved to another row or another use. Users: the console's TOTP secrets
(:mod:`ivr.console.mfa`) and PG account secrets (:mod:`ivr.pg_accounts.store`)."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ivr.errors import ConfigError

log = logging.getLogger(__name__)

KEY_BYTES = 32
_SEALED = "v1:"  # sealed secret: "v1:" + base64(nonce 12 bytes + ciphertext + tag)


class SealingKey:
    """One key file; ``purpose`` names what it seals (in errors and the associated data)."""

    def __init__(self, path: Path, purpose: str) -> None:
        self.path = path
        self.purpose = purpose
        self._aead: AESGCM | None = None

    def _load(self, *, create: bool) -> AESGCM:
        if self._aead is not None:
            return self._aead
        if create and not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(FileExistsError):  # another process made it first
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(secrets.token_bytes(KEY_BYTES))
                log.info("%s key file created", self.purpose)
        try:
            mode = self.path.stat().st_mode
            key = self.path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(
                f"{self.purpose} key file {self.path} is missing (every engine "
                "process needs the same file)"
            ) from None
        if mode & 0o077:
            raise ConfigError(f"{self.path} must be readable by its owner only (chmod 600)")
        if len(key) != KEY_BYTES:
            raise ConfigError(f"{self.path} is not a {KEY_BYTES}-byte key")
        self._aead = AESGCM(key)
        return self._aead

    def _aad(self, owner: str) -> bytes:
        return f"arspay {self.purpose}\0{owner}".encode()

    def seal(self, secret: bytes, owner: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._load(create=True).encrypt(nonce, secret, self._aad(owner))
        return _SEALED + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, owner: str) -> bytes:
        if not sealed.startswith(_SEALED):
            raise ConfigError(f"a stored {self.purpose} secret has an unknown format")
        raw = base64.b64decode(sealed[len(_SEALED) :])
        try:
            return self._load(create=False).decrypt(raw[:12], raw[12:], self._aad(owner))
        except InvalidTag:
            raise ConfigError(
                f"a stored {self.purpose} secret does not open with this key file "
                f"({self.path}): is it the file the engine had when it was stored?"
            ) from None
