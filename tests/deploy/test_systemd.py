"""The systemd units in deploy/systemd: hardened, their commands real ``arspay``
commands, their directories the ones the example configs name, and — where
``systemd-analyze`` exists — verified by systemd itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ivr.cli import app
from ivr.settings import load_settings
from tests.deploy.units import Unit, command, parse, value, values

DEPLOY = Path(__file__).parents[2] / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
INSTALLED = "/opt/arspay/.venv/bin/arspay"
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "LimitCORE": "0",
    "MemorySwapMax": "0",
    "UMask": "0077",
    "CapabilityBoundingSet": "",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
}


def unit(name: str) -> Unit:
    return parse(DEPLOY / "systemd" / name)


def test_the_engine_and_the_vault_have_units() -> None:
    assert [u.name for u in UNITS] == ["arspay-engine.service", "arspay-vault.service"]


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_every_unit_is_hardened(path: Path) -> None:
    u = parse(path)
    for key, wanted in HARDENING.items():
        assert value(u, key) == wanted, key
    families = value(u, "RestrictAddressFamilies").split()
    assert set(families) <= {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert values(u, "MemoryDenyWriteExecute") == []  # breaks libffi closures (see unit)
    assert value(u, "User") not in ("", "root")
    # Every directory systemd makes for it is writable under ProtectSystem=strict.
    writable = {p.lstrip("-") for line in values(u, "ReadWritePaths") for p in line.split()}
    for key, root in (("StateDirectory", "/var/lib"), ("LogsDirectory", "/var/log"),
                      ("RuntimeDirectory", "/run")):  # fmt: skip
        for name in values(u, key):
            assert f"{root}/{name}" in writable, f"{key}={name}"
    for key in ("StandardOutput", "StandardError"):
        target = value(u, key).removeprefix("append:")
        assert Path(target).parent.as_posix() in {
            f"/var/log/{n}" for n in values(u, "LogsDirectory")
        }


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_exec_start_is_an_arspay_command(path: Path) -> None:
    u = parse(path)
    for line in values(u, "ExecStart") + values(u, "ExecStartPre"):
        argv = command(line)
        assert argv[0] == INSTALLED
        # --help after the arguments: click refuses an unknown command or option first.
        result = CliRunner().invoke(app, [*argv[1:], "--help"])
        assert result.exit_code == 0, f"{line}: {result.output}"


def test_the_units_and_the_example_configs_agree() -> None:
    engine, vault = unit("arspay-engine.service"), unit("arspay-vault.service")
    engine_cfg = load_settings(DEPLOY / "config" / "arspay.toml", env={})
    vault_cfg = load_settings(DEPLOY / "config" / "vault.toml", env={})
    assert value(engine, "Environment") == "ARSPAY_CONFIG=/etc/arspay/arspay.toml"
    assert value(vault, "Environment") == "ARSPAY_CONFIG=/etc/arspay/vault.toml"
    assert engine_cfg.paths.var_dir == Path("/var/lib") / value(engine, "StateDirectory")
    assert vault_cfg.paths.var_dir == Path("/var/lib") / value(vault, "StateDirectory")
    # The socket: in the vault's runtime directory, reached by the engine through the
    # directory's group (the vault's group, the engine's supplementary one).
    runtime = Path("/run") / value(vault, "RuntimeDirectory")
    assert engine_cfg.vault.mode == "remote"
    assert engine_cfg.vault.socket.parent == runtime == vault_cfg.vault.socket.parent
    assert value(engine, "SupplementaryGroups") == value(vault, "Group")
    assert value(vault, "RuntimeDirectoryMode") == "0750"
    # The vault's keys are in its own 0700 state directory, never the engine's.
    assert value(vault, "StateDirectoryMode") == "0700"
    for key in (vault_cfg.vault.key_file, vault_cfg.vault.fingerprint_key_file):
        assert key.is_relative_to(vault_cfg.paths.var_dir)
    assert value(engine, "User") != value(vault, "User")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_verifies_the_units(tmp_path: Path) -> None:
    arspay = Path(sys.executable).with_name("arspay")
    if not arspay.exists():
        pytest.skip("no installed arspay script next to the interpreter")
    copies = []
    for path in UNITS:  # the ExecStart binary must exist for verify: point it at ours
        copy = tmp_path / path.name
        copy.write_text(path.read_text(encoding="utf-8").replace(INSTALLED, str(arspay)))
        copies.append(str(copy))
    done = subprocess.run(
        ["systemd-analyze", "verify", *copies], capture_output=True, text=True, timeout=60,
        check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # an unknown key or bad value is a warning
    # systemd's own exposure score (0 best, 10 worst; --threshold counts tenths): at most
    # 2.0, where "OK" ends. 1.4 for both now.
    for copy in copies:
        score = subprocess.run(
            ["systemd-analyze", "security", "--offline=yes", "--threshold=20", copy],
            capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert score.returncode == 0, score.stdout[-2000:] + score.stderr
