"""The ``arspay`` command. Each sub-module adds one group of commands to :data:`app`."""

from __future__ import annotations

import ivr.cli.api_cmd  # noqa: F401, RUF100
import ivr.cli.asterisk_cmd  # noqa: F401, RUF100
import ivr.cli.backup_cmd  # noqa: F401, RUF100
import ivr.cli.bulk_cmd  # noqa: F401, RUF100
import ivr.cli.consent_cmd  # noqa: F401, RUF100
import ivr.cli.console_cmd  # noqa: F401, RUF100
import ivr.cli.doctor_cmd  # noqa: F401, RUF100
import ivr.cli.engine_cmd  # noqa: F401, RUF100
import ivr.cli.gateway_cmd  # noqa: F401, RUF100
import ivr.cli.migrate_cmd  # noqa: F401, RUF100
import ivr.cli.pg_accounts_cmd  # noqa: F401, RUF100
import ivr.cli.prompts_cmd  # noqa: F401, RUF100
import ivr.cli.schedules_cmd  # noqa: F401, RUF100
import ivr.cli.up_cmd  # noqa: F401, RUF100
import ivr.cli.vault_cmd  # noqa: F401
from ivr.cli import config_cmd, db_cmd, dids_cmd, merchants_cmd, requests_cmd  # noqa: F401
from ivr.cli.app import app, main

__all__ = ["app", "main"]
