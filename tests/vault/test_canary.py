"""Canary: a card written through the vault appears in plaintext in no file on disk —
the vault database (and its -wal/-shm), the key files, the SoftHSM2 token directory, the
socket directory and every log the test produced — in-process, behind the socket, and
through the real ``arspay vault`` processes."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateways.support import KEY, SECRET, running_sandbox
from tests.vault.vault_helpers import CANARY, KekSetup, RecordingGateway, SoftHsm
from vault.card import CardData
from vault.client import VaultClient
from vault.forwarding import Order
from vault.remote import RemoteVault
from vault.service import LocalVault

pytestmark = pytest.mark.anyio

PASSWORD = "37"
CORPORATE_CANARY = CardData(pan="5555555555554444", expiry="0227", birth="2208162517")


def needles(card: CardData) -> list[bytes]:
    pan = card.pan
    grouped = " ".join(pan[i : i + 4] for i in range(0, 16, 4))
    return [
        pan.encode(),
        pan.encode("utf-16-le"),
        grouped.encode(),
        grouped.replace(" ", "-").encode(),
        card.birth.encode(),
    ]


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                path = Path(dirpath) / name
                if path.is_file() and not path.is_symlink():
                    yield path


def scan(*roots: Path, cards: tuple[CardData, ...] = (CANARY, CORPORATE_CANARY)) -> list[Path]:
    """Every file holding any canary in plaintext; at least one file must be scanned."""
    found, scanned = [], 0
    for path in files_under(*roots):
        data = path.read_bytes()
        scanned += 1
        if any(n in data for card in cards for n in needles(card)):
            found.append(path)
    assert scanned, "nothing was scanned"
    return found


def test_the_scanner_finds_a_planted_canary(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "leak.bin").write_bytes(b"\0\1" + CANARY.pan.encode("utf-16-le"))
    (tmp_path / "clean.txt").write_text("nothing here")
    assert scan(tmp_path) == [tmp_path / "a" / "leak.bin"]


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """Everything every logger says during the test, at DEBUG, into a file."""
    path = tmp_path / "logs" / "test.log"
    path.parent.mkdir()
    handler = logging.FileHandler(path)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield path
    root.removeHandler(handler)
    root.setLevel(old_level)
    handler.close()


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _roots(tmp_path: Path, socket_dir: Path, kek: KekSetup) -> list[Path]:
    return [tmp_path, socket_dir, *kek.paths]


async def test_canary_in_process_and_over_the_socket(
    client: VaultClient,
    vault: LocalVault,
    kek: KekSetup,
    gateway: RecordingGateway,
    tmp_path: Path,
    socket_dir: Path,
    log_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    meta = await client.tokenize("mer_1", CANARY, who="flow:reg")
    corp = await client.tokenize("mer_1", CORPORATE_CANARY, who="flow:reg")
    extra = await client.tokenize("mer_2", CANARY, who="flow:reg")
    await client.issue_billing_key(meta.token, "mer_1", password2=PASSWORD, customer_uid="cus_1",
                                   who="flow:reg", why="registration")  # fmt: skip
    await client.keyed_charge(corp.token, "mer_1", password2=PASSWORD,
                              order=Order("ord_1", 53_000, "임플란트", 0), who="flow:pay",
                              why="payment")  # fmt: skip
    assert [r.card for r in gateway.received] == [CANARY, CORPORATE_CANARY]
    for token, birth in ((meta.token, CANARY.birth), (corp.token, CORPORATE_CANARY.birth),
                         (meta.token, CORPORATE_CANARY.birth)):  # fmt: skip
        await client.verify_birth(token, "mer_1", birth=birth, who="flow:pay", why="factor")
    await client.delete(extra.token, "mer_2", who="admin", why="erase")
    await client.audit(limit=100)
    await client.status()
    await vault.rotate_kek()
    async with vault.reveal(meta.token, "mer_1", who="ops", why="canary check") as card:
        assert card == CANARY

    assert scan(*_roots(tmp_path, socket_dir, kek)) == []  # with the database open (WAL)
    assert b"vault.tokenize" in _read(log_file)  # the vault did log (ids only)
    for card in (CANARY, CORPORATE_CANARY):
        assert card.pan not in caplog.text
        assert card.birth not in caplog.text
    await vault.store.close()
    assert scan(*_roots(tmp_path, socket_dir, kek)) == []  # and after checkpoint on close


# --------------------------------------------------------------------------- processes


def _env(tmp_path: Path, kek_kind: str, softhsm: SoftHsm | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSPAY_")}
    var = tmp_path / "var"
    env.update({
        "ARSPAY_CONFIG": "/nonexistent/arspay.toml",
        "ARSPAY_PATHS_VAR_DIR": str(var),
        "ARSPAY_VAULT_KEY_FILE": str(var / "vault" / "kek.key"),
        "ARSPAY_VAULT_FINGERPRINT_KEY_FILE": str(var / "vault" / "fingerprint.key"),
        "ARSPAY_VAULT_SOCKET": str(tmp_path / "s" / "v.sock"),
        "ARSPAY_VAULT_KEK_PROVIDER": kek_kind,
        "ARSPAY_LOG_LEVEL": "debug",
    })  # fmt: skip
    if softhsm is not None:
        env.update({
            "ARSPAY_VAULT_PKCS11_TOKEN": softhsm.take(),
            "ARSPAY_VAULT_PKCS11_PIN": "1234",
            "ARSPAY_VAULT_SOFTHSM_CONF": str(softhsm.conf),
        })  # fmt: skip
    return env


def arspay(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ivr.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def start_server(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ivr.cli", "vault", "serve"], env=env,
                                stdout=out, stderr=out)  # fmt: skip
    sock = Path(env["ARSPAY_VAULT_SOCKET"])
    deadline = time.monotonic() + 30
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"vault serve did not start: {log.read_text()}")
        time.sleep(0.05)
    return proc


def stop_server(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


@pytest.mark.parametrize("kek_kind", ["file", "pkcs11"])
async def test_canary_through_the_vault_processes(
    tmp_path: Path, kek_kind: str, request: pytest.FixtureRequest
) -> None:
    """``arspay vault init``, ``serve`` (forwarding to the sandbox PG over HTTP) and a
    ``rotate-kek`` in its own process while serving; then every file is scanned."""
    hsm = request.getfixturevalue("softhsm") if kek_kind == "pkcs11" else None
    env = _env(tmp_path, kek_kind, hsm)
    logs = tmp_path / "logs"
    logs.mkdir()
    init = arspay(env, "vault", "init")
    assert init.returncode == 0, init.stderr
    pg_dir = Path(tempfile.mkdtemp(prefix="pg-ledger-"))  # the PG's own data: not the vault's
    try:
        async with running_sandbox(pg_dir / "ledger.db") as sandbox:
            env["ARSPAY_GATEWAY_KIND"] = "sandbox"
            env["ARSPAY_GATEWAY_BASE_URL"] = sandbox.url
            env["ARSPAY_GATEWAY_API_KEY"] = KEY
            env["ARSPAY_GATEWAY_API_SECRET"] = SECRET
            server = start_server(env, logs / "serve.log")
            try:
                outputs = await _exercise(env)
            finally:
                assert stop_server(server) == 0
    finally:
        shutil.rmtree(pg_dir, ignore_errors=True)
    (logs / "cli.log").write_text("\n".join(outputs))
    roots = [tmp_path] + ([hsm.tokendir] if hsm is not None else [])
    assert scan(*roots) == []
    serve_log = _read(logs / "serve.log")
    assert b"vault.tokenize" in serve_log
    assert b"vault.issue_billing_key" in serve_log


async def _exercise(env: dict[str, str]) -> list[str]:
    remote = RemoteVault(Path(env["ARSPAY_VAULT_SOCKET"]))
    try:
        meta = await remote.tokenize("mer_1", CANARY, who="canary")
        corp = await remote.tokenize("mer_1", CORPORATE_CANARY, who="canary")
        key = await remote.issue_billing_key(meta.token, "mer_1", password2=PASSWORD,
                                             customer_uid="cu_canary", who="canary",
                                             why="registration")  # fmt: skip
        assert key.ok, key
        charge = await remote.keyed_charge(corp.token, "mer_1", password2=PASSWORD,
                                           order=Order("ord_canary_1", 53_000, "임플란트", 0),
                                           who="canary", why="payment")  # fmt: skip
        assert charge.status == "succeeded", charge
        rotate = arspay(env, "vault", "rotate-kek")  # a separate process, while serving
        assert rotate.returncode == 0, rotate.stderr
        again = await remote.issue_billing_key(meta.token, "mer_1", password2=PASSWORD,
                                               customer_uid="cu_canary_2", who="canary",
                                               why="after rotation")  # fmt: skip
        assert again.ok, again
        outputs = [rotate.stdout + rotate.stderr]
        for args in (("vault", "audit"), ("vault", "status"), ("--json", "vault", "audit")):
            out = arspay(env, *args)
            assert out.returncode == 0, out.stderr
            outputs.append(out.stdout + out.stderr)
        return outputs
    finally:
        await remote.close()
