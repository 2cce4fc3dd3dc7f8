"""Key-encryption keys (KEKs): the :class:`KekProvider` interface and the wrap format.

A provider holds versioned KEKs and wraps / unwraps 256-bit data keys with them; the
KEK itself never leaves the provider (for PKCS#11 it never leaves the token). Both
providers use the same wrap: AES-256-GCM with a random 96-bit nonce and associated data
``arspay-vault/dek|<kek id>``, giving ``wrapped = nonce (12) || ciphertext (32) || tag
(16)`` — 60 bytes. A changed bit, a wrapped key presented under another KEK id, or the
wrong KEK fails the tag check (:class:`~vault.errors.KeyUnwrapFailed`).

Implementations: :mod:`vault.kek.file` (a 0600 key file) and :mod:`vault.kek.pkcs11`
(python-pkcs11; SoftHSM2 in tests).
"""

from __future__ import annotations

from typing import Final, Protocol

from vault.errors import KeyUnwrapFailed

DATA_KEY_BYTES: Final = 32
WRAP_NONCE_BYTES: Final = 12
WRAPPED_BYTES: Final = WRAP_NONCE_BYTES + DATA_KEY_BYTES + 16


class KekProvider(Protocol):
    """Versioned KEKs. Calls are synchronous and short (local file or token)."""

    kind: str  # "file" | "pkcs11"

    @property
    def current_id(self) -> str:
        """The KEK new data keys are wrapped with (:class:`KekNotFound` if none)."""
        ...

    def wrap(self, data_key: bytearray) -> tuple[str, bytes]:
        """Wrap with the current KEK: ``(kek_id, wrapped)``."""
        ...

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytearray:
        """The data key; the caller wipes it. :class:`KeyUnwrapFailed` on any mismatch."""
        ...

    def generate_new(self) -> str:
        """Create a new KEK version, make it current, return its id."""
        ...

    def retire(self, kek_id: str) -> None:
        """Destroy a KEK that is not current (data keys under it become unreadable)."""
        ...

    def kek_ids(self) -> list[str]:
        """Every KEK the provider holds, oldest first."""
        ...

    def refresh(self) -> None:
        """Forget cached state; see KEKs created or retired by another process."""
        ...

    def close(self) -> None: ...


def dek_aad(kek_id: str) -> bytes:
    return b"arspay-vault/dek|" + kek_id.encode("ascii")


def split_wrapped(wrapped: bytes) -> tuple[bytes, bytes]:
    """``(nonce, ciphertext+tag)``; a wrong length is a tampered wrapped key."""
    if len(wrapped) != WRAPPED_BYTES:
        raise KeyUnwrapFailed("wrapped data key has the wrong length")
    return wrapped[:WRAP_NONCE_BYTES], wrapped[WRAP_NONCE_BYTES:]
