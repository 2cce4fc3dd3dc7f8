"""Each doctor check passes on a healthy deployment and fails on one broken piece."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ivr.doctor import asterisk, files, host, schema, vault_socket
from ivr.doctor.report import Finding, Status
from ivr.doctor.run import Options, ProcessRole, run_all
from ivr.settings import load_settings
from ivr.store import migrate
from tests.doctor.support import Deployment, build, fake_ari, free_port
from vault.access import PeerPolicy
from vault.factory import open_vault
from vault.protocol import encode_frame
from vault.server import VaultServer


@pytest.fixture
def deployment(tmp_path: Path, sqlite_template: Path) -> Deployment:
    return build(tmp_path, sqlite_template, free_port())


def statuses(findings: list[Finding]) -> set[Status]:
    return {f.status for f in findings}


def test_a_healthy_deployment_has_no_failure(deployment: Deployment) -> None:
    port = int(deployment.env["ARSPAY_ASTERISK_ARI_URL"].rsplit(":", 1)[1])
    options = Options(
        config_path=deployment.config,
        asterisk_dir=deployment.asterisk_dir,
        env=deployment.env,
        zone=lambda: "Asia/Seoul",
        ntp=lambda: True,
        euid=lambda: 1000,
    )
    with fake_ari(deployment.settings, port):
        findings = asyncio.run(run_all(options))
    not_ok = [f for f in findings if f.status != Status.OK]
    assert [(f.check, f.status) for f in not_ok] == [("vault-socket", Status.SKIP)]  # local
    checks = {f.check for f in findings}
    assert checks >= {"user", "config", "key-files", "migrations", "vault-schema",
                      "asterisk-config", "ari", "time-zone", "clock", "sms-sender"}  # fmt: skip


def test_a_key_readable_by_the_group_fails_with_chmod(deployment: Deployment) -> None:
    kek = deployment.var / "vault" / "kek.key"
    assert statuses(files.check_key_files(deployment.settings)) == {Status.OK}
    kek.chmod(0o640)
    bad = [f for f in files.check_key_files(deployment.settings) if f.status == Status.FAIL]
    assert len(bad) == 1
    assert str(kek) in bad[0].message
    assert "0640" in bad[0].message
    assert bad[0].fix == f"chmod 600 {kek}"


def test_a_missing_kek_fails_for_a_local_vault_only(deployment: Deployment) -> None:
    (deployment.var / "vault" / "kek.key").unlink()
    bad = [f for f in files.check_key_files(deployment.settings) if f.status == Status.FAIL]
    assert ["vault KEK" in f.message for f in bad] == [True]
    remote = load_settings(env={**deployment.env, "ARSPAY_VAULT_MODE": "remote"})
    assert Status.FAIL not in statuses(files.check_key_files(remote))


def test_a_config_file_others_may_read_fails(tmp_path: Path) -> None:
    path = tmp_path / "arspay.toml"
    path.write_text("[sms]\nsender = '1588-1234'\n")
    path.chmod(0o640)
    assert files.check_config_file(path).status == Status.OK
    path.chmod(0o644)
    finding = files.check_config_file(path)
    assert finding.status == Status.FAIL
    assert "chmod 640" in finding.fix


def test_an_invalid_configuration_fails_and_stops(tmp_path: Path) -> None:
    env = {"ARSPAY_CONFIG": "/nonexistent.toml", "ARSPAY_DIDS_LEASE_MINUTES": "soon"}
    findings = asyncio.run(run_all(Options(env=env, euid=lambda: 1000)))
    assert [f.check for f in findings] == ["user", "config", "config-file"]  # nothing else
    assert findings[1].status == Status.FAIL
    assert "dids.lease_minutes" in findings[1].message


def test_an_old_engine_schema_fails(deployment: Deployment) -> None:
    assert asyncio.run(schema.check_engine_schema(deployment.settings)).status == Status.OK
    engine = create_engine(f"sqlite:///{deployment.var / 'arspay.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()
    finding = asyncio.run(schema.check_engine_schema(deployment.settings))
    assert finding.status == Status.FAIL
    assert "0001" in finding.message
    assert str(migrate.head()) in finding.message
    assert "arspay migrate" in finding.fix


def test_an_unknown_or_missing_engine_schema_fails(deployment: Deployment) -> None:
    engine = create_engine(f"sqlite:///{deployment.var / 'arspay.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    finding = asyncio.run(schema.check_engine_schema(deployment.settings))
    assert finding.status == Status.FAIL
    assert "unknown" in finding.message
    (deployment.var / "arspay.db").unlink()
    finding = asyncio.run(schema.check_engine_schema(deployment.settings))
    assert finding.status == Status.FAIL
    assert finding.fix == "arspay migrate"
    assert not (deployment.var / "arspay.db").exists()  # the doctor made none


def test_a_database_url_that_is_no_url_fails_cleanly(deployment: Deployment) -> None:
    bad = load_settings(
        env={
            **deployment.env,
            "ARSPAY_DATABASE_URL": "mysql://x/y",
            "ARSPAY_VAULT_DATABASE_URL": "not a url",
        }
    )
    engine = asyncio.run(schema.check_engine_schema(bad))
    assert engine.status == Status.FAIL
    assert "unsupported database" in engine.message
    assert asyncio.run(schema.check_vault_schema(bad)).status == Status.FAIL


def test_a_vault_schema_version_is_checked(deployment: Deployment) -> None:
    assert asyncio.run(schema.check_vault_schema(deployment.settings)).status == Status.OK
    engine = create_engine(f"sqlite:///{deployment.var / 'vault' / 'vault.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE vault_meta SET value = '1' WHERE key = 'schema_version'"))
    assert asyncio.run(schema.check_vault_schema(deployment.settings)).status == Status.WARN
    with engine.begin() as conn:
        conn.execute(text("UPDATE vault_meta SET value = '99' WHERE key = 'schema_version'"))
    engine.dispose()
    assert asyncio.run(schema.check_vault_schema(deployment.settings)).status == Status.FAIL


def test_a_drifted_asterisk_config_fails_by_file_name(deployment: Deployment) -> None:
    settings = deployment.settings
    assert asterisk.check_drift(settings, deployment.asterisk_dir).status == Status.OK
    ari_conf = deployment.asterisk_dir / "ari.conf"
    password = ari_conf.read_text()
    ari_conf.write_text(password + "\n; edited by hand\n")
    (deployment.asterisk_dir / "pjsip.conf").unlink()
    finding = asterisk.check_drift(settings, deployment.asterisk_dir)
    assert finding.status == Status.FAIL
    assert "differ: ari.conf" in finding.message
    assert "missing: pjsip.conf" in finding.message
    assert "arspay asterisk render --out" in finding.fix
    secret = settings.asterisk.ari_password.get_secret_value()
    assert not secret or secret not in finding.line()


def test_a_config_file_arspay_does_not_write_is_a_warning(deployment: Deployment) -> None:
    (deployment.asterisk_dir / "sip.conf").write_text("; the package's sample\n")
    finding = asterisk.check_drift(deployment.settings, deployment.asterisk_dir)
    assert finding.status == Status.WARN
    assert "sip.conf" in finding.message


def test_settings_changed_since_the_render_are_drift(deployment: Deployment) -> None:
    moved = load_settings(env={**deployment.env, "ARSPAY_ASTERISK_SIP_PORT": "5071"})
    assert asterisk.check_drift(moved, deployment.asterisk_dir).status == Status.FAIL


def test_ari_on_a_closed_port_fails(deployment: Deployment) -> None:
    finding = asterisk.check_ari(deployment.settings, timeout_s=1.0)
    assert finding.status == Status.FAIL
    assert "does not answer" in finding.message


def test_ari_answers_and_refuses_a_wrong_password(deployment: Deployment) -> None:
    port = int(deployment.env["ARSPAY_ASTERISK_ARI_URL"].rsplit(":", 1)[1])
    with fake_ari(deployment.settings, port):
        good = asterisk.check_ari(deployment.settings)
        wrong = load_settings(
            env={
                **deployment.env,
                "ARSPAY_ASTERISK_ARI_PASSWORD": "w" * 20,
                "ARSPAY_ASTERISK_AGI_SECRET": "a" * 20,
            }
        )
        refused = asterisk.check_ari(wrong)
    assert good.status == Status.OK
    assert "22.0.0" in good.message
    assert refused.status == Status.FAIL
    assert "401" in refused.message
    off = load_settings(env={**deployment.env, "ARSPAY_ASTERISK_ARI_ENABLED": "false"})
    assert asterisk.check_ari(off).status == Status.SKIP


def test_running_as_root_is_a_warning() -> None:
    assert host.check_user(1000).status == Status.OK
    root = host.check_user(0)
    assert root.status == Status.WARN
    assert "sudo -u arspay" in root.fix


def test_clock_and_time_zone() -> None:
    assert statuses(host.check_time_zone(lambda: "Asia/Seoul")) == {Status.OK}
    utc = host.check_time_zone(lambda: "Etc/UTC")
    assert [f.status for f in utc] == [Status.OK, Status.WARN]
    assert "timedatectl set-timezone Asia/Seoul" in utc[1].fix
    assert host.check_ntp(lambda: True).status == Status.OK
    assert host.check_ntp(lambda: False).status == Status.WARN
    assert host.check_ntp(lambda: None).status == Status.SKIP


@pytest.mark.parametrize(
    ("sender", "adapter", "status"),
    [
        ("1588-1234", "http", Status.OK),
        ("", "outbox", Status.FAIL),
        ("call us", "http", Status.FAIL),
        ("1588-0000", "http", Status.WARN),  # the sample number, really sent
        ("1588-0000", "outbox", Status.OK),
    ],
)
def test_the_sms_sender(sender: str, adapter: str, status: Status) -> None:
    settings = load_settings(
        env={
            "ARSPAY_CONFIG": "/nonexistent.toml",
            "ARSPAY_SMS_SENDER": sender,
            "ARSPAY_SMS_ADAPTER": adapter,
        }
    )
    assert host.check_sms_sender(settings).status == status


def test_the_vault_role_checks_the_vault_only(deployment: Deployment) -> None:
    options = Options(
        role=ProcessRole.VAULT,
        config_path=deployment.config,
        env={**deployment.env, "ARSPAY_VAULT_MODE": "remote"},  # ignored for the vault
        zone=lambda: "Asia/Seoul",
        ntp=lambda: True,
        euid=lambda: 1000,
    )
    findings = asyncio.run(run_all(options))
    assert [f.status for f in findings] == [Status.OK] * len(findings)
    assert {f.check for f in findings} == {
        "user", "config", "config-file", "key-files", "vault-schema", "time-zone", "clock"
    }  # fmt: skip
    keys = [f.message.split(":")[0] for f in findings if f.check == "key-files"]
    assert keys == ["vault KEK", "vault fingerprint key", "vault audit key"]
    (deployment.var / "vault" / "kek.key").unlink()
    failed = [f for f in asyncio.run(run_all(options)) if f.status == Status.FAIL]
    assert [f.check for f in failed] == ["key-files"]


async def _fake_vault(path: Path, greeting: dict[str, object]) -> asyncio.Server:
    async def greet(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(encode_frame(greeting))
        await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(greet, path)


@pytest.mark.parametrize(
    ("greeting", "status", "words"),
    [
        ({"ok": True, "result": {"protocol": 1, "user": "arspay", "roles": ["engine"]}},
         Status.OK, "engine role"),
        ({"ok": True, "result": {"protocol": 1, "user": "arspay", "roles": ["admin"]}},
         Status.FAIL, "no engine role"),
        ({"ok": False, "error": {"id": "vault-peer-not-allowed", "message": "m", "status": 403}},
         Status.FAIL, "refuses this user (vault-peer-not-allowed)"),
    ],
)  # fmt: skip
def test_a_remote_vault_must_greet_with_the_engine_role(
    tmp_path: Path, greeting: dict[str, object], status: Status, words: str
) -> None:
    path = tmp_path / "v.sock"
    settings = load_settings(
        env={
            "ARSPAY_CONFIG": "/nonexistent.toml",
            "ARSPAY_VAULT_MODE": "remote",
            "ARSPAY_VAULT_SOCKET": str(path),
        }
    )

    async def go() -> Finding:
        server = await _fake_vault(path, greeting)
        try:
            return await vault_socket.check_vault_socket(settings)
        finally:
            server.close()
            await server.wait_closed()

    finding = asyncio.run(go())
    assert finding.status == status
    assert words in finding.message
    if status == Status.FAIL:
        assert "engine_gids" in finding.fix


def test_a_missing_or_stale_vault_socket_fails(tmp_path: Path) -> None:
    path = tmp_path / "v.sock"
    env = {"ARSPAY_CONFIG": "/nonexistent.toml", "ARSPAY_VAULT_MODE": "remote",
           "ARSPAY_VAULT_SOCKET": str(path)}  # fmt: skip
    settings = load_settings(env=env)
    missing = asyncio.run(vault_socket.check_vault_socket(settings))
    assert missing.status == Status.FAIL
    assert "systemctl start arspay-vault" in missing.fix
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # a socket file nobody listens on
    stale = asyncio.run(vault_socket.check_vault_socket(settings))
    assert stale.status == Status.FAIL
    assert "stale" in stale.message
    local = load_settings(env={**env, "ARSPAY_VAULT_MODE": "local"})
    assert asyncio.run(vault_socket.check_vault_socket(local)).status == Status.SKIP


def test_the_real_vault_server_greets_this_user_by_its_policy(deployment: Deployment) -> None:
    path = deployment.var / "v.sock"
    env = {**deployment.env, "ARSPAY_VAULT_MODE": "remote", "ARSPAY_VAULT_SOCKET": str(path)}
    settings = load_settings(env=env)
    other_uid = load_settings(env={**env, "ARSPAY_VAULT_ENGINE_UIDS": str(os.getuid() + 1)})

    async def go() -> list[Finding]:
        vault = await open_vault(settings)
        try:
            found = []
            for policy in (settings.vault, other_uid.vault):
                server = VaultServer(vault, path, policy=PeerPolicy.from_settings(policy))
                await server.start()
                try:
                    found.append(await vault_socket.check_vault_socket(settings))
                finally:
                    await server.close()
            return found
        finally:
            await vault.close()

    mine, others = asyncio.run(go())
    assert mine.status == Status.OK
    assert others.status == Status.FAIL  # root still holds the admin role, not the engine's
