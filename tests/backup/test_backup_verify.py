"""``verify`` finds a damaged or foreign archive without restoring it, and ``restore``
refuses a target that is not fresh or is the live system."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from ivr.backup.create import create_backup
from ivr.backup.errors import ArchiveInvalid, BackupError, RestoreRefused
from ivr.backup.restore import Target, restore_backup
from ivr.backup.verify import verify_archive
from ivr.settings import Settings, load_settings
from ivr.store import migrate
from ivr.store.db import Database
from vault.factory import init_keys, open_vault

pytestmark = pytest.mark.anyio


@pytest.fixture
async def live(tmp_path: Path) -> Settings:
    var = tmp_path / "live" / "var"
    settings = load_settings(env={
        "ARSPAY_PATHS_VAR_DIR": str(var),
        "ARSPAY_VAULT_KEY_FILE": str(var / "vault" / "kek.key"),
        "ARSPAY_VAULT_FINGERPRINT_KEY_FILE": str(var / "vault" / "fp.key"),
    })  # fmt: skip
    db = Database(settings.database_url)
    await migrate.upgrade(db)
    await db.close()
    init_keys(settings)
    await (await open_vault(settings)).close()
    return settings


@pytest.fixture
async def archive(live: Settings, tmp_path: Path) -> Path:
    out = tmp_path / "b.tar"
    await create_backup(live, out, compression="none")
    return out


def rewrite(src: Path, dest: Path, change: dict[str, bytes]) -> None:
    """A copy of the archive ``src`` with some members' bytes replaced."""
    with tarfile.open(src) as old, tarfile.open(dest, "w") as new:
        for info in old.getmembers():
            f = old.extractfile(info)
            assert f is not None
            body = change.get(info.name, f.read())
            info.size = len(body)
            new.addfile(info, io.BytesIO(body))


def member(src: Path, name: str) -> bytes:
    with tarfile.open(src) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


async def test_an_intact_archive_verifies(archive: Path, tmp_path: Path) -> None:
    report = await verify_archive(archive, tmp_path / "v")
    assert report.ok, report.problems
    assert report.manifest.engine.revision == migrate.head()


async def test_a_changed_member_fails_its_hash(archive: Path, tmp_path: Path) -> None:
    body = bytearray(member(archive, "vault.sqlite3"))
    body[-100] ^= 0xFF
    bad = tmp_path / "bad.tar"
    rewrite(archive, bad, {"vault.sqlite3": bytes(body)})
    report = await verify_archive(bad, tmp_path / "v")
    assert report.problems == ["vault.sqlite3: SHA-256 or size differs from the manifest"]


async def test_a_corrupt_database_with_a_matching_manifest_fails_integrity_check(
    archive: Path, tmp_path: Path
) -> None:
    body = bytearray(member(archive, "engine.sqlite3"))
    size = int.from_bytes(body[16:18], "big")
    for page in range(1, len(body) // size):  # every b-tree page's type byte
        body[page * size] = 0x07

    manifest = json.loads(member(archive, "manifest.json"))
    for m in manifest["members"]:
        if m["name"] == "engine.sqlite3":
            m["sha256"] = hashlib.sha256(body).hexdigest()
    bad = tmp_path / "bad.tar"
    rewrite(archive, bad, {"engine.sqlite3": bytes(body),
                           "manifest.json": json.dumps(manifest).encode()})  # fmt: skip
    report = await verify_archive(bad, tmp_path / "v")
    assert report.problems
    assert all(p.startswith("engine.sqlite3: ") for p in report.problems), report.problems


async def test_an_unknown_revision_is_reported(archive: Path, tmp_path: Path) -> None:
    manifest = json.loads(member(archive, "manifest.json"))
    manifest["engine"]["revision"] = "9999_from_the_future"
    manifest["vault"]["revision"] = "99"
    bad = tmp_path / "bad.tar"
    rewrite(archive, bad, {"manifest.json": json.dumps(manifest).encode()})
    report = await verify_archive(bad, tmp_path / "v")
    assert any("9999_from_the_future" in p for p in report.problems)
    assert any("vault schema version '99'" in p for p in report.problems)


async def test_not_an_archive(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"hello")
    with pytest.raises(ArchiveInvalid):
        await verify_archive(junk, tmp_path / "v")


async def test_create_refuses_to_replace_an_archive(live: Settings, archive: Path) -> None:
    with pytest.raises(BackupError, match="exists"):
        await create_backup(live, archive)


async def test_restore_refuses_a_non_empty_target_unless_forced(
    live: Settings, archive: Path, tmp_path: Path
) -> None:
    target = tmp_path / "r"
    target.mkdir()
    (target / "something").write_text("x")
    with pytest.raises(RestoreRefused, match="not empty"):
        await restore_backup(live, archive, Target(target))
    _, restored = await restore_backup(live, archive, Target(target), force=True)
    assert (target / "arspay.db").exists()
    from_file = load_settings(target / "restored.toml", env={})  # what the operator merges
    assert from_file.database_url == restored.database_url
    assert from_file.vault.key_file == live.vault.key_file.absolute()
    assert from_file.paths.var_dir == target.resolve()
    assert (target / "vault" / "vault.db").exists()
    assert not (target / ".restore-staging").exists()


async def test_restore_never_writes_over_the_live_databases(live: Settings, archive: Path) -> None:
    db_file = live.paths.var_dir / "arspay.db"
    before = db_file.read_bytes()
    with pytest.raises(RestoreRefused, match="live"):
        await restore_backup(live, archive, Target(live.paths.var_dir), force=True)
    assert db_file.read_bytes() == before
    assert not (live.paths.var_dir / ".restore-staging").exists()


async def test_restore_refuses_a_damaged_archive_and_writes_nothing(
    live: Settings, archive: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.tar"
    rewrite(archive, bad, {"engine.sqlite3": b"not a database"})
    with pytest.raises(ArchiveInvalid, match="does not verify"):
        await restore_backup(live, bad, Target(tmp_path / "r"))
    assert list((tmp_path / "r").iterdir()) == []
