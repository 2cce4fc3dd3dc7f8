"""The telephony link credentials: the ARI password and the FastAGI secret.

Asterisk and the engine must hold the same two values: Asterisk in ``ari.conf`` and as
the argument of every ``AGI()`` in ``extensions.conf`` (rendered by ``arspay asterisk
render``), the engine in its ARI client (Basic auth) and its FastAGI server (which
closes any connection that does not present the secret). Where they come from, first
match wins, per value:

1. ``asterisk.ari_password`` / ``asterisk.agi_secret`` from arspay.toml or ``ARSPAY_*``;
2. the generated credentials file (``asterisk.credentials_file``, default
   ``<paths.var_dir>/asterisk/credentials.toml``, mode 0600 in a 0700 directory): 32
   random bytes each, written once by :func:`generate` — ``arspay asterisk credentials``,
   which ``arspay asterisk render`` and ``scripts/asterisk setup`` run;
3. with ``engine.dev_mode = true`` only: the published development values.

:func:`checked` is what the engine and the renderer use: outside dev mode a missing
value, a development value or one shorter than 16 characters is a
:class:`~ivr.errors.ConfigError` that says how to fix it, so a fresh box never runs on
a password everyone knows. Nothing here logs or prints a value.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import SecretStr

from ivr.errors import ConfigError
from ivr.settings import Settings

DEV_ARI_PASSWORD: Final = "arspay-dev-only"  # noqa: S105 - published on purpose, dev only
DEV_AGI_SECRET: Final = "arspay-dev-only-agi"  # noqa: S105 - published on purpose, dev only
MIN_LENGTH: Final = 16
FILE_MODE: Final = 0o600
_AGI_SECRET = re.compile(r"[A-Za-z0-9_-]{1,128}")
_FORMAT: Final = "arspay-telephony-credentials/1"


@dataclass(frozen=True)
class Credentials:
    """Both values, masked in ``repr``; empty where nothing provides one."""

    ari_password: SecretStr
    agi_secret: SecretStr


def credentials_path(settings: Settings) -> Path:
    configured = settings.asterisk.credentials_file
    return configured or settings.paths.var_dir / "asterisk" / "credentials.toml"


def explicit(settings: Settings) -> bool:
    """Both values come from the configuration itself (the file is not used)."""
    a = settings.asterisk
    return bool(a.ari_password.get_secret_value() and a.agi_secret.get_secret_value())


def _new_values() -> dict[str, str]:
    # token_urlsafe: [A-Za-z0-9_-] only, safe in a dialplan argument and in ari.conf.
    return {"ari_password": secrets.token_urlsafe(32), "agi_secret": secrets.token_urlsafe(32)}


def write_private(path: Path, values: dict[str, str], fmt: str = _FORMAT) -> None:
    """Write a secrets file atomically: a 0600 temporary file, fsync, rename, fsync the
    directory (0700). ``values`` are URL-safe tokens (no quoting needed)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = f'format = "{fmt}"\n' + "".join(f'{k} = "{v}"\n' for k, v in values.items())
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def generate(path: Path, *, rotate: bool = False) -> bool:
    """Create the credentials file with fresh random values unless it exists (or
    ``rotate``: replace them). True when new values were written."""
    if path.exists() and not rotate:
        read_file(path)  # an existing file must be usable (and private)
        return False
    write_private(path, _new_values())
    return True


def read_private(path: Path, fmt: str, keys: tuple[str, ...], what: str) -> dict[str, str]:
    """The values of a secrets file :func:`write_private` wrote; a file others can read
    is refused."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if mode & 0o077:
        raise ConfigError(f"{path}: readable by others (mode {mode:o}); chmod 600 it")
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        raise ConfigError(f"{path}: not a {what} (not TOML)") from None
    values = {k: data.get(k) for k in keys}
    if data.get("format") != fmt or not all(isinstance(v, str) and v for v in values.values()):
        raise ConfigError(f"{path}: not a {what} (format, {', '.join(keys)})")
    return {k: str(v) for k, v in values.items()}


def read_file(path: Path) -> dict[str, str]:
    """The values in a credentials file; a file others can read is refused."""
    return read_private(path, _FORMAT, ("ari_password", "agi_secret"), "credentials file")


def resolve(settings: Settings) -> Credentials:
    """The values the configuration, the generated file or dev mode provide; unchecked
    (see :func:`checked`). A malformed AGI secret is refused here already."""
    a = settings.asterisk
    ari, agi = a.ari_password.get_secret_value(), a.agi_secret.get_secret_value()
    if not (ari and agi):
        path = credentials_path(settings)
        if path.exists():
            stored = read_file(path)
            ari, agi = ari or stored["ari_password"], agi or stored["agi_secret"]
    if settings.engine.dev_mode:
        ari, agi = ari or DEV_ARI_PASSWORD, agi or DEV_AGI_SECRET
    if agi and not _AGI_SECRET.fullmatch(agi):
        raise ConfigError("asterisk.agi_secret: use 1-128 of A-Z, a-z, 0-9, '_', '-'")
    return Credentials(SecretStr(ari), SecretStr(agi))


def _problem(name: str, value: str, dev_value: str) -> str | None:
    if not value:
        return f"no {name}"
    if value == dev_value:
        return f"{name} is the published development value"
    if len(value) < MIN_LENGTH:
        return f"{name} is shorter than {MIN_LENGTH} characters"
    return None


def checked(settings: Settings, *, ari: bool = True, agi: bool = True) -> Credentials:
    """:func:`resolve`, refusing (outside ``engine.dev_mode``) a missing, development or
    short value for the links in use: ``ari`` (the ARI password), ``agi`` (the FastAGI
    secret)."""
    creds = resolve(settings)
    if settings.engine.dev_mode:
        return creds
    problems = []
    if ari:
        problems.append(
            _problem("asterisk.ari_password", creds.ari_password.get_secret_value(),
                     DEV_ARI_PASSWORD)
        )  # fmt: skip
    if agi:
        problems.append(
            _problem("asterisk.agi_secret", creds.agi_secret.get_secret_value(), DEV_AGI_SECRET)
        )
    found = [p for p in problems if p]
    if found:
        raise ConfigError(
            "; ".join(found) + ": run `arspay asterisk credentials` (or `scripts/asterisk "
            f"setup`) to generate both into {credentials_path(settings)}, then render and "
            "restart Asterisk — or set them; engine.dev_mode = true accepts the development "
            "values (never where real calls arrive)"
        )
    return creds
