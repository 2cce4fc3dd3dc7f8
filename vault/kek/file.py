"""The key-file KEK provider: versioned AES-256 KEKs in a 0600 file (:mod:`vault.keyfile`).

KEKs are read into memory when the provider starts (and again by :meth:`refresh`, or
when an unknown KEK id shows up — another process may have rotated). Generating and
retiring keys rewrite the file atomically under its lock.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import KekNotFound, KeyUnwrapFailed, VaultError
from vault.kek import DATA_KEY_BYTES, WRAP_NONCE_BYTES, dek_aad, split_wrapped
from vault.keyfile import DEFAULT_SCRYPT_N, KeyFile, KeySet
from vault.keyids import key_version


class FileKekProvider:
    kind = "file"

    def __init__(self, path: Path, *, passphrase: str = "", scrypt_n: int = DEFAULT_SCRYPT_N):
        self._file = KeyFile(path, kind="kek", passphrase=passphrase, scrypt_n=scrypt_n)
        self._lock = threading.Lock()
        self._keys = KeySet()
        self._ciphers: dict[str, AESGCM] = {}
        if self._file.exists():
            self._load()

    def _load(self) -> None:
        fresh = self._file.load()
        with self._lock:
            old, self._keys = self._keys, fresh
            self._ciphers = {k: AESGCM(v) for k, v in fresh.keys.items()}
        old.wipe()

    @property
    def current_id(self) -> str:
        current = self._keys.current
        if current is None:
            raise KekNotFound("no KEK yet: run `arspay vault init`")
        return current

    def wrap(self, data_key: bytearray) -> tuple[str, bytes]:
        kek_id = self.current_id
        nonce = secrets.token_bytes(WRAP_NONCE_BYTES)
        return kek_id, nonce + self._ciphers[kek_id].encrypt(nonce, data_key, dek_aad(kek_id))

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytearray:
        nonce, sealed = split_wrapped(wrapped)
        cipher = self._ciphers.get(kek_id)
        if cipher is None:
            self.refresh()
            cipher = self._ciphers.get(kek_id)
            if cipher is None:
                raise KekNotFound(f"KEK {kek_id} is not in the key file")
        out = bytearray(DATA_KEY_BYTES)
        try:
            cipher.decrypt_into(nonce, sealed, dek_aad(kek_id), out)
        except InvalidTag:
            raise KeyUnwrapFailed(f"data key does not unwrap under KEK {kek_id}") from None
        return out

    def generate_new(self) -> str:
        with self._file.editing() as keys:
            kek_id = keys.add_new()
        self._load()
        return kek_id

    def retire(self, kek_id: str) -> None:
        with self._file.editing() as keys:
            if kek_id == keys.current:
                raise VaultError("the current KEK cannot be retired")
            keys.remove(kek_id)
        self._load()

    def kek_ids(self) -> list[str]:
        return sorted(self._keys.keys, key=key_version)

    def refresh(self) -> None:
        if self._file.exists():
            self._load()

    def close(self) -> None:
        with self._lock:
            self._keys.wipe()
            self._ciphers = {}
        self._file.close()
