"""``arspay backup create | verify | restore`` as a subprocess: exit statuses, output,
and the archive's mode."""

from __future__ import annotations

import io
import json
import stat
import tarfile
from pathlib import Path

from tests.cli.test_cli import arspay


def test_backup_create_verify_restore(tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = {
        "ARSPAY_PATHS_VAR_DIR": str(var),
        "ARSPAY_VAULT_KEY_FILE": str(var / "vault" / "kek.key"),
        "ARSPAY_VAULT_FINGERPRINT_KEY_FILE": str(var / "vault" / "fp.key"),
    }
    assert arspay("migrate", env=env).returncode == 0
    assert arspay("vault", "init", env=env).returncode == 0
    archive = tmp_path / "b.tar.gz"

    made = arspay("--json", "backup", "create", str(archive), env=env)
    assert made.returncode == 0, made.stderr
    body = json.loads(made.stdout)
    assert body["ok"] is True
    assert len(body["kek_ids"]) == 1
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600

    checked = arspay("backup", "verify", str(archive), env=env)
    assert checked.returncode == 0, checked.stdout
    assert "intact" in checked.stdout
    assert body["kek_ids"][0] in checked.stdout

    target = tmp_path / "restored"
    restored = arspay("backup", "restore", str(archive), str(target), env=env)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    for name in ("rows: ok", "db check: ok", "consent verify: ok", "vault keys: ok",
                 "vault audit: ok", "vault decrypt sample: ok"):  # fmt: skip
        assert name in restored.stdout
    assert (target / "restored.toml").exists()
    refused = arspay("backup", "restore", str(archive), str(target), env=env)
    assert refused.returncode == 2
    assert "not empty" in refused.stderr

    # A damaged member: verify exits 1 with the problem (restore refuses it: the unit tests).
    bad = tmp_path / "bad.tar"
    with tarfile.open(archive) as old, tarfile.open(bad, "w") as new:
        for info in old.getmembers():
            f = old.extractfile(info)
            assert f is not None
            data = f.read()
            if info.name == "engine.sqlite3":
                data = data[:-1] + bytes([data[-1] ^ 1])
            new.addfile(info, io.BytesIO(data))
    damaged = arspay("backup", "verify", str(bad), env=env)
    assert damaged.returncode == 1
    assert "problem: engine.sqlite3: SHA-256" in damaged.stdout
