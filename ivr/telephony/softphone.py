"""The softphone account: a SIP user a person registers a softphone with, to take a
request's call as the payer (``asterisk.softphone = true``).

Its password is random, generated once into ``softphone.toml`` next to the link
credentials (mode 0600; :func:`ensure`); ``arspay asterisk render`` writes the account
into ``pjsip_softphone.conf`` (template ``asterisk-config/softphone/``), which
``pjsip.conf`` includes when present. It binds ``asterisk.softphone_bind`` (loopback by
default; a LAN address on request), and its calls present
``asterisk.softphone_caller_id`` — the payer's mobile the possession check compares.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import SecretStr

from ivr.settings import Settings
from ivr.telephony.credentials import credentials_path, read_private, write_private

_FORMAT: Final = "arspay-softphone/1"


@dataclass(frozen=True)
class Account:
    """What a softphone is set up with (the password masked in ``repr``)."""

    user: str
    password: SecretStr
    host: str
    port: int
    caller_id: str

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@{self.host}:{self.port}"


def password_path(settings: Settings) -> Path:
    return credentials_path(settings).parent / "softphone.toml"


def ensure(settings: Settings) -> Account:
    """The account, its password generated first when there is none."""
    path = password_path(settings)
    if not path.exists():
        write_private(path, {"password": secrets.token_urlsafe(18)}, _FORMAT)
    password = read_private(path, _FORMAT, ("password",), "softphone password file")
    a = settings.asterisk
    return Account(
        user=a.softphone_user,
        password=SecretStr(password["password"]),
        host=str(a.softphone_bind),
        port=a.softphone_port,
        caller_id=a.softphone_caller_id,
    )
