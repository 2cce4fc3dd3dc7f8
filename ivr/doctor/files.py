"""Key files and credentials: each must be readable by its owner only (no group or other
permission bits), as the code that makes them leaves them; the configuration file, which
may hold the database password and PG secrets, must not be readable by others.

Which files: the vault's KEK (``kek_provider = "file"``), fingerprint and audit keys (on
the host that runs the vault: ``vault.mode = "local"``, or any that exist here), the
sealing keys (PG accounts, console one-time codes), the consent evidence key, and the
telephony credentials file (and the softphone's, when it is on). A key made on first use
that does not exist yet is fine; the vault KEK in local mode is not.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from ivr.consent.keys import key_path as consent_key_path
from ivr.doctor.report import Finding, fail, ok, skip, warn
from ivr.pg_accounts.store import accounts_key
from ivr.settings import Settings
from ivr.telephony import credentials, softphone
from vault.factory import audit_key_path

CHECK = "key-files"
CONFIG_CHECK = "config-file"
VAULT_INIT = "arspay vault init"
CREDENTIALS = "arspay asterisk credentials"
RENDER = "arspay asterisk render"


@dataclass(frozen=True)
class SecretFile:
    purpose: str
    path: Path
    required: bool = False  # missing is a failure
    made_by: str = "the engine, on first use"


def mfa_key_path(settings: Settings) -> Path:
    """``console.mfa_key_file`` (as ivr/console/mfa.py resolves it, without importing
    the console)."""
    return settings.console.mfa_key_file or settings.paths.var_dir / "console" / "mfa.key"


def key_files(settings: Settings, *, vault_only: bool = False) -> list[SecretFile]:
    v = settings.vault
    local = v.mode == "local" or vault_only
    vault_files = [
        SecretFile("vault fingerprint key", v.fingerprint_key_file, made_by=VAULT_INIT),
        SecretFile("vault audit key", audit_key_path(settings), made_by=VAULT_INIT),
    ]
    if v.kek_provider == "file":
        vault_files.insert(0, SecretFile("vault KEK", v.key_file, required=local))
    if vault_only:
        return vault_files
    files = [
        SecretFile("PG accounts key", accounts_key(settings.gateway, settings.paths.var_dir).path),
        SecretFile("console one-time-code key", mfa_key_path(settings)),
        SecretFile("consent evidence key", consent_key_path(settings)),
    ]
    if not credentials.explicit(settings):
        path = credentials.credentials_path(settings)
        files.append(SecretFile("telephony credentials", path, made_by=CREDENTIALS))
    if settings.asterisk.softphone:
        files.append(
            SecretFile("softphone password", softphone.password_path(settings), made_by=RENDER)
        )
    # A remote vault's keys live on its own host: checked there when they are not here.
    return (vault_files if local else [f for f in vault_files if f.path.exists()]) + files


def check_key_files(settings: Settings, *, vault_only: bool = False) -> list[Finding]:
    out: list[Finding] = []
    for key in key_files(settings, vault_only=vault_only):
        try:
            mode = stat.S_IMODE(key.path.stat().st_mode)
        except FileNotFoundError:
            if key.required:
                out.append(
                    fail(
                        CHECK,
                        f"{key.purpose}: {key.path} is missing",
                        "arspay vault init (as the vault's user), or set vault.key_file",
                    )
                )
            else:
                out.append(skip(CHECK, f"{key.purpose}: no {key.path} yet (made by {key.made_by})"))
            continue
        except PermissionError:
            out.append(
                warn(
                    CHECK,
                    f"{key.purpose}: {key.path} cannot be read by this user",
                    "run arspay doctor as the service's user (or root)",
                )
            )
            continue
        if mode & 0o077:
            out.append(
                fail(
                    CHECK,
                    f"{key.purpose}: {key.path} is mode {mode:04o}, readable beyond its owner",
                    f"chmod 600 {key.path}",
                )
            )
        else:
            out.append(ok(CHECK, f"{key.purpose}: {key.path} is owner-only ({mode:04o})"))
    return out


def check_config_file(path: Path | None) -> Finding:
    if path is None or not path.exists():
        return skip(CONFIG_CHECK, "no configuration file: defaults and ARSPAY_* only")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o007:
        return fail(
            CONFIG_CHECK,
            f"{path} is mode {mode:04o}: others may read it (it can hold passwords)",
            f"chmod 640 {path} (owner root, group of the service)",
        )
    return ok(CONFIG_CHECK, f"{path} is not readable by others ({mode:04o})")
