"""Helpers for the vault tests (fixtures live in conftest.py): the canary card, card
generators, the SoftHSM2 token pool, KEK set-ups, the recording gateway, builders."""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ivr.clock import FakeClock
from vault.audit_chain import LEDGER as AUDIT_LEDGER
from vault.card import CardData, random_into
from vault.client import VaultClient
from vault.errors import VerifyLimited
from vault.evidence import EvidenceKey, EvidenceKeyFile
from vault.kek import KekProvider
from vault.kek.file import FileKekProvider
from vault.server import VaultServer
from vault.service import LocalVault
from vault.store import VaultStore
from vault.testing import RecordingGateway
from vault.tokens import Fingerprinter

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "1234"
SO_PIN = "5678"
TEST_SCRYPT_N = 1 << 10  # keep passphrase tests fast; production default is 2**15

CANARY = CardData(pan="4012888888881881", expiry="1230", birth="900101")
NOW = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)


def luhn_complete(prefix: str) -> str:
    """``prefix`` plus the Luhn check digit."""
    total = 0
    for i, ch in enumerate(reversed(prefix)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return prefix + str((10 - total % 10) % 10)


def random_card(n: int) -> CardData:
    return CardData(pan=luhn_complete(f"5555{n:011d}"), expiry="0130", birth="851231")


# --------------------------------------------------------------------------- SoftHSM2


class SoftHsm:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tokendir = root / "tokens"
        self.tokendir.mkdir(parents=True)
        self.conf = root / "softhsm2.conf"
        self.conf.write_text(
            f"directories.tokendir = {self.tokendir}\nobjectstore.backend = file\n"
            "log.level = ERROR\nslots.removable = false\n"
        )
        self._free: list[str] = []
        self._made = 0
        self.loaded = False

    def _make(self, count: int) -> None:
        env = {**os.environ, "SOFTHSM2_CONF": str(self.conf)}
        for _ in range(count):
            self._made += 1
            label = f"t{self._made}"
            subprocess.run(
                ["softhsm2-util", "--init-token", "--free", "--label", label,
                 "--pin", PIN, "--so-pin", SO_PIN],
                check=True, capture_output=True, env=env, timeout=30,
            )  # fmt: skip
            self._free.append(label)

    def take(self) -> str:
        """A fresh, empty token label."""
        if not self._free:
            self._make(20)
            if self.loaded:  # the library only sees tokens present at initialisation
                import pkcs11

                pkcs11.lib(SOFTHSM_MODULE).reinitialize()
        self.loaded = True
        return self._free.pop(0)

    def provider(self, label: str) -> KekProvider:
        from vault.kek.pkcs11 import Pkcs11KekProvider

        return Pkcs11KekProvider(SOFTHSM_MODULE, label, PIN, softhsm_conf=str(self.conf))


# --------------------------------------------------------------------------- KEKs


@dataclass
class KekSetup:
    kind: str
    provider: KekProvider
    audit_key_file: Path  # the audit log's evidence key: its own file, whatever the KEKs
    key_file: Path | None = None
    token: str | None = None
    paths: list[Path] = field(default_factory=list)  # where key material lives on disk


def make_kek(kind: str, tmp_path: Path, softhsm: SoftHsm | None) -> KekSetup:
    audit_key = tmp_path / "keys" / "audit.key"
    if kind == "file":
        path = tmp_path / "keys" / "kek.key"
        provider: KekProvider = FileKekProvider(path)
        provider.generate_new()
        return KekSetup(kind, provider, audit_key, key_file=path, paths=[path.parent])
    assert softhsm is not None
    label = softhsm.take()
    provider = softhsm.provider(label)
    provider.generate_new()
    return KekSetup(kind, provider, audit_key, token=label,
                    paths=[softhsm.tokendir, audit_key.parent])  # fmt: skip


# --------------------------------------------------------------------------- gateway


# RecordingGateway and Received live in vault/testing.py (bench/vault.py uses them too).


# --------------------------------------------------------------------------- builders


async def build_vault(
    url: str, kek: KekProvider, clock: FakeClock, gateway: RecordingGateway | None = None,
    *, audit_key_file: Path, rotation_batch: int = 500,
) -> LocalVault:  # fmt: skip
    vault = LocalVault(
        VaultStore(url),
        kek,
        Fingerprinter(random_into(32)),
        clock=clock,
        audit_key_file=EvidenceKeyFile(audit_key_file, ledger=AUDIT_LEDGER),
        gateway=gateway,
        rotation_batch=rotation_batch,
    )
    return await vault.started()


def audit_key() -> EvidenceKey:
    """A throw-away audit-chain key for tests of the bare store."""
    return EvidenceKey(random_into(32), AUDIT_LEDGER)


def make_server(vault: LocalVault, socket_dir: Path) -> VaultServer:
    return VaultServer(vault, socket_dir / "run" / "vault.sock", max_frame_bytes=4096,
                       body_timeout_s=0.5)  # fmt: skip


async def wrong_births_at_once(vault: VaultClient, token: str, count: int, month: str) -> list[str]:
    """``count`` wrong birth dates (``month`` as YYMM, days 10, 11, …) of ``mer_1``'s
    card checked at once: each one's answer, ``mismatch`` or ``limited``, sorted."""

    async def guess(n: int) -> str:
        try:
            check = await vault.verify_birth(
                token, "mer_1", birth=f"{month}{n + 10:02d}", who="t", why="x"
            )
        except VerifyLimited:
            return "limited"
        return "matched" if check.matched else "mismatch"

    return sorted(await asyncio.gather(*(guess(n) for n in range(count))))
