"""``arspay vault``: init, status, audit, rotate-kek and serve, as real processes — and
a rotation in one process while another keeps reading and writing."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ivr.clock import FakeClock
from ivr.settings import load_settings
from tests.vault.test_canary import _env, arspay, start_server, stop_server
from tests.vault.vault_helpers import CANARY, RecordingGateway, SoftHsm, random_card
from vault.card import CardData
from vault.errors import GatewayNotConfigured
from vault.factory import kek_provider, open_vault
from vault.remote import RemoteVault

pytestmark = pytest.mark.anyio


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _exists(path: Path) -> bool:
    return path.exists()


def _core_limit(pid: int) -> list[str]:
    """Soft and hard "Max core file size" of a process."""
    limits = Path(f"/proc/{pid}/limits").read_text()
    [core] = [line.split() for line in limits.splitlines() if line.startswith("Max core")]
    return core[4:6]


def _hsm(kind: str, request: pytest.FixtureRequest) -> SoftHsm | None:
    return request.getfixturevalue("softhsm") if kind == "pkcs11" else None


def test_help_lists_the_vault_commands() -> None:
    out = arspay(dict(os.environ), "vault", "--help")
    assert out.returncode == 0
    for cmd in ("init", "serve", "rotate-kek", "audit", "status", "erase", "sweep-orphans"):
        assert cmd in out.stdout


@pytest.mark.parametrize("kind", ["file", "pkcs11"])
def test_init_status_rotate_audit(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    env = _env(tmp_path, kind, _hsm(kind, request))
    first = arspay(env, "--json", "vault", "init")
    assert first.returncode == 0, first.stderr
    [made] = json.loads(first.stdout)
    assert made["kek_created"] is True
    assert made["fingerprint_key_created"] is True
    again = arspay(env, "--json", "vault", "init")  # idempotent
    [same] = json.loads(again.stdout)
    assert (same["kek"], same["kek_created"], same["fingerprint_key_created"]) == (
        made["kek"], False, False
    )  # fmt: skip
    if kind == "file":
        key = Path(env["ARSPAY_VAULT_KEY_FILE"])
        assert oct(key.stat().st_mode & 0o777) == "0o600"
    status = arspay(env, "--json", "vault", "status")
    [st] = json.loads(status.stdout)
    assert st["current_kek"] == made["kek"]
    assert st["records"] == 0
    assert st["kek_provider"] == kind
    rotate = arspay(env, "--json", "vault", "rotate-kek")
    assert rotate.returncode == 0, rotate.stderr
    [report] = json.loads(rotate.stdout)
    assert report["retired"] == made["kek"]
    [st] = json.loads(arspay(env, "--json", "vault", "status").stdout)
    assert [k["state"] for k in st["keks"]] == ["retired", "current"]
    plain = arspay(env, "vault", "status")
    assert f"current KEK {report['new_kek']}" in plain.stdout
    audit = arspay(env, "--json", "vault", "audit", "--limit", "5")
    assert audit.returncode == 0
    assert json.loads(audit.stdout) == []


async def test_audit_lists_decrypts_by_token(tmp_path: Path) -> None:
    env = _env(tmp_path, "file", None)
    assert arspay(env, "vault", "init").returncode == 0
    vault = await open_vault(load_settings(env=env), gateway=RecordingGateway())
    try:
        a = await vault.tokenize("mer_1", CANARY, who="flow:reg")
        b = await vault.tokenize("mer_1", random_card(1), who="flow:reg")
        await vault.issue_billing_key(a.token, "mer_1", password2="12", customer_uid="c",
                                      who="flow:reg", why="registration call")  # fmt: skip
    finally:
        await vault.close()
    out = arspay(env, "--json", "vault", "audit", "--token", a.token)
    rows = json.loads(out.stdout)
    assert [(r["action"], r["who"], r["why"]) for r in rows] == [
        ("issue_billing_key", "flow:reg", "registration call"),
        ("tokenize", "flow:reg", ""),
    ]
    assert all(r["token"] == a.token for r in rows)
    assert len(json.loads(arspay(env, "--json", "vault", "audit", "--limit", "1").stdout)) == 1
    table = arspay({**env, "COLUMNS": "250"}, "vault", "audit")
    assert b.token in table.stdout
    assert CANARY.pan not in table.stdout


async def test_erase_deletes_one_record_and_audits_it(tmp_path: Path) -> None:
    env = _env(tmp_path, "file", None)
    assert arspay(env, "vault", "init").returncode == 0
    vault = await open_vault(load_settings(env=env))
    try:
        a = await vault.tokenize("mer_1", CANARY, who="flow:reg")
        b = await vault.tokenize("mer_1", random_card(1), who="flow:reg")
    finally:
        await vault.close()
    wrong = arspay(env, "vault", "erase", a.token, "--merchant", "mer_2", "--why", "x")
    assert wrong.returncode == 2  # another merchant's token: not found, nothing erased
    assert "no such card token" in wrong.stderr
    out = arspay(env, "--json", "vault", "erase", a.token, "--merchant", "mer_1",
                 "--why", "customer asked (ticket 81)")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"token": a.token, "merchant": "mer_1"}]
    [st] = json.loads(arspay(env, "--json", "vault", "status").stdout)
    assert st["records"] == 1
    [entry, _tokenize] = json.loads(arspay(env, "--json", "vault", "audit", "--token",
                                           a.token).stdout)  # fmt: skip
    assert (entry["action"], entry["why"]) == ("delete", "customer asked (ticket 81)")
    assert entry["who"].startswith("cli:")
    vault = await open_vault(load_settings(env=env))
    try:
        assert (await vault.metadata(b.token, "mer_1")).last4 == random_card(1).pan[-4:]
    finally:
        await vault.close()


def test_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    env = _env(tmp_path, "file", None)
    out = arspay(env, "vault", "status")  # no keys yet
    assert out.returncode == 2
    assert "error:" in out.stderr
    assert "Traceback" not in out.stderr
    assert arspay(env, "vault", "init").returncode == 0
    os.chmod(env["ARSPAY_VAULT_KEY_FILE"], 0o644)
    out = arspay(env, "vault", "status")
    assert out.returncode == 2
    assert "chmod 600" in out.stderr
    bad = arspay(env, "vault", "audit", "--token", "nope")
    assert bad.returncode == 2


@pytest.mark.parametrize("kind", ["file", "pkcs11"])
async def test_rotation_in_another_process_while_this_one_reads_and_writes(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """``arspay vault rotate-kek`` runs as its own process; this process keeps revealing
    and tokenizing with a KEK provider that goes stale under it. Nothing is lost."""
    env = _env(tmp_path, kind, _hsm(kind, request))
    env["ARSPAY_VAULT_ROTATION_BATCH"] = "10"
    assert arspay(env, "vault", "init").returncode == 0
    settings = load_settings(env=env)
    vault = await open_vault(settings)
    try:
        cards: dict[str, CardData] = {}
        for i in range(300):
            cards[(await vault.tokenize("mer_1", random_card(i), who="seed")).token] = random_card(
                i
            )
        old = vault.kek.current_id
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ivr.cli", "--json", "vault", "rotate-kek", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        reads, writes = 0, 0
        rng = random.Random(1)

        async def load() -> None:
            nonlocal reads, writes
            while proc.returncode is None:
                token = rng.choice(list(cards))
                async with vault.reveal(token, "mer_1", who="reader", why="rotation") as card:
                    assert card == cards[token]
                reads += 1
                if reads % 5 == 0:
                    card = random_card(10_000 + writes)
                    cards[(await vault.tokenize("mer_1", card, who="writer")).token] = card
                    writes += 1

        async with asyncio.TaskGroup() as tg:
            tg.create_task(load())
            out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        [report] = json.loads(out)
        assert report["retired"] == old
        assert reads > 10
        for token, card in cards.items():
            async with vault.reveal(token, "mer_1", who="check", why="after rotation") as got:
                assert got == card
        status = await vault.status()
        assert status.records == len(cards)
        assert {k.kek_id: k.records for k in status.keks if k.records} == {
            report["new_kek"]: len(cards)
        }
        fresh = kek_provider(settings)
        assert fresh.kek_ids() == [report["new_kek"]]  # the old KEK is gone for good
        fresh.close()
    finally:
        await vault.close()


@pytest.mark.parametrize("kind", ["file", "pkcs11"])
async def test_serve_stops_cleanly_and_removes_its_socket(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    env = _env(tmp_path, kind, _hsm(kind, request))
    assert arspay(env, "vault", "init").returncode == 0
    log = tmp_path / "serve.log"
    server = start_server(env, log)
    sock = Path(env["ARSPAY_VAULT_SOCKET"])
    try:
        assert _mode(sock) == 0o600
        assert _core_limit(server.pid) == ["0", "0"]  # no core dump of the vault process
        remote = RemoteVault(sock)
        meta = await remote.tokenize("mer_1", CANARY, who="t")
        [entry] = await remote.audit(token=meta.token)
        assert entry.peer == f"uid={os.getuid()},pid={os.getpid()}"
        with pytest.raises(GatewayNotConfigured):  # no gateway.api_key in this environment
            await remote.issue_billing_key(meta.token, "mer_1", password2="12",
                                           customer_uid="cu_1", who="t", why="x")  # fmt: skip
        await remote.close()
    finally:
        assert stop_server(server) == 0
    assert not _exists(sock)
    assert b"no gateway configured" in log.read_bytes()


def test_serve_refuses_a_half_configured_gateway(tmp_path: Path) -> None:
    env = _env(tmp_path, "file", None)
    assert arspay(env, "vault", "init").returncode == 0
    env["ARSPAY_GATEWAY_API_KEY"] = "imp-key"  # but no secret
    out = arspay(env, "vault", "serve")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "api_secret" in out.stderr
    assert not Path(env["ARSPAY_VAULT_SOCKET"]).exists()


async def test_sweep_orphans_from_the_command_line(tmp_path: Path) -> None:
    """Records stored two hours ago by calls that never attached them: a dry run counts
    them, a sweep erases the one of this engine's merchant and leaves the other
    deployment's alone."""
    env = _env(tmp_path, "file", None)
    assert arspay(env, "vault", "init").returncode == 0
    assert arspay(env, "migrate").returncode == 0
    made = arspay(env, "--json", "merchants", "create", "행복치과")
    assert made.returncode == 0, made.stderr
    mid = str(json.loads(made.stdout)[0]["id"])
    settings = load_settings(env=env)
    earlier = FakeClock(datetime.now(UTC) - timedelta(hours=2))
    vault = await open_vault(settings, clock=earlier)
    try:
        orphan = await vault.tokenize(mid, random_card(1), who="flow:registration")
        await vault.tokenize("mer_of_another_engine", random_card(2), who="t")
    finally:
        await vault.close()

    def sweep(*args: str) -> dict[str, int]:
        out = arspay(env, "--json", "vault", "sweep-orphans", *args)
        assert out.returncode == 0, out.stderr
        [report] = json.loads(out.stdout)
        return report  # type: ignore[no-any-return]

    assert sweep("--dry-run") == {
        "checked": 2, "orphans": 1, "erased": 0, "billing_keys_deleted": 0,
        "other_merchants": 1, "failed": 0,
    }  # fmt: skip
    assert sweep("--grace-minutes", "180")["checked"] == 0  # not that old yet
    assert sweep()["erased"] == 1
    assert sweep()["orphans"] == 0
    [st] = json.loads(arspay(env, "--json", "vault", "status").stdout)
    assert st["records"] == 1  # the other deployment's
    audit = json.loads(arspay(env, "--json", "vault", "audit", "--token", orphan.token).stdout)
    assert (audit[0]["action"], audit[0]["who"]) == ("delete", "engine:orphan-sweep")
    bad = arspay(env, "vault", "sweep-orphans", "--grace-minutes", "5")
    assert bad.returncode == 2


