"""The archive file: a tar (gzip-compressed or not) whose first member is the manifest.

Written to a hidden file created 0600 next to the target, synced, then renamed: a
crash leaves no half archive under the real name. Read member by member with a hash
on the way; only regular files with plain names (no directories, links or ``..``)
are accepted.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Literal

from ivr.backup.errors import ArchiveInvalid
from ivr.backup.manifest import MANIFEST, Manifest, Member
from ivr.backup.snapshot import create_private

Compression = Literal["gz", "none"]
_CHUNK = 1 << 20


def sha256_file(path: Path) -> Member:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return Member(path.name, digest.hexdigest(), path.stat().st_size)


def _info(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_archive(
    out: Path, manifest: Manifest, files: list[Path], compression: Compression
) -> None:
    """The manifest then ``files`` (named by their base names) into ``out`` (0600)."""
    part = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
    create_private(part)
    try:
        mode: Literal["w:gz", "w"] = "w:gz" if compression == "gz" else "w"
        with part.open("r+b") as raw:
            with tarfile.open(fileobj=raw, mode=mode, format=tarfile.PAX_FORMAT) as tar:
                body = manifest.to_json()
                stamp = manifest.created_at.timestamp()
                tar.addfile(_info(MANIFEST, len(body), stamp), io.BytesIO(body))
                for path in files:
                    with path.open("rb") as f:
                        tar.addfile(_info(path.name, path.stat().st_size, stamp), f)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(part, out)
    except BaseException:
        with suppress(FileNotFoundError):
            part.unlink()
        raise


@contextmanager
def opened(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        tar = tarfile.open(path, mode="r:*")  # noqa: SIM115 - closed below
    except (OSError, tarfile.TarError) as exc:
        raise ArchiveInvalid(f"{path.name}: not a readable archive ({exc})") from None
    try:
        yield tar
    finally:
        tar.close()


def read_manifest(tar: tarfile.TarFile) -> Manifest:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isfile():
        raise ArchiveInvalid(f"the archive does not start with {MANIFEST}")
    f = tar.extractfile(first)
    assert f is not None
    return Manifest.from_json(f.read(1 << 20))


def members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members after the manifest; ArchiveInvalid on anything but a plain file."""
    while (info := tar.next()) is not None:
        if not info.isfile() or "/" in info.name or info.name in ("", ".", ".."):
            raise ArchiveInvalid(f"the archive holds an unexpected entry {info.name!r}")
        yield info


def extract(tar: tarfile.TarFile, info: tarfile.TarInfo, dest: Path) -> Member:
    """Write one member to the new file ``dest`` (0600), hashing it on the way."""
    source = tar.extractfile(info)
    assert source is not None
    digest = hashlib.sha256()
    size = 0
    create_private(dest)
    with dest.open("wb") as out:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return Member(info.name, digest.hexdigest(), size)
