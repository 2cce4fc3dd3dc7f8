"""The PKCS#11 KEK provider (python-pkcs11; Debian's SoftHSM2 in tests).

KEKs are AES-256 secret keys generated *inside* the token (``C_GenerateKey``): token
objects, private, ``CKA_SENSITIVE`` true, ``CKA_EXTRACTABLE`` false (so also
``CKA_NEVER_EXTRACTABLE`` and ``CKA_LOCAL``), usable for ``CKA_ENCRYPT``/``CKA_DECRYPT``
only, found by ``CKA_ID`` = the KEK id (labels are not unique, so only informative).

Wrapping runs in the token as ``CKM_AES_GCM`` encryption of the 32-byte data key
(``C_Encrypt`` / ``C_Decrypt`` with a ``GCMParams`` nonce and associated data). We chose
it over ``CKM_AES_KEY_WRAP`` (``C_WrapKey``), which SoftHSM2 also supports, because the
data key has to come back to the host anyway (records are encrypted with AES-GCM in the
vault process), and key-wrap would mean importing every data key as a session object
and unwrapping it as an extractable, non-sensitive object — three token calls instead
of one (about 360 µs against 50 µs per wrap on SoftHSM2) for no extra protection. GCM
also authenticates the wrap and gives both providers one format (:mod:`vault.kek`).

Sessions are opened lazily in the process that uses them (a PKCS#11 library must be
initialised again after ``fork``): one logged-in read-write session per token and
process, shared by the providers on that token, every call under one lock.
``softhsm_conf`` sets ``SOFTHSM2_CONF`` before the library is first loaded; one process
can only use one SoftHSM2 configuration.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from dataclasses import dataclass
from typing import Any, cast

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import (
    NoSuchKey,
    NoSuchToken,
    ObjectHandleInvalid,
    PinIncorrect,
    PKCS11Error,
)

from vault.errors import (
    KekNotFound,
    KekUnavailable,
    KeyUnwrapFailed,
    VaultConfigError,
    VaultError,
)
from vault.kek import WRAP_NONCE_BYTES, dek_aad, split_wrapped
from vault.keyids import is_key_id, key_version, newest, next_key_id

LABEL = "arspay-kek"


class _AesKey(pkcs11.SecretKey, pkcs11.EncryptMixin, pkcs11.DecryptMixin):
    """What python-pkcs11 returns for an AES key (for the type checker only)."""


_loaded_conf: dict[str, str] = {}  # module path -> SOFTHSM2_CONF it was initialised with
_lib_pid: dict[str, int] = {}  # module path -> process that initialised it

# PKCS#11 login state belongs to the application, not the session: a second C_Login on
# the same token fails, and C_Logout in one session logs every session out. So each
# process keeps one logged-in session per token, shared by all providers on that token,
# and every call into the library holds this lock.
_LOCK = threading.RLock()


@dataclass
class _Shared:
    pid: int
    session: pkcs11.Session
    users: int


_sessions: dict[tuple[str, str], _Shared] = {}


def kek_template() -> dict[Attribute, Any]:
    """Attributes of a KEK beyond python-pkcs11's defaults for an AES key."""
    return {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.MODIFIABLE: False,
        Attribute.WRAP: False,
        Attribute.UNWRAP: False,
        Attribute.SIGN: False,
        Attribute.VERIFY: False,
        Attribute.DERIVE: False,
    }


