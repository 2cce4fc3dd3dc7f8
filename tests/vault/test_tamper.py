"""Tamper tests, for both KEK providers: any changed bit in what the store keeps, a
record moved to another token or merchant, or the wrong KEK is refused with a vault
error — never garbage plaintext."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from ivr.clock import FakeClock
from tests.vault.vault_helpers import CANARY, KekSetup, SoftHsm
from vault.card import CardData, encode, random_into
from vault.crypto import Envelope, associated_data
from vault.errors import (
    IntegrityFailure,
    KekNotFound,
    KeyUnwrapFailed,
    RecordTampered,
    TokenNotFound,
)
from vault.kek import KekProvider
from vault.kek.file import FileKekProvider
from vault.schema import vault_records
from vault.service import LocalVault

pytestmark = pytest.mark.anyio

WHO = {"who": "test", "why": "tamper test"}


def flip(data: bytes, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


async def _row(vault: LocalVault, token: str) -> Any:
    return await vault.store.read(
        lambda c: c.execute(select(vault_records).where(vault_records.c.token == token)).one()
    )


async def _set(vault: LocalVault, token: str, **values: Any) -> None:
    await vault.store.write(
        lambda c: c.execute(
            update(vault_records).where(vault_records.c.token == token).values(**values)
        )
    )


async def _reveal(vault: LocalVault, token: str, merchant: str = "mer_1") -> CardData:
    async with vault.reveal(token, merchant, **WHO) as card:
        return CardData(card.pan, card.expiry, card.birth)


async def test_round_trip(vault: LocalVault) -> None:
    meta = await vault.tokenize("mer_1", CANARY, who="test")
    assert await _reveal(vault, meta.token) == CANARY


@pytest.mark.parametrize("column", ["ciphertext", "nonce", "wrapped_key"])
@pytest.mark.parametrize("bit", [0, 7, 100, 300, 479])
async def test_a_flipped_bit_is_rejected(vault: LocalVault, column: str, bit: int) -> None:
    meta = await vault.tokenize("mer_1", CANARY, who="test")
    row = await _row(vault, meta.token)
    await _set(vault, meta.token, **{column: flip(bytes(getattr(row, column)), bit)})
    expected = KeyUnwrapFailed if column == "wrapped_key" else RecordTampered
    with pytest.raises(expected) as err:
        await _reveal(vault, meta.token)
    assert err.value.error_id in ("vault-record-tampered", "vault-key-unwrap-failed")
    assert CANARY.pan not in str(err.value)


@pytest.mark.parametrize("column", ["ciphertext", "nonce", "wrapped_key"])
async def test_truncated_or_extended_fields_are_rejected(vault: LocalVault, column: str) -> None:
    meta = await vault.tokenize("mer_1", CANARY, who="test")
    row = await _row(vault, meta.token)
    value = bytes(getattr(row, column))
    for changed in (value[:-1], value + b"\0", b""):
        await _set(vault, meta.token, **{column: changed})
        with pytest.raises(IntegrityFailure):
            await _reveal(vault, meta.token)


async def test_record_moved_to_another_merchant_is_rejected(vault: LocalVault) -> None:
    meta = await vault.tokenize("mer_1", CANARY, who="test")
    await _set(vault, meta.token, merchant_id="mer_2")  # a DBA "reassigns" the card
    with pytest.raises(TokenNotFound):
        await _reveal(vault, meta.token, "mer_1")
    with pytest.raises(RecordTampered):  # associated data binds the merchant
        await _reveal(vault, meta.token, "mer_2")


async def test_ciphertext_copied_to_another_token_is_rejected(vault: LocalVault) -> None:
    victim = await vault.tokenize("mer_1", CANARY, who="test")
    other = await vault.tokenize("mer_1", CardData("4111111111111111", "0130", "850101"),
                                 who="test")  # fmt: skip
    row = await _row(vault, victim.token)
    await _set(vault, other.token, kek_id=row.kek_id, wrapped_key=row.wrapped_key,
               nonce=row.nonce, ciphertext=row.ciphertext)  # fmt: skip
    with pytest.raises(RecordTampered):  # associated data binds the token
        await _reveal(vault, other.token)


async def test_record_version_is_bound(vault: LocalVault) -> None:
    meta = await vault.tokenize("mer_1", CANARY, who="test")
    await _set(vault, meta.token, version=2)
    with pytest.raises(RecordTampered):
        await _reveal(vault, meta.token)


async def test_wrapped_key_under_another_kek_id_is_rejected(vault: LocalVault) -> None:
    """A wrapped key relabelled with another (existing) KEK id: the wrong KEK."""
    old = await vault.tokenize("mer_1", CANARY, who="test")
    old_kek = (await _row(vault, old.token)).kek_id
    new_kek = vault.kek.generate_new()
    await vault.store.sync_keks(vault.kek.kind, new_kek, vault.clock.now())
    await _set(vault, old.token, kek_id=new_kek)
    with pytest.raises(KeyUnwrapFailed):
        await _reveal(vault, old.token)
    await _set(vault, old.token, kek_id=old_kek)
    assert await _reveal(vault, old.token) == CANARY


async def test_unknown_kek_id_is_rejected(vault: LocalVault) -> None:
    meta = await vault.tokenize("mer_1", CANARY, who="test")
    await _set(vault, meta.token, kek_id="v99-00000000")
    with pytest.raises(KekNotFound):
        await _reveal(vault, meta.token)


def _same_id_other_key(kek: KekSetup, tmp_path: Path, softhsm: SoftHsm | None) -> KekProvider:
    """A second provider holding a *different* KEK under the same id."""
    kek_id = kek.provider.current_id
    if kek.kind == "file":
        import json

        other = FileKekProvider(tmp_path / "other" / "kek.key")
        other.generate_new()
        path = tmp_path / "other" / "kek.key"
        doc = json.loads(path.read_text())
        doc["keys"][0]["id"] = doc["current"] = kek_id
        path.write_text(json.dumps(doc))
        other.refresh()
        return other
    assert softhsm is not None
    import pkcs11

    from vault.kek.pkcs11 import kek_template

    other = softhsm.provider(softhsm.take())
    session = other._open()  # type: ignore[attr-defined]
    flags = pkcs11.MechanismFlag.ENCRYPT | pkcs11.MechanismFlag.DECRYPT
    session.generate_key(pkcs11.KeyType.AES, 256, id=kek_id.encode(), label="arspay-kek",
                         store=True, template=kek_template(), capabilities=flags)  # fmt: skip
    other.refresh()
    return other


async def test_wrong_kek_with_the_same_id_is_rejected(
    kek: KekSetup, vault: LocalVault, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    meta = await vault.tokenize("mer_1", CANARY, who="test")
    row = await _row(vault, meta.token)
    hsm = request.getfixturevalue("softhsm") if kek.kind == "pkcs11" else None
    other = _same_id_other_key(kek, tmp_path, hsm)
    try:
        assert other.current_id == row.kek_id
        with pytest.raises(KeyUnwrapFailed):
            other.unwrap(row.kek_id, bytes(row.wrapped_key))
        # and a record sealed elsewhere cannot be opened here
        sealed = Envelope(other).seal(encode(CANARY), token=meta.token, merchant_id="mer_1")
        await _set(vault, meta.token, wrapped_key=sealed.wrapped_key, nonce=sealed.nonce,
                   ciphertext=sealed.ciphertext)  # fmt: skip
        with pytest.raises(KeyUnwrapFailed):
            await _reveal(vault, meta.token)
    finally:
        other.close()


async def test_envelope_directly(kek: KekSetup) -> None:
    env = Envelope(kek.provider)
    plain = encode(CANARY)
    sealed = env.seal(plain, token="tok_aaaaaaaaaaaaaaaaaaaaaaaa", merchant_id="m")
    assert len(sealed.wrapped_key) == 60
    assert len(sealed.nonce) == 12
    assert bytes(plain) not in sealed.ciphertext
    out = env.open(sealed, token="tok_aaaaaaaaaaaaaaaaaaaaaaaa", merchant_id="m")
    assert out == plain
    with pytest.raises(RecordTampered):
        env.open(sealed, token="tok_baaaaaaaaaaaaaaaaaaaaaaa", merchant_id="m")
    # associated data is unambiguous: ("ab", "c") and ("a", "bc") differ
    assert associated_data("tok_a", "bc", 1) != associated_data("tok_ab", "c", 1)


async def test_data_keys_are_per_record(kek: KekSetup) -> None:
    env = Envelope(kek.provider)
    a = env.seal(encode(CANARY), token="tok_aaaaaaaaaaaaaaaaaaaaaaaa", merchant_id="m")
    b = env.seal(encode(CANARY), token="tok_aaaaaaaaaaaaaaaaaaaaaaaa", merchant_id="m")
    assert a.wrapped_key != b.wrapped_key
    assert a.ciphertext != b.ciphertext
    ka = kek.provider.unwrap(a.kek_id, a.wrapped_key)
    kb = kek.provider.unwrap(b.kek_id, b.wrapped_key)
    assert len(ka) == 32
    assert ka != kb


async def test_failed_decrypts_are_audited_and_logged_by_id_only(
    vault: LocalVault, caplog: pytest.LogCaptureFixture
) -> None:
    meta = await vault.tokenize("mer_1", CANARY, who="test")
    row = await _row(vault, meta.token)
    await _set(vault, meta.token, ciphertext=flip(bytes(row.ciphertext), 5))
    caplog.set_level("DEBUG", logger="vault")
    with pytest.raises(RecordTampered):
        await _reveal(vault, meta.token)
    entries = await vault.audit(token=meta.token)
    assert [e.action for e in entries] == ["reveal", "tokenize"]
    assert "error=vault-record-tampered" in caplog.text
    assert CANARY.pan not in caplog.text
    assert "tamper test" not in caplog.text


async def test_random_into_fills_fresh_buffers() -> None:
    a, b = random_into(32), random_into(32)
    assert len(a) == 32
    assert a != b
    assert a != bytearray(32)


async def test_clock_is_used_for_expiry(vault: LocalVault, vault_clock: FakeClock) -> None:
    from datetime import timedelta

    from vault.errors import InvalidExpiry

    vault_clock.advance(timedelta(days=366 * 5))  # 2031: an 12/30 card has expired
    with pytest.raises(InvalidExpiry):
        await vault.tokenize("mer_1", CANARY, who="test")
