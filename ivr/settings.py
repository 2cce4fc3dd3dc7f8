"""Typed, frozen settings, built once: defaults -> ``arspay.toml`` -> ``ARSPAY_*`` env.

Every field lives in a section; its environment variable is
``ARSPAY_<SECTION>_<FIELD>`` in upper case (``database.url`` -> ``ARSPAY_DATABASE_URL``).
The file is ``./arspay.toml`` unless ``ARSPAY_CONFIG`` names another. Unknown keys and
values of the wrong type are errors (:class:`~ivr.errors.ConfigError`) naming the key.

Secrets are :class:`pydantic.SecretStr`: their ``repr`` and ``str`` are masked, and
:func:`render` (``arspay config show``) prints them masked. Nothing here is global: the
CLI builds one :class:`Settings` and passes it down. The ``[vault]`` section's model is
the vault's own (:class:`vault.config.VaultSettings`: the vault imports nothing from
here); it is re-exported under its old name.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ivr.errors import ConfigError
from ivr.gateways.config import (  # the [gateway] section
    PORTONE_BASE_URL as PORTONE_BASE_URL,
)
from ivr.gateways.config import PORTONE_V2_URL as PORTONE_V2_URL
from ivr.gateways.config import SANDBOX_BASE_URL as SANDBOX_BASE_URL
from ivr.gateways.config import SANDBOX_CHANNEL_KEY as SANDBOX_CHANNEL_KEY
from ivr.gateways.config import GatewaySettings as GatewaySettings
from vault.config import VaultSettings as VaultSettings  # the [vault] section

ENV_PREFIX = "ARSPAY_"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PathsSettings(_Section):
    var_dir: Path = Field(Path("var"), description="runtime data: database, logs, sockets")


class DatabaseSettings(_Section):
    url: SecretStr = Field(
        SecretStr(""),
        description="SQLAlchemy async URL; empty = sqlite+aiosqlite:///<var_dir>/arspay.db. "
        "PostgreSQL: postgresql+asyncpg://user:pass@host/db",
    )
    busy_timeout_ms: int = Field(15_000, ge=0, description="SQLite busy timeout")
    pool_size: int = Field(10, ge=1)
    echo: bool = False


class DidSettings(_Section):
    lease_minutes: int = Field(30, ge=1, le=7 * 24 * 60, description="default lease lifetime")
    cooldown_minutes: int = Field(
        10, ge=0, description="a released (DID, mobile) pair is not re-leased for this long"
    )


class CallSettings(_Section):
    max_calls_per_request: int = Field(5, ge=1)
    max_wrong_entries: int = Field(3, ge=1)
    first_digit_timeout_s: float = Field(8.0, gt=0)
    inter_digit_timeout_s: float = Field(5.0, gt=0)
    senior_mode: bool = Field(False, description="doubles the digit timeouts")
    readback: bool = Field(True, description="read back the card's last 4 digits")
    agent_destination: str = Field("", description="dialplan target for key 0 in menus")


class AsteriskSettings(_Section):
    ari_url: str = "http://127.0.0.1:8088"
    ari_user: str = "arspay"
    ari_password: SecretStr = Field(
        SecretStr(""),
        description="ARI password (16+ characters); empty: the generated asterisk.credentials_file",
    )
    agi_secret: SecretStr = Field(
        SecretStr(""),
        description="FastAGI shared secret, 16-128 of [A-Za-z0-9_-]: Asterisk passes it as "
        "the AGI argument and the engine refuses a connection without it; empty: the "
        "generated asterisk.credentials_file",
    )
    credentials_file: Path | None = Field(
        None,
        description="the generated ARI password and FastAGI secret (TOML, mode 0600), "
        "written by `arspay asterisk credentials` (run by `arspay asterisk render` and "
        "`scripts/asterisk setup`); empty: <paths.var_dir>/asterisk/credentials.toml",
    )
    app: str = "arspay"
    ari_rest_over_ws: bool = Field(
        True,
        description="send ARI requests over the event WebSocket (Asterisk 22.3+/20.13+); "
        "off: over HTTP",
    )
    ari_enabled: bool = Field(
        True,
        description="take calls over ARI (the Stasis app); off: FastAGI only (a site that "
        "keeps its own dialplan)",
    )
    sip_port: int = Field(5070, ge=1, le=65535)
    agi_port: int = Field(4573, ge=1, le=65535)
    rtp_start: int = Field(10000, ge=1024, le=65535)
    rtp_end: int = Field(10999, ge=1024, le=65535)
    softphone: bool = Field(False, description="render a softphone SIP account (arspay up)")
    softphone_user: str = "softphone"
    softphone_bind: ipaddress.IPv4Address = Field(
        ipaddress.IPv4Address("127.0.0.1"), description="its SIP and RTP address: loopback or LAN"
    )
    softphone_port: int = Field(5080, ge=1, le=65535)
    softphone_caller_id: str = Field(
        "", pattern=r"^(\d{8,15})?$", description="the mobile its calls present (digits)"
    )


class SmsSettings(_Section):
    adapter: Literal["outbox", "smpp", "http"] = "outbox"
    sender: str = Field("1588-0000", description="registered sender number (발신번호)")
    smpp_host: str = Field("127.0.0.1", description="SMSC host (adapter smpp)")
    smpp_port: int = Field(2775, ge=1, le=65535)
    smpp_system_id: str = Field("", description="SMPP bind system_id")
    smpp_password: SecretStr = SecretStr("")
    http_url: str = Field("", description="HTTP SMS provider endpoint (adapter http)")
    http_api_key: SecretStr = SecretStr("")
    timeout_s: float = Field(10.0, gt=0, description="per send")
    max_attempts: int = Field(8, ge=1, le=100, description="sends before a message is failed")


class AlimtalkSettings(_Section):
    """KakaoTalk 알림톡 for payer notices (docs/notices.md): tried first for a notice
    kind that has a template code here, the SMS/LMS (대체 발송) when it is refused."""

    provider: Literal["none", "nhn"] = Field(
        "none", description="none: notices go by SMS only; nhn: NHN Cloud KakaoTalk Bizmessage"
    )
    base_url: str = Field(
        "https://kakaotalk-bizmessage.api.nhncloudservice.com", description="API domain"
    )
    app_key: str = Field("", description="the NHN Cloud project's app key (not a secret)")
    secret_key_file: Path | None = Field(
        None, description="file holding the X-Secret-Key (mode 0600; never in the config)"
    )
    sender_key: str = Field("", description="발신 프로필 키 of the KakaoTalk channel (40 chars)")
    templates: dict[str, str] = Field(
        default_factory=dict,
        description="notice kind -> approved template code; a kind without one goes by SMS",
    )
    timeout_s: float = Field(10.0, gt=0, description="per request")
    max_attempts: int = Field(
        4, ge=1, le=20, description="sends while the provider is down before the SMS fallback"
    )
    retry_base_s: float = Field(30.0, gt=0, description="first retry delay (doubles)")
    result_wait_s: float = Field(
        600.0, gt=0, description="poll an accepted message's result this long; then no fallback"
    )

    @field_validator("templates", mode="before")
    @classmethod
    def _templates(cls, value: Any) -> Any:
        """A TOML table, or JSON in ``ARSPAY_ALIMTALK_TEMPLATES``; keys are notice kinds."""
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError("alimtalk.templates: a JSON object of kind -> code") from None
        if isinstance(value, Mapping):
            from ivr.notify.notices.kinds import NoticeKind  # no engine imports there

            unknown = sorted(set(value) - {k.value for k in NoticeKind})
            if unknown:
                raise ValueError(f"alimtalk.templates: unknown notice kind(s) {unknown}")
        return value

    @property
    def enabled(self) -> bool:
        return self.provider != "none" and bool(self.templates)

    def template_for(self, kind: str) -> str | None:
        return self.templates.get(kind) if self.provider != "none" else None

    def secret_key(self) -> SecretStr:
        """The X-Secret-Key, read from ``secret_key_file`` (stripped)."""
        if self.secret_key_file is None:
            return SecretStr("")
        path = self.secret_key_file
        if os.name == "posix" and path.stat().st_mode & 0o077:
            raise ConfigError(f"alimtalk.secret_key_file {path} must be readable by its owner only")
        return SecretStr(path.read_text(encoding="utf-8").strip())


class WebhookSettings(_Section):
    timeout_s: float = Field(10.0, gt=0, description="per delivery request")
    retry_hours: float = Field(
        26.0, gt=0, description="keep retrying a delivery (exponential backoff) this long"
    )
    disable_after_hours: float = Field(
        72.0, gt=0, description="disable an endpoint whose deliveries all failed this long"
    )
    workers: int = Field(4, ge=1, le=64, description="concurrent deliveries per process")
    allow_private_targets: bool = Field(
        False,
        description="deliver to loopback/private/link-local addresses (development only: "
        "otherwise a merchant's URL could reach the operator's internal services)",
    )


class PromptSettings(_Section):
    manifest: Path = Field(Path("prompts/manifest"), description="prompt id -> Korean text")
    recorded_dir: Path = Field(
        Path("prompts/recorded"), description="operator recordings that override generated audio"
    )
    sounds_dir: Path = Field(
        Path("var/sounds/arspay"),
        description="where built WAVs go; Asterisk plays them as sound:arspay/NAME",
    )
    voice: str = Field("ko", description="espeak-ng voice")
    speed_wpm: int = Field(150, ge=80, le=450, description="espeak-ng speed (words per minute)")


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    enabled: bool = Field(True, description="serve the REST API from the engine process")
    rate_limit_per_minute: int = Field(600, ge=1, description="requests per API key per minute")
    page_size_max: int = Field(100, ge=1, le=1000)
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="largest request body (JSON, forms); larger ones are answered 413 "
        "before they are read",
    )
    max_upload_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1024,
        le=256 * 1024 * 1024,
        description="largest bulk job submission (POST /v1/bulk-jobs and /v1/bulk-jobs/upload, "
        "the console's bulk upload), multipart framing included",
    )
    auth_failures_per_minute: int = Field(
        30,
        ge=1,
        le=100_000,
        description="401 answers per minute per source address (IPv6: per /64) and per "
        "presented key prefix (per process); past it, 429 with Retry-After",
    )
    trusted_proxies: str = Field(
        "127.0.0.1, ::1",
        description="comma-separated addresses or networks (CIDR) of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto are believed; empty: none",
    )
    metrics_token: SecretStr = Field(
        SecretStr(""),
        description="bearer token /metrics asks for (empty: /metrics is open, like /health "
        "and /ready; see docs/operating.md)",
    )
    docs_enabled: bool = Field(
        False,
        description="serve interactive API docs at /docs (Swagger UI from files packaged "
        "with arspay, with SRI; /openapi.json is always served)",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in (v.strip() for v in value.split(",")):
            if item and item != "*":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(f"not an IP address or network: {item!r}") from None
        return value


class ConsoleSettings(_Section):
    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """``secure_cookie = true`` (before ``secure_cookies``) still means always."""
        if isinstance(data, dict) and "secure_cookie" in data and "secure_cookies" not in data:
            data = dict(data)
            old = str(data.pop("secure_cookie")).lower()
            data["secure_cookies"] = "always" if old in ("true", "1", "yes") else "auto"
        return data

    enabled: bool = Field(True, description="serve the admin console at /console with the API")
    session_idle_minutes: int = Field(30, ge=1, le=24 * 60, description="log out after idle")
    session_max_hours: int = Field(12, ge=1, le=24 * 7, description="log in again after")
    lockout_failures: int = Field(5, ge=1, le=100, description="failed logins before lockout")
    lockout_minutes: int = Field(15, ge=1, le=24 * 60, description="how long a lockout lasts")
    secure_cookies: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Secure cookies and HSTS. auto: when the request came over TLS (directly "
        "or as X-Forwarded-Proto: https from api.trusted_proxies), and Secure cookies "
        "whenever api.host is not a loopback address; always: on every answer; never: "
        "plain-HTTP development only",
    )
    language: Literal["ko", "en"] = Field("ko", description="default page language")
    require_2fa: Literal["none", "operators", "all"] = Field(
        "none",
        description="who must log in with a one-time code (TOTP) as well as the password: "
        "users it covers set one up at their next login; others may turn it on",
    )
    mfa_key_file: Path | None = Field(
        None,
        description="AES-256 key (created on first use, mode 0600) that encrypts the TOTP "
        "secrets in the database; every engine serving the console needs the same file; "
        "empty: <paths.var_dir>/console/mfa.key",
    )


class ConsentSettings(_Section):
    key_file: Path | None = Field(
        None,
        description="the secret that MACs every consent record and signs the checkpoints "
        "(made on first use, mode 0600; every engine sharing the database needs the same "
        "file; never in the database: keep a backup); empty: <paths.var_dir>/consent/"
        "evidence.key",
    )
    checkpoint_dir: Path | None = Field(
        None,
        description="where the engine writes signed checkpoints of the consent chain; "
        "empty: <paths.var_dir>/consent/checkpoints",
    )
    checkpoint_interval_minutes: int = Field(
        60, ge=1, le=7 * 24 * 60, description="how often the engine writes a checkpoint"
    )


class EngineSettings(_Section):
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop",
        description="the engine's event loop: uvloop (libuv; faster prompt turnaround) or "
        "asyncio's own (falls back to it where uvloop is not installed)",
    )
    node_id: str = Field(
        "",
        max_length=64,
        pattern=r"^[A-Za-z0-9._:-]*$",
        description="this engine's name on a database shared by several engines (each with "
        "its own Asterisk): its call sessions carry it, and at start-up it ends only the "
        "calls its own earlier process left open; empty: this machine's host name",
    )
    sweep_interval_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="how often the sweeper runs: expiries, and every payment, refund and "
        "billing key left open driven to its end",
    )
    job_lease_s: float = Field(
        120.0,
        ge=5,
        le=3600,
        description="a schedule or bulk job claimed by an engine that died is taken over "
        "by another this long after its claim (longer than one job ever takes)",
    )
    dev_mode: bool = Field(
        False,
        description="development only: the engine accepts the published development ARI "
        "password and FastAGI secret (used when none is configured or generated); never on "
        "a machine that takes real calls",
    )


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json_format: bool = True


class Settings(_Section):
    paths: PathsSettings = PathsSettings()
    database: DatabaseSettings = DatabaseSettings()
    dids: DidSettings = DidSettings()
    calls: CallSettings = CallSettings()
    asterisk: AsteriskSettings = AsteriskSettings()
    vault: VaultSettings = VaultSettings()
    gateway: GatewaySettings = GatewaySettings()
    sms: SmsSettings = SmsSettings()
    alimtalk: AlimtalkSettings = AlimtalkSettings()
    prompts: PromptSettings = PromptSettings()
    webhooks: WebhookSettings = WebhookSettings()
    api: ApiSettings = ApiSettings()
    console: ConsoleSettings = ConsoleSettings()
    consent: ConsentSettings = ConsentSettings()
    engine: EngineSettings = EngineSettings()
    log: LogSettings = LogSettings()

    @property
    def database_url(self) -> str:
        """The effective database URL (the default SQLite file under ``var_dir``)."""
        url = self.database.url.get_secret_value()
        if url:
            return url
        return f"sqlite+aiosqlite:///{self.paths.var_dir / 'arspay.db'}"


def _sections() -> dict[str, type[BaseModel]]:
    out: dict[str, type[BaseModel]] = {}
    for name, info in Settings.model_fields.items():
        annotation = info.annotation
        assert isinstance(annotation, type)
        assert issubclass(annotation, BaseModel)  # a _Section, or the vault's own model
        out[name] = annotation
    return out


def _from_env(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    known: set[str] = {ENV_PREFIX + "CONFIG"}
    for section, model in _sections().items():
        for field_name in model.model_fields:
            var = f"{ENV_PREFIX}{section}_{field_name}".upper()
            known.add(var)
            if var in env:
                found.setdefault(section, {})[field_name] = env[var]
    # A variable naming a known section but no field of it is a typo worth stopping for;
    # other ARSPAY_* variables (ARSPAY_TEST_PG_URL, script knobs) are not settings.
    sections = tuple(f"{ENV_PREFIX}{name.upper()}_" for name in _sections())
    unknown = sorted(k for k in env if k.startswith(sections) and k not in known)
    if unknown:
        raise ConfigError(f"unknown setting(s) in the environment: {', '.join(unknown)}")
    return found


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_settings(
    config_file: Path | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings once. ``env`` defaults to ``os.environ``."""
    environ = os.environ if env is None else env
    path = config_file or Path(environ.get(ENV_PREFIX + "CONFIG", "arspay.toml"))
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    elif config_file is not None:
        raise ConfigError(f"{path}: no such configuration file")
    data = _merge(data, _from_env(environ))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, SecretStr):
        return '"**********"' if value.get_secret_value() else '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(settings: Settings) -> str:
    """The effective configuration as TOML, secrets masked (``arspay config show``)."""
    lines: list[str] = []
    for section in _sections():
        lines.append(f"[{section}]")
        model = getattr(settings, section)
        for field_name in type(model).model_fields:
            lines.append(f"{field_name} = {_toml_value(getattr(model, field_name))}")
        lines.append("")
    return "\n".join(lines)
