"""A versioned key file: 256-bit keys in one JSON file, mode 0600, written atomically.

Layout (``format`` ``arspay-vault-keyfile/1``)::

    {"format": "arspay-vault-keyfile/1", "kind": "kek",
     "kdf": {"name": "scrypt", "salt": "<b64>", "n": 32768, "r": 8, "p": 1},
     "current": "v2-…",
     "keys": [{"id": "v1-…", "created_at": "…", "material": "<b64>"}, …]}

Without a passphrase ``kdf`` is ``{"name": "none"}`` and ``material`` is the raw key.
With one, a 256-bit key is derived with scrypt (parameters stored in the file) and each
``material`` is ``nonce || AES-256-GCM(key)`` with associated data
``format|kind|id``, so a key cannot be moved to another id or file kind unnoticed.

Loading refuses a file that is not a regular file or that group or others may access
(:class:`~vault.errors.KeyFileInsecure`). Changes take an exclusive ``flock`` on
``<file>.lock``, write a temporary 0600 file in the same directory, ``fsync`` it, and
``os.replace`` it over the old one (then ``fsync`` the directory): a crash leaves the
old file or the new one, never half of one.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from vault.card import random_into, wipe
from vault.errors import KeyFileInsecure, VaultConfigError
from vault.keyids import is_key_id, next_key_id

FORMAT: Final = "arspay-vault-keyfile/1"
KEY_BYTES: Final = 32
MAX_FILE_BYTES: Final = 1 << 20
DEFAULT_SCRYPT_N: Final = 1 << 15  # 32 MiB, ~0.1 s: paid once per process start


@dataclass(frozen=True)
class ScryptParams:
    salt: bytes
    n: int = DEFAULT_SCRYPT_N
    r: int = 8
    p: int = 1

    def to_json(self) -> dict[str, Any]:
        salt = base64.b64encode(self.salt).decode()
        return {"name": "scrypt", "salt": salt, "n": self.n, "r": self.r, "p": self.p}

    @classmethod
    def from_json(cls, data: Any) -> ScryptParams:
        try:
            params = cls(
                base64.b64decode(data["salt"]), int(data["n"]), int(data["r"]), int(data["p"])
            )
        except (KeyError, TypeError, ValueError):
            raise VaultConfigError("key file: bad scrypt parameters") from None
        n_ok = params.n & (params.n - 1) == 0 and (1 << 10) <= params.n <= (1 << 20)
        if not (n_ok and 1 <= params.r <= 16 and 1 <= params.p <= 4 and len(params.salt) >= 16):
            raise VaultConfigError("key file: scrypt parameters out of the accepted range")
        return params


@dataclass
class KeySet:
    """The keys of one file, oldest first. ``keys`` values are wiped by :meth:`wipe`."""

    current: str | None = None
    keys: dict[str, bytearray] = field(default_factory=dict)
    created_at: dict[str, str] = field(default_factory=dict)

    def add_new(self) -> str:
        key_id = next_key_id(self.keys)
        self.keys[key_id] = random_into(KEY_BYTES)
        self.created_at[key_id] = datetime.now(UTC).isoformat(timespec="seconds")
        self.current = key_id
        return key_id

    def remove(self, key_id: str) -> None:
        wipe(self.keys.pop(key_id, None))
        self.created_at.pop(key_id, None)

    def wipe(self) -> None:
        for material in self.keys.values():
            wipe(material)


class KeyFile:
    """One key file of a given ``kind`` (``kek`` or ``fingerprint``)."""

    def __init__(
        self, path: Path, *, kind: str, passphrase: str = "", scrypt_n: int = DEFAULT_SCRYPT_N
    ) -> None:
        self.path = path
        self.kind = kind
        self._passphrase = passphrase
        self._scrypt_n = scrypt_n
        self._derived: tuple[bytes, bytearray] | None = None  # (salt, key) cache
        self._params: ScryptParams | None = None  # of the file as last read

    def exists(self) -> bool:
        return self.path.exists()

    # ------------------------------------------------------------------ reading

    def load(self) -> KeySet:
        """Read and check the file. A missing file is a :class:`VaultConfigError`."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise VaultConfigError(f"{self.path}: no {self.kind} key file") from None
        except OSError as exc:
            raise VaultConfigError(f"{self.path}: cannot open ({exc.strerror})") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise VaultConfigError(f"{self.path}: not a regular file")
            if st.st_mode & 0o077:
                raise KeyFileInsecure(
                    f"{self.path}: key file is accessible by group or others (chmod 600 it)"
                )
            chunks: list[bytes] = []
            size = 0
            while size <= MAX_FILE_BYTES and (chunk := os.read(fd, 65536)):
                chunks.append(chunk)
                size += len(chunk)
            raw = b"".join(chunks)
        finally:
            os.close(fd)
        if len(raw) > MAX_FILE_BYTES:
            raise VaultConfigError(f"{self.path}: key file is too large")
        return self._parse(raw)

    def _parse(self, raw: bytes) -> KeySet:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT or data.get("kind") != self.kind:
                raise ValueError
            kdf = data["kdf"]
            entries = data["keys"]
            current = data["current"]
        except (ValueError, TypeError, KeyError, AttributeError):
            raise VaultConfigError(f"{self.path}: not an arspay {self.kind} key file") from None
        sealing = self._sealing_key(kdf)
        out = KeySet(current=current)
        try:
            for entry in entries:
                key_id, material = entry["id"], base64.b64decode(entry["material"])
                if not isinstance(key_id, str) or not is_key_id(key_id):
                    raise ValueError
                out.keys[key_id] = self._unseal(sealing, key_id, material)
                out.created_at[key_id] = str(entry.get("created_at", ""))
        except (ValueError, TypeError, KeyError):
            out.wipe()
            raise VaultConfigError(f"{self.path}: malformed key entry") from None
        if current is not None and current not in out.keys:
            out.wipe()
            raise VaultConfigError(f"{self.path}: current key is missing")
        return out

    def _sealing_key(self, kdf: Any) -> bytearray | None:
        name = kdf.get("name") if isinstance(kdf, dict) else None
        if name == "none":
            if self._passphrase:
                raise VaultConfigError(
                    f"{self.path}: a passphrase is configured but the key file is not "
                    "passphrase-protected"
                )
            return None
        if name != "scrypt":
            raise VaultConfigError(f"{self.path}: unknown key derivation")
        if not self._passphrase:
            raise VaultConfigError(
                f"{self.path}: key file is passphrase-protected: set vault.key_passphrase"
            )
        self._params = ScryptParams.from_json(kdf)
        return self._derive(self._params)

    def _derive(self, params: ScryptParams) -> bytearray:
        if self._derived is not None and self._derived[0] == params.salt:
            return self._derived[1]
        kdf = Scrypt(salt=params.salt, length=KEY_BYTES, n=params.n, r=params.r, p=params.p)
        key = bytearray(kdf.derive(self._passphrase.encode("utf-8")))
        if self._derived is not None:
            wipe(self._derived[1])
        self._derived = (params.salt, key)
        return key

    def _aad(self, key_id: str) -> bytes:
        return f"{FORMAT}|{self.kind}|{key_id}".encode()

    def _unseal(self, sealing: bytearray | None, key_id: str, material: bytes) -> bytearray:
        if sealing is None:
            if len(material) != KEY_BYTES:
                raise ValueError
            return bytearray(material)
        if len(material) != 12 + KEY_BYTES + 16:
            raise ValueError
        out = bytearray(KEY_BYTES)
        try:
            AESGCM(sealing).decrypt_into(material[:12], material[12:], self._aad(key_id), out)
        except InvalidTag:
            raise VaultConfigError(
                f"{self.path}: wrong passphrase, or the key file was changed"
            ) from None
        return out

    # ------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def editing(self) -> Iterator[KeySet]:
        """Lock, load (or start empty), let the caller change the set, write it back."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_fd = os.open(
            self.path.with_name(self.path.name + ".lock"),
            os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
            0o600,
        )
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            if self.exists():
                keys = self.load()
            else:
                keys, self._params = KeySet(), None
            try:
                yield keys
                self._write(keys)
            finally:
                keys.wipe()
        finally:
            os.close(lock_fd)  # releases the flock

    def _write(self, keys: KeySet) -> None:
        kdf: dict[str, Any] = {"name": "none"}
        sealing: bytearray | None = None
        if self._passphrase:
            params = self._params or ScryptParams(salt=secrets.token_bytes(16), n=self._scrypt_n)
            self._params = params
            kdf = params.to_json()
            sealing = self._derive(params)
        entries = []
        for key_id, material in keys.keys.items():
            if sealing is None:
                blob = bytes(material)
            else:
                nonce = secrets.token_bytes(12)
                blob = nonce + AESGCM(sealing).encrypt(nonce, material, self._aad(key_id))
            entries.append(
                {
                    "id": key_id,
                    "created_at": keys.created_at.get(key_id, ""),
                    "material": base64.b64encode(blob).decode(),
                }
            )
        doc = {"format": FORMAT, "kind": self.kind, "kdf": kdf, "current": keys.current,
               "keys": entries}  # fmt: skip
        _atomic_write(self.path, json.dumps(doc, indent=1).encode() + b"\n")

    def close(self) -> None:
        if self._derived is not None:
            wipe(self._derived[1])
            self._derived = None


def _atomic_write(path: Path, content: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
