"""Every check, in the order an operator fixes things: the configuration, files and
keys, databases, Asterisk, the clock, messages."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ivr.doctor import asterisk, files, host, schema, vault_socket
from ivr.doctor.report import Finding, fail, ok
from ivr.errors import ConfigError
from ivr.settings import Settings, load_settings

CONFIG_CHECK = "config"


class ProcessRole(StrEnum):
    """What the configuration runs: ``arspay engine run`` (everything it needs, the
    vault's files too when vault.mode is local) or ``arspay vault serve`` (its keys, its
    database, the clock)."""

    ENGINE = "engine"
    VAULT = "vault"


@dataclass(frozen=True)
class Options:
    role: ProcessRole = ProcessRole.ENGINE
    config_path: Path | None = None  # the file the settings come from, if any
    asterisk_dir: Path = asterisk.DEFAULT_DIR
    ari_timeout_s: float = 2.0
    zone: Callable[[], str | None] = host.system_zone
    ntp: Callable[[], bool | None] = host.ntp_synchronized
    euid: Callable[[], int] = os.geteuid
    env: dict[str, str] | None = field(default=None)  # None: os.environ


def load(options: Options) -> tuple[Settings | None, Finding]:
    try:
        settings = load_settings(options.config_path, env=options.env)
    except ConfigError as exc:
        return None, fail(CONFIG_CHECK, exc.message, "correct the named setting")
    where = options.config_path or "defaults and ARSPAY_* (no file)"
    return settings, ok(CONFIG_CHECK, f"the configuration loads and validates ({where})")


async def run_all(options: Options) -> list[Finding]:
    settings, loaded = load(options)
    findings = [host.check_user(options.euid()), loaded]
    findings.append(files.check_config_file(options.config_path))
    if settings is None:
        return findings  # nothing else can be checked without settings
    if options.role == ProcessRole.VAULT:
        findings += files.check_key_files(settings, vault_only=True)
        findings.append(await schema.check_vault_schema(settings, vault_only=True))
    else:
        findings += files.check_key_files(settings)
        findings.append(await schema.check_engine_schema(settings))
        findings.append(await schema.check_vault_schema(settings))
        findings.append(await vault_socket.check_vault_socket(settings))
        findings.append(asterisk.check_drift(settings, options.asterisk_dir))
        findings.append(asterisk.check_ari(settings, options.ari_timeout_s))
    findings += host.check_time_zone(options.zone)
    findings.append(host.check_ntp(options.ntp))
    if options.role == ProcessRole.ENGINE:
        findings.append(host.check_sms_sender(settings))
    return findings
