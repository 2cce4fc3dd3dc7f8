"""The ``[gateway]`` settings section (:class:`GatewaySettings`), re-exported by
:mod:`ivr.settings` like the vault's section: which PG the engine talks to (the sandbox,
PortOne v1 or PortOne V2), its credentials, deadlines, and the sandbox PG's own knobs.

A real PortOne account refuses to load without what its API needs (docs/portone.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

SANDBOX_BASE_URL = "http://127.0.0.1:8090"
PORTONE_BASE_URL = "https://api.iamport.kr"
PORTONE_V2_URL = "https://api.portone.io"
SANDBOX_CHANNEL_KEY = "channel-key-sandbox"  # kind = sandbox, channel_key left empty
DEFAULT_URL = {
    "sandbox": SANDBOX_BASE_URL,
    "portone": PORTONE_BASE_URL,
    "portone_v2": PORTONE_V2_URL,
}


class GatewaySettings(BaseModel):
    """The ``[gateway]`` section: which PG, its credentials, deadlines, and the sandbox PG."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["sandbox", "portone", "portone_v2"] = "sandbox"
    base_url: str = Field(
        SANDBOX_BASE_URL,
        description=f"the PG's API; default {SANDBOX_BASE_URL} (sandbox), "
        f"{PORTONE_BASE_URL} (kind = portone) or {PORTONE_V2_URL} (kind = portone_v2)",
    )
    api_key: str = Field("", description="PortOne REST API key (imp_key); required for portone")
    api_secret: SecretStr = Field(
        SecretStr(""),
        description="PortOne REST API secret (v1: imp_secret; V2: the API secret); required "
        "for portone and portone_v2",
    )
    timeout_s: float = Field(10.0, gt=0)
    connect_timeout_s: float = Field(
        3.0, gt=0, description="TCP connect timeout; a failure here never reached the PG"
    )
    total_timeout_s: float = Field(
        30.0, gt=0, description="deadline of one PG request, connect to last byte"
    )
    settle_s: float = Field(
        120.0,
        gt=0,
        description="an order the PG does not know is looked up again, and only then "
        "re-sent (same order id), this long after it was last sent: longer than the PG "
        "ever takes to record a request",
    )
    give_up_minutes: int = Field(
        60,
        ge=1,
        le=7 * 24 * 60,
        description="a charge or refund the PG still does not know this long after it "
        "began ends failed (nothing was charged or refunded)",
    )
    breaker_failures: int = Field(
        5,
        ge=1,
        description="the PG account's circuit breaker opens after this many consecutive "
        "failed requests (no answer, 5xx, connect errors); while open nothing is sent to it",
    )
    breaker_open_s: float = Field(
        30.0,
        gt=0,
        description="an open circuit breaker lets one probe request through this long after "
        "it opened: an answer closes it, a failure keeps it open as long again",
    )
    token_margin_s: float = Field(
        60.0, ge=0, description="renew the PortOne access token this long before it expires"
    )
    channel_key: str = Field(
        "",
        max_length=55,
        description="PortOne channel key of billing-key issuance (required by the v1 API; "
        f"required for portone; empty with kind = sandbox: {SANDBOX_CHANNEL_KEY})",
    )
    pg: str = Field(
        "",
        max_length=80,
        pattern=r"^([a-z0-9_]+(\.[A-Za-z0-9_-]+)?)?$",
        description="PortOne pg selector, {PG} or {PG}.{MID} (e.g. ksnet, nice_v2.MID1); "
        "picks the PG and its required fields (docs/portone.md); empty: the account's default",
    )
    product_type: Literal["", "real", "digital"] = Field(
        "", description="sent as product_type where the PG requires it (KSNET): real | digital"
    )
    buyer_email: str = Field(
        "",
        max_length=64,
        description="sent as buyer_email where the PG requires one (Smartro new module, "
        "Inicis keyed charges): the merchant's contact address; customers have none",
    )
    store_id: str = Field("", description="PortOne V2 store id (store-…), kind portone_v2")
    webhook_secret: SecretStr = Field(
        SecretStr(""),
        description="PortOne V2 webhook secret (whsec_…): POST /v1/pg/portone-v2/webhooks "
        "verifies PortOne's notifications with it; empty: the route answers 404",
    )
    accounts_key_file: Path | None = Field(
        None,
        description="the key sealing PG accounts' secrets in the engine database (made on "
        "first use, mode 0600; every engine process needs the same file); empty: "
        "<paths.var_dir>/pg-accounts.key",
    )
    billing_key_delete_after_minutes: int = Field(
        60,
        ge=10,
        le=30 * 24 * 60,
        description="a deleted card's billing key is deleted at the PG this long after",
    )
    sandbox_host: str = Field("127.0.0.1", description="arspay sandbox-pg: listen address")
    sandbox_port: int = Field(8090, ge=0, le=65535, description="arspay sandbox-pg: port")
    sandbox_latency_ms: int = Field(30, ge=0, description="sandbox: added to every API call")
    sandbox_error_rate: float = Field(
        0.0, ge=0, le=1, description="sandbox: share of payment calls answered HTTP 500"
    )
    sandbox_timeout_rate: float = Field(
        0.0, ge=0, le=1, description="sandbox: share of new charges that time out after recording"
    )
    sandbox_hang_ms: int = Field(
        0, ge=0, description="sandbox: how long a timed-out charge hangs before the drop"
    )
    sandbox_ledger: Path = Field(
        Path("var/sandbox-pg/ledger.db"), description="sandbox: SQLite ledger file"
    )
    sandbox_token_ttl_s: int = Field(1800, ge=1, description="sandbox: access token lifetime")
    sandbox_pg: str = Field(
        "",
        max_length=80,
        description="sandbox: play this PG's rules (ksnet, smartro_v2, welcome, inicis, "
        "…: required buyer fields, Smartro's order ids, Inicis's null card_type)",
    )
    sandbox_webhook_url: str = Field(
        "",
        description="sandbox: where its PortOne V2 mount posts V2 webhooks, signed with "
        "gateway.webhook_secret (empty: none are sent)",
    )
    sandbox_faults: str = Field(
        "",
        description="sandbox: orderings by probability, comma-separated "
        "endpoint:ordering:probability[:delay_ms] (e.g. charge:late:0.1:3000; "
        "see ivr/gateways/sandbox/faults.py)",
    )

    @model_validator(mode="before")
    @classmethod
    def _base_url_of_kind(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and not data.get("base_url"):
            url = DEFAULT_URL.get(str(data.get("kind", "sandbox")), SANDBOX_BASE_URL)
            return {**data, "base_url": url}
        return data

    @model_validator(mode="after")
    def _portone_is_configured(self) -> GatewaySettings:
        """A real PortOne account needs its keys and channel; the sandbox's URL would
        send real merchants' charges nowhere."""
        if self.kind != "portone":
            return self
        missing = [
            f"gateway.{name}"
            for name, value in (
                ("api_key", self.api_key),
                ("api_secret", self.api_secret.get_secret_value()),
                ("channel_key", self.channel_key),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"gateway.kind = portone needs {', '.join(missing)}")
        if self.base_url.rstrip("/") == SANDBOX_BASE_URL:
            raise ValueError(
                f"gateway.base_url is the sandbox's ({SANDBOX_BASE_URL}) with kind = portone; "
                f"use {PORTONE_BASE_URL}"
            )
        return self

    @model_validator(mode="after")
    def _portone_v2_needs(self) -> GatewaySettings:
        """kind portone_v2: the API secret, store and channel are required; base_url
        left unset is PortOne's (the sandbox's /v2 mount when pointed there)."""
        if self.kind != "portone_v2":
            return self
        missing = [
            name
            for name, value in (
                ("api_secret", self.api_secret.get_secret_value()),
                ("store_id", self.store_id),
                ("channel_key", self.channel_key),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                f"gateway.kind = 'portone_v2' needs gateway.{', gateway.'.join(missing)}"
            )
        return self

    @property
    def effective_channel_key(self) -> str:
        """``channel_key``, or the sandbox's own when the sandbox is left without one."""
        if self.channel_key or self.kind == "portone":
            return self.channel_key
        return SANDBOX_CHANNEL_KEY

    @model_validator(mode="after")
    def _settle_outlasts_a_request(self) -> GatewaySettings:
        if self.settle_s <= self.total_timeout_s:
            raise ValueError(
                "settle_s must be longer than total_timeout_s: an order is re-sent only "
                "when no earlier request for it can still be on its way"
            )
        return self
