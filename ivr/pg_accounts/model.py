"""A PG account as the engine uses it: connection, credentials, options; ``default`` is
the ``[gateway]`` settings' own account, which every row without an account names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import SecretStr, ValidationError

from ivr.errors import InvalidInput
from ivr.gateways.config import DEFAULT_URL, GatewaySettings

DEFAULT = "default"
ACCOUNT_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,38}[a-z0-9]")
KINDS = ("sandbox", "portone", "portone_v2")
# what an account says beside kind, URL and secrets: the [gateway] fields of its own
OPTIONS = ("pg", "channel_key", "store_id", "product_type", "buyer_email")


class AccountStatus(StrEnum):
    active = "active"
    disabled = "disabled"


def account_key(account_id: str | None) -> str:
    """A row's account: ``NULL`` is ``default``."""
    return account_id or DEFAULT


def stored_id(account_id: str) -> str | None:
    """What a row stores for an account: ``NULL`` for ``default``."""
    return None if account_id == DEFAULT else account_id


def mask(value: str) -> str:
    """A secret or key as it is shown: its length hidden, its last 4 characters kept
    when it is long enough that they say nothing useful."""
    if not value:
        return ""
    return "••••" + value[-4:] if len(value) >= 12 else "••••"


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    kind: str
    base_url: str
    api_key: str = ""
    api_secret: str = field(default="", repr=False)
    webhook_secret: str = field(default="", repr=False)
    options: dict[str, str] = field(default_factory=dict)
    status: AccountStatus = AccountStatus.active
    created_at: datetime | None = None
    updated_at: datetime | None = None
    merchant_id: str | None = None  # a merchant's own account; None: the operators'

    def visible_to(self, merchant_id: str) -> bool:
        """Whether ``merchant_id`` may see it and route to it: the operators' accounts
        (``default`` included) and its own."""
        return self.merchant_id is None or self.merchant_id == merchant_id

    @property
    def active(self) -> bool:
        return self.status is AccountStatus.active

    @property
    def version(self) -> str:
        """Changes when anything the gateway is built from changes."""
        return f"{self.id}@{self.updated_at.isoformat() if self.updated_at else '-'}"

    def settings(self, base: GatewaySettings) -> GatewaySettings:
        """The ``[gateway]`` settings of this account: ``base`` (deadlines, breaker,
        sandbox knobs) with this account's connection. Raises InvalidInput naming what
        the account lacks (as the settings would refuse it)."""
        if self.id == DEFAULT:
            return base
        data: dict[str, Any] = base.model_dump()
        data.update(
            kind=self.kind,
            base_url=self.base_url,
            api_key=self.api_key,
            api_secret=SecretStr(self.api_secret),
            webhook_secret=SecretStr(self.webhook_secret),
        )
        for name in OPTIONS:
            data[name] = self.options.get(name, "")
        try:
            return GatewaySettings.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'account'}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
            raise InvalidInput(f"PG account {self.id}: {problems}") from None

    def shown(self) -> dict[str, Any]:
        """For the API, the console and the CLI: secrets masked."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "base_url": self.base_url,
            "api_key": mask(self.api_key),
            "api_secret": mask(self.api_secret),
            "webhook_secret": mask(self.webhook_secret),
            "options": dict(self.options),
            "status": self.status.value,
            "from_settings": self.id == DEFAULT,
            "merchant_id": self.merchant_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def default_account(gw: GatewaySettings) -> Account:
    """The ``[gateway]`` settings as the account ``default``."""
    return Account(
        id=DEFAULT,
        name="[gateway] settings",
        kind=gw.kind,
        base_url=gw.base_url,
        api_key=gw.api_key,
        api_secret=gw.api_secret.get_secret_value(),
        webhook_secret=gw.webhook_secret.get_secret_value(),
        options={name: str(getattr(gw, name)) for name in OPTIONS if getattr(gw, name)},
    )


def default_url(kind: str) -> str:
    return DEFAULT_URL[kind]