async def test_audit_verify_checkpoint_and_public_key_commands(tmp_path: Path) -> None:
    env = _env(tmp_path, "file", None)
    [init] = json.loads(arspay(env, "--json", "vault", "init").stdout)
    assert init["audit_key_created"] is True
    vault = await open_vault(load_settings(env=env))
    try:
        for i in range(3):
            await vault.tokenize("mer_1", random_card(i), who="flow:reg")
    finally:
        await vault.close()
    ok = arspay(env, "vault", "audit-verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "vault audit log intact: 3 row(s), chain head seq 3" in ok.stdout
    cp_file = tmp_path / "audit-cp.json"
    made = arspay(env, "vault", "audit-checkpoint", "--out", str(cp_file))
    assert made.returncode == 0, made.stderr
    cp = json.loads(cp_file.read_text())
    assert (cp["ledger"], cp["seq"], cp["count"]) == ("vault-audit", 3, 3)
    key = json.loads(arspay(env, "vault", "audit-public-key").stdout)
    assert (key["key_id"], key["public_key"]) == (cp["key_id"], cp["public_key"])
    assert "PRIVATE" not in made.stdout + key["public_key_pem"]
    # the newest audit row deleted behind the triggers, by a database admin
    db = tmp_path / "var" / "vault" / "vault.db"
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER vault_audit_no_delete")
        conn.execute("DELETE FROM vault_audit WHERE seq = 3")
    bad = arspay(env, "vault", "audit-verify", "--no-saved", "--checkpoint", str(cp_file))
    assert bad.returncode == 1
    assert f"problem: checkpoint {cp_file}: records deleted" in bad.stdout
    saved = arspay(env, "--json", "vault", "audit-verify")  # the copy audit-checkpoint kept
    assert saved.returncode == 1
    assert json.loads(saved.stdout)["ok"] is False
    refused = arspay(env, "vault", "audit-checkpoint")
    assert refused.returncode == 1
    assert "no checkpoint signed" in refused.stderr
