"""KEK providers and key files: 0600 or nothing, passphrases with scrypt, versions,
atomic writes; PKCS#11 KEKs generated in the token, sensitive and non-extractable."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from tests.vault.vault_helpers import TEST_SCRYPT_N, SoftHsm
from vault.card import random_into
from vault.errors import KekNotFound, KeyFileInsecure, KeyUnwrapFailed, VaultConfigError, VaultError
from vault.kek.file import FileKekProvider
from vault.keyfile import KeyFile
from vault.keyids import is_key_id, key_version, newest, next_key_id


def test_key_ids() -> None:
    a = next_key_id([])
    assert is_key_id(a)
    assert key_version(a) == 1
    b = next_key_id([a, "junk"])
    assert key_version(b) == 2
    assert newest([a, b, "v0-zz"]) == b
    assert newest([]) is None


def test_file_provider_versions_and_retire(tmp_path: Path) -> None:
    path = tmp_path / "k" / "kek.key"
    p = FileKekProvider(path)
    with pytest.raises(KekNotFound):
        _ = p.current_id
    v1 = p.generate_new()
    dk = random_into(32)
    kid, wrapped = p.wrap(dk)
    assert kid == v1
    v2 = p.generate_new()
    assert p.current_id == v2
    assert p.kek_ids() == [v1, v2]
    assert p.unwrap(v1, wrapped) == dk  # old versions still unwrap until retired
    with pytest.raises(VaultError, match="current KEK cannot be retired"):
        p.retire(v2)
    p.retire(v1)
    assert p.kek_ids() == [v2]
    with pytest.raises(KekNotFound):
        p.unwrap(v1, wrapped)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    leftovers = sorted(f.name for f in path.parent.iterdir())
    assert leftovers == ["kek.key", "kek.key.lock"]  # no temporary files left behind
    p.close()


def test_another_process_view_is_refreshed(tmp_path: Path) -> None:
    path = tmp_path / "kek.key"
    a, b = FileKekProvider(path), FileKekProvider(path)
    a.generate_new()
    b.refresh()
    b.wrap(random_into(32))
    v2 = a.generate_new()
    # b has not seen v2 yet; a data key wrapped by a under v2 still unwraps in b
    kid2, wrapped2 = a.wrap(random_into(32))
    assert kid2 == v2
    assert len(b.unwrap(kid2, wrapped2)) == 32
    assert b.current_id == v2


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o700])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "kek.key"
    FileKekProvider(path).generate_new()
    os.chmod(path, mode)
    if mode & 0o077:
        with pytest.raises(KeyFileInsecure, match="chmod 600"):
            FileKekProvider(path)
    else:
        FileKekProvider(path)  # 0700 is odd but private


def test_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "kek.key").mkdir()
    with pytest.raises(VaultConfigError, match="not a regular file"):
        KeyFile(tmp_path / "kek.key", kind="kek").load()


def test_passphrase_protected_file(tmp_path: Path) -> None:
    path = tmp_path / "kek.key"
    p = FileKekProvider(path, passphrase="correct horse", scrypt_n=TEST_SCRYPT_N)
    v1 = p.generate_new()
    kid, wrapped = p.wrap(random_into(32))
    doc = json.loads(path.read_text())
    assert doc["kdf"]["name"] == "scrypt"
    assert doc["kdf"]["n"] == TEST_SCRYPT_N
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 16
    # the stored material is sealed, not the key (60 bytes: nonce + key + tag)
    assert len(base64.b64decode(doc["keys"][0]["material"])) == 60
    v2 = p.generate_new()  # rewriting keeps the salt and re-seals every key
    assert json.loads(path.read_text())["kdf"]["salt"] == doc["kdf"]["salt"]
    again = FileKekProvider(path, passphrase="correct horse")
    assert again.kek_ids() == [v1, v2]
    assert len(again.unwrap(kid, wrapped)) == 32
    with pytest.raises(VaultConfigError, match="wrong passphrase"):
        FileKekProvider(path, passphrase="wrong horse")
    with pytest.raises(VaultConfigError, match="passphrase-protected"):
        FileKekProvider(path)


def test_passphrase_set_but_file_is_plain(tmp_path: Path) -> None:
    path = tmp_path / "kek.key"
    FileKekProvider(path).generate_new()
    with pytest.raises(VaultConfigError, match="not passphrase-protected"):
        FileKekProvider(path, passphrase="x")


def test_sealed_key_moved_to_another_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kek.key"
    p = FileKekProvider(path, passphrase="pw", scrypt_n=TEST_SCRYPT_N)
    p.generate_new()
    p.generate_new()
    doc = json.loads(path.read_text())
    k = doc["keys"]
    k[0]["material"], k[1]["material"] = k[1]["material"], k[0]["material"]
    path.write_text(json.dumps(doc))
    with pytest.raises(VaultConfigError, match="wrong passphrase, or the key file was changed"):
        FileKekProvider(path, passphrase="pw")


@pytest.mark.parametrize(
    "change",
    [
        {"format": "other/1"},
        {"kind": "fingerprint"},
        {"kdf": {"name": "scrypt", "salt": "AAAA", "n": 3, "r": 8, "p": 1}},
        {"kdf": {"name": "scrypt", "salt": "A" * 24, "n": 1 << 30, "r": 8, "p": 1}},
        {"kdf": {"name": "rot13"}},
        {"current": "v7-00000000"},
        {"keys": [{"id": "../etc", "material": "AAAA"}]},
    ],
)
def test_malformed_key_files_are_refused(tmp_path: Path, change: dict[str, object]) -> None:
    path = tmp_path / "kek.key"
    FileKekProvider(path).generate_new()
    doc = json.loads(path.read_text())
    doc.update(change)
    path.write_text(json.dumps(doc))
    with pytest.raises(VaultConfigError):
        FileKekProvider(path, passphrase="x" if "kdf" in change else "")


def test_wrong_kek_file_rejects_wrapped_keys(tmp_path: Path) -> None:
    a = FileKekProvider(tmp_path / "a.key")
    b = FileKekProvider(tmp_path / "b.key")
    a.generate_new()
    b.generate_new()
    kid, wrapped = a.wrap(random_into(32))
    with pytest.raises(KekNotFound):
        b.unwrap(kid, wrapped)
    with pytest.raises(KeyUnwrapFailed):
        a.unwrap(kid, wrapped[:-1])


# --------------------------------------------------------------------------- PKCS#11


def test_pkcs11_kek_is_generated_in_the_token_and_never_leaves(softhsm: SoftHsm) -> None:
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11.exceptions import AttributeSensitive, PKCS11Error

    provider = softhsm.provider(softhsm.take())
    kek_id = provider.generate_new()
    session = provider._open()  # type: ignore[attr-defined]
    key = session.get_key(object_class=ObjectClass.SECRET_KEY, id=kek_id.encode())
    assert key[Attribute.SENSITIVE] is True
    assert key[Attribute.EXTRACTABLE] is False
    assert key[Attribute.NEVER_EXTRACTABLE] is True
    assert key[Attribute.ALWAYS_SENSITIVE] is True
    assert key[Attribute.LOCAL] is True  # generated inside the token
    assert key[Attribute.TOKEN] is True
    assert key[Attribute.PRIVATE] is True
    assert key[Attribute.VALUE_LEN] == 32
    assert key[Attribute.ENCRYPT] is True
    assert key[Attribute.WRAP] is False
    with pytest.raises(AttributeSensitive):
        _ = key[Attribute.VALUE]
    # no other key can export it either
    wrapper = session.generate_key(KeyType.AES, 256, store=False,
                                   capabilities=pkcs11.MechanismFlag.WRAP)  # fmt: skip
    with pytest.raises(PKCS11Error):
        wrapper.wrap_key(key, mechanism=Mechanism.AES_KEY_WRAP)
    provider.close()


def test_pkcs11_keys_are_found_by_id_not_label(softhsm: SoftHsm) -> None:
    from pkcs11 import Attribute, KeyType, ObjectClass

    provider = softhsm.provider(softhsm.take())
    first = provider.generate_new()
    second = provider.generate_new()
    session = provider._open()  # type: ignore[attr-defined]
    labels = {o[Attribute.LABEL] for o in session.get_objects({
        Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES})}  # fmt: skip
    assert labels == {"arspay-kek"}  # the same label twice: labels are not unique
    dk = random_into(32)
    kid, wrapped = provider.wrap(dk)
    assert kid == second
    assert provider.unwrap(second, wrapped) == dk
    assert provider.kek_ids() == [first, second]
    provider.retire(first)
    assert provider.kek_ids() == [second]
    provider.close()


def test_pkcs11_wrong_pin_and_missing_token(softhsm: SoftHsm) -> None:
    from tests.vault.vault_helpers import SOFTHSM_MODULE
    from vault.kek.pkcs11 import Pkcs11KekProvider

    label = softhsm.take()
    bad = Pkcs11KekProvider(SOFTHSM_MODULE, label, "0000", softhsm_conf=str(softhsm.conf))
    with pytest.raises(VaultConfigError, match="login failed"):
        bad.kek_ids()
    missing = Pkcs11KekProvider(SOFTHSM_MODULE, "no-such-token", "1234",
                                softhsm_conf=str(softhsm.conf))  # fmt: skip
    with pytest.raises(VaultConfigError, match="not found"):
        missing.kek_ids()
    other_conf = Pkcs11KekProvider(SOFTHSM_MODULE, label, "1234", softhsm_conf="/elsewhere")
    with pytest.raises(VaultConfigError, match="another configuration"):
        other_conf.kek_ids()


def test_pkcs11_providers_on_one_token_share_the_login(softhsm: SoftHsm) -> None:
    label = softhsm.take()
    a, b = softhsm.provider(label), softhsm.provider(label)
    a.generate_new()
    kid, wrapped = a.wrap(random_into(32))
    assert len(b.unwrap(kid, wrapped)) == 32
    a.close()  # b keeps working: closing a must not log b out
    assert len(b.unwrap(kid, wrapped)) == 32
    b.close()
