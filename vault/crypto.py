"""Envelope encryption of card records.

Each record gets its own random 256-bit data key. The record plaintext
(:func:`vault.card.encode`) is encrypted with AES-256-GCM under a random 96-bit nonce;
the associated data binds the ciphertext to its token, its merchant and the record
format version, so a ciphertext copied to another row, merchant or version fails the
tag check. The data key is then wrapped by the current KEK (:mod:`vault.kek`) and only
``(kek_id, wrapped_key, nonce, ciphertext)`` is stored. Data keys and plaintexts live in
``bytearray`` buffers that are wiped as soon as they are no longer needed.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.card import random_into, wipe
from vault.errors import RecordTampered
from vault.kek import DATA_KEY_BYTES, KekProvider

RECORD_VERSION: Final = 1
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16


@dataclass(frozen=True)
class EncryptedRecord:
    """What the store keeps for a card: no plaintext, no unwrapped key."""

    kek_id: str
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes
    version: int = RECORD_VERSION


def associated_data(token: str, merchant_id: str, version: int) -> bytes:
    """``"arspay-vault/record" || len||token || len||merchant || version`` (unambiguous)."""
    t, m = token.encode("ascii"), merchant_id.encode("utf-8")
    return b"arspay-vault/record" + struct.pack(
        f">H{len(t)}sH{len(m)}sH", len(t), t, len(m), m, version
    )


class Envelope:
    """Seals and opens records with per-record data keys wrapped by ``kek``."""

    def __init__(self, kek: KekProvider) -> None:
        self.kek = kek

    def seal(self, plaintext: bytearray, *, token: str, merchant_id: str) -> EncryptedRecord:
        data_key = random_into(DATA_KEY_BYTES)
        try:
            nonce = secrets.token_bytes(NONCE_BYTES)
            aad = associated_data(token, merchant_id, RECORD_VERSION)
            ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, aad)
            kek_id, wrapped = self.kek.wrap(data_key)
        finally:
            wipe(data_key)
        return EncryptedRecord(kek_id, wrapped, nonce, ciphertext, RECORD_VERSION)

    def open(self, record: EncryptedRecord, *, token: str, merchant_id: str) -> bytearray:
        """The plaintext (caller wipes it). :class:`RecordTampered` if anything differs;
        :class:`~vault.errors.KeyUnwrapFailed` if the wrapped key or KEK is wrong."""
        data_key = self.kek.unwrap(record.kek_id, record.wrapped_key)
        try:
            if len(record.nonce) != NONCE_BYTES or len(record.ciphertext) < TAG_BYTES:
                raise RecordTampered("record nonce or ciphertext has the wrong length")
            out = bytearray(len(record.ciphertext) - TAG_BYTES)
            aad = associated_data(token, merchant_id, record.version)
            try:
                AESGCM(data_key).decrypt_into(record.nonce, record.ciphertext, aad, out)
            except InvalidTag:
                wipe(out)
                raise RecordTampered("record does not authenticate (changed or moved)") from None
            return out
        finally:
            wipe(data_key)

    def rewrap(self, kek_id: str, wrapped: bytes) -> tuple[str, bytes]:
        """Unwrap under ``kek_id`` and wrap again under the current KEK."""
        data_key = self.kek.unwrap(kek_id, wrapped)
        try:
            return self.kek.wrap(data_key)
        finally:
            wipe(data_key)