class Pkcs11KekProvider:
    kind = "pkcs11"

    def __init__(self, module: str, token_label: str, pin: str, *, softhsm_conf: str = "") -> None:
        self._module = module
        self._token_label = token_label
        self._pin = pin
        self._softhsm_conf = softhsm_conf
        self._lock = _LOCK
        self._session: pkcs11.Session | None = None
        self._pid = 0
        self._keys: dict[str, _AesKey] = {}
        self._ids: list[str] | None = None

    # ------------------------------------------------------------------ session

    def _lib(self) -> Any:
        if self._softhsm_conf:
            seen = _loaded_conf.get(self._module)
            if seen is None:
                os.environ["SOFTHSM2_CONF"] = self._softhsm_conf
                _loaded_conf[self._module] = self._softhsm_conf
            elif seen != self._softhsm_conf:
                raise VaultConfigError(
                    "this process already initialised SoftHSM2 with another configuration"
                )
        try:
            lib = pkcs11.lib(self._module)
        except (RuntimeError, OSError):
            raise VaultConfigError("cannot load the PKCS#11 module") from None
        pid = os.getpid()
        if _lib_pid.setdefault(self._module, pid) != pid:
            lib.reinitialize()  # a forked child must initialise the library itself
            _lib_pid[self._module] = pid
        return lib

    def _open(self) -> pkcs11.Session:
        with self._lock:
            pid = os.getpid()
            if self._session is not None and self._pid == pid:
                return self._session
            lib = self._lib()
            key = (self._module, self._token_label)
            shared = _sessions.get(key)
            if shared is None or shared.pid != pid:
                try:
                    token = lib.get_token(token_label=self._token_label)
                    session = token.open(rw=True, user_pin=self._pin)
                except NoSuchToken:
                    raise VaultConfigError(
                        f"PKCS#11 token {self._token_label!r} not found"
                    ) from None
                except PinIncorrect:
                    raise VaultConfigError("PKCS#11 login failed (vault.pkcs11_pin)") from None
                except PKCS11Error as exc:
                    raise KekUnavailable(f"PKCS#11 session failed ({type(exc).__name__})") from None
                shared = _sessions[key] = _Shared(pid, session, 0)
            shared.users += 1
            self._session, self._pid, self._keys, self._ids = shared.session, pid, {}, None
            return shared.session

    def _key(self, kek_id: str) -> _AesKey:
        key = self._keys.get(kek_id)
        if key is not None:
            return key
        try:
            found = self._open().get_key(
                object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, id=kek_id.encode()
            )
        except NoSuchKey:
            raise KekNotFound(f"KEK {kek_id} is not in the token") from None
        except PKCS11Error as exc:  # MultipleObjectsReturned among them
            raise KekUnavailable(f"KEK {kek_id} lookup failed ({type(exc).__name__})") from None
        key = cast(_AesKey, found)
        self._keys[kek_id] = key
        return key

    # ------------------------------------------------------------------ provider

    @property
    def current_id(self) -> str:
        current = newest(self.kek_ids())
        if current is None:
            raise KekNotFound("no KEK in the token yet: run `arspay vault init`")
        return current

    def kek_ids(self) -> list[str]:
        with self._lock:
            if self._ids is None:
                found: list[str] = []
                try:
                    for obj in self._open().get_objects(
                        {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES}
                    ):
                        raw = obj[Attribute.ID]
                        kek_id = raw.decode("ascii", "replace") if isinstance(raw, bytes) else ""
                        if is_key_id(kek_id):
                            found.append(kek_id)
                except PKCS11Error as exc:
                    raise KekUnavailable(f"listing KEKs failed ({type(exc).__name__})") from None
                self._ids = sorted(found, key=key_version)
            return list(self._ids)

    def wrap(self, data_key: bytearray) -> tuple[str, bytes]:
        with self._lock:
            kek_id = self.current_id
            nonce = secrets.token_bytes(WRAP_NONCE_BYTES)
            params = pkcs11.GCMParams(nonce, dek_aad(kek_id))
            try:
                sealed = self._key(kek_id).encrypt(
                    bytes(data_key), mechanism=Mechanism.AES_GCM, mechanism_param=params
                )
            except PKCS11Error as exc:
                raise KekUnavailable(f"wrap failed in the token ({type(exc).__name__})") from None
            assert isinstance(sealed, bytes)  # single-part call, not a stream
            return kek_id, nonce + sealed

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytearray:
        nonce, sealed = split_wrapped(wrapped)
        with self._lock:
            for attempt in (1, 2):
                try:
                    key = self._key(kek_id)
                except KekNotFound:
                    if attempt == 2:
                        raise
                    self.refresh()
                    continue
                try:
                    plain = key.decrypt(
                        sealed,
                        mechanism=Mechanism.AES_GCM,
                        mechanism_param=pkcs11.GCMParams(nonce, dek_aad(kek_id)),
                    )
                except ObjectHandleInvalid:  # destroyed by another process: look again
                    self.refresh()
                    if attempt == 2:
                        raise KekNotFound(f"KEK {kek_id} is no longer in the token") from None
                    continue
                except PKCS11Error:
                    # SoftHSM2 reports a failed GCM tag check as CKR_GENERAL_ERROR or
                    # CKR_ENCRYPTED_DATA_INVALID; both mean "does not unwrap".
                    raise KeyUnwrapFailed(f"data key does not unwrap under KEK {kek_id}") from None
                assert isinstance(plain, bytes)
                return bytearray(plain)
        raise KekNotFound(f"KEK {kek_id} is not in the token")  # pragma: no cover

    def generate_new(self) -> str:
        with self._lock:
            kek_id = next_key_id(self.kek_ids())
            try:
                self._open().generate_key(
                    KeyType.AES,
                    256,
                    id=kek_id.encode(),
                    label=LABEL,
                    store=True,
                    capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
                    template=kek_template(),
                )
            except PKCS11Error as exc:
                raise KekUnavailable(f"KEK generation failed ({type(exc).__name__})") from None
            self.refresh()
            return kek_id

    def retire(self, kek_id: str) -> None:
        with self._lock:
            if kek_id == self.current_id:
                raise VaultError("the current KEK cannot be retired")
            key = self._key(kek_id)
            try:
                key.destroy()
            except PKCS11Error as exc:
                raise KekUnavailable(f"KEK destruction failed ({type(exc).__name__})") from None
            self.refresh()

    def refresh(self) -> None:
        with self._lock:
            self._keys = {}
            self._ids = None

    def close(self) -> None:
        with self._lock:
            key = (self._module, self._token_label)
            shared = _sessions.get(key)
            if self._session is not None and shared is not None and shared.pid == os.getpid():
                shared.users -= 1
                if shared.users <= 0:
                    del _sessions[key]
                    with contextlib.suppress(PKCS11Error):
                        shared.session.close()
            self._session, self._keys, self._ids = None, {}, None
