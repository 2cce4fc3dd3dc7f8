"""The payment-gateway contract for operations that need the plaintext card.

The vault never hands a decrypted card to the engine. Issuing a billing key and keyed
(one-time) charges run inside the vault: it decrypts the record, calls a
:class:`CardGateway` with the card and the transient 2-digit password, wipes its
buffers and returns only the gateway's result. The payment-gateway issue implements
:class:`CardGateway` (PortOne v1, the sandbox PG); tests use a recording fake.

Rules for implementations: never log, store or echo ``card`` or ``password2``; raise
:class:`~vault.errors.ArspayError` subclasses (their ``error_id`` crosses the vault
socket); report declines in the result, not as exceptions. Any other exception is
replaced by :class:`~vault.errors.GatewayFailed` carrying only the exception's type.

A :class:`Route` names the PG account to forward to (a merchant has several; each card
remembers the one holding its billing key): ``None`` is the vault's configured gateway.
The vault checks a route's host against ``vault.gateway_hosts`` before it decrypts
anything (:mod:`vault.gateway_hosts`). A route's ``connection`` holds the account's
secrets: it is never in a repr, a log line, an exception or the audit log (only
``account_id`` is).

Outcomes a caller fails over on: :attr:`BillingKeyResult.pg_down` (the PG did not
answer; a key may exist there) and the charge status ``not_sent`` (the request
certainly never reached the PG; nothing was charged).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol
from urllib.parse import urlsplit

from vault.card import CardData
from vault.errors import InvalidRequest

DeclineKind = Literal["soft", "hard"]
ChargeStatus = Literal["succeeded", "failed", "unknown", "not_sent"]
ROUTE_KINDS: Final = ("sandbox", "portone", "portone_v2")
MAX_CONNECTION_FIELDS: Final = 24
MAX_CONNECTION_VALUE: Final = 1_024
_ACCOUNT_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_FIELD_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
_LONG_DIGITS: Final = re.compile(r"\d{13,}")


class Connection(Mapping[str, str]):
    """A PG account's connection fields: read-only, its ``repr`` names the fields only
    (a route's secrets printed by mistake stay hidden), copied as itself."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, str]) -> None:
        self._fields = dict(fields)

    def __getitem__(self, name: str) -> str:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Connection({', '.join(sorted(self._fields))})"

    def __copy__(self) -> Connection:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Connection:
        return self

    def __reduce__(self) -> tuple[type[Connection], tuple[dict[str, str]]]:
        return (Connection, (dict(self._fields),))


@dataclass(frozen=True)
class Route:
    """The PG account a forwarding call goes to: its id (audited), the gateway kind,
    the API's base URL, and ``connection``: whatever a gateway of that kind needs
    (``api_key``, ``api_secret``, ``channel_key``, ``pg``, ``store_id``…), secrets
    included — kept out of ``repr``, equality-checked but never hashed. Checked on
    construction (:class:`~vault.errors.InvalidRequest` naming the field, never a
    value); ``connection`` is copied into a :class:`Connection`."""

    account_id: str
    kind: str
    base_url: str
    connection: Mapping[str, str] = field(repr=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.account_id, str) or not _ACCOUNT_RE.fullmatch(self.account_id):
            raise InvalidRequest("route.account_id must be 1-64 characters of [A-Za-z0-9_.:-]")
        if _LONG_DIGITS.search(self.account_id):
            raise InvalidRequest("route.account_id must not contain long digit sequences")
        if self.kind not in ROUTE_KINDS:
            raise InvalidRequest(f"route.kind must be one of {', '.join(ROUTE_KINDS)}")
        _check_base_url(self.base_url)
        if not isinstance(self.connection, Mapping):
            raise InvalidRequest("route.connection must be a mapping of text to text")
        if len(self.connection) > MAX_CONNECTION_FIELDS:
            raise InvalidRequest(f"route.connection holds at most {MAX_CONNECTION_FIELDS} fields")
        for name, value in self.connection.items():
            if not isinstance(name, str) or not _FIELD_RE.fullmatch(name):
                raise InvalidRequest("route.connection field names must match [a-z][a-z0-9_]*")
            if not isinstance(value, str) or len(value) > MAX_CONNECTION_VALUE:
                raise InvalidRequest(
                    f"route.connection.{name} must be text of at most "
                    f"{MAX_CONNECTION_VALUE} characters"
                )
        object.__setattr__(self, "connection", Connection(self.connection))

    @property
    def host(self) -> str:
        """The base URL's host name, lower case, without a trailing dot."""
        return (urlsplit(self.base_url).hostname or "").rstrip(".")

    @property
    def scheme(self) -> str:
        return urlsplit(self.base_url).scheme.lower()


def _check_base_url(url: object) -> None:
    if not isinstance(url, str) or not 1 <= len(url) <= 512 or not url.isprintable():
        raise InvalidRequest("route.base_url must be a URL of at most 512 characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise InvalidRequest("route.base_url is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("route.base_url must be an http(s) URL with a host")
    if "@" in parts.netloc or parts.query or parts.fragment:
        # A secret belongs in connection, never in a URL (URLs end up in logs).
        raise InvalidRequest("route.base_url must not hold credentials, a query or a fragment")


@dataclass(frozen=True)
class BillingKeyResult:
    ok: bool
    customer_uid: str  # the billing key reference at the PG (PortOne: customer_uid)
    card_issuer: str | None = None
    card_type: str | None = None  # credit | check, as the PG reports it
    decline_code: str | None = None
    decline_kind: DeclineKind | None = None
    message: str | None = None  # the PG's message, which must not contain card data
    # The PG did not answer (unreachable, timed out, 5xx, or its circuit is open): no
    # key may be assumed, yet one may exist at the PG — the caller deletes it later.
    pg_down: bool = False


@dataclass(frozen=True)
class Order:
    """What a keyed (one-time) charge asks for, beside the card and its password: one
    value through the vault's client, its service and the :class:`CardGateway`. The
    vault checks it (:meth:`vault.service.LocalVault.keyed_charge`)."""

    order_id: str
    amount: int  # KRW
    order_name: str
    installment_months: int  # 0 = lump sum, else 2-36


@dataclass(frozen=True)
class ChargeResult:
    # not_sent: the request certainly never reached the PG (refused before sending, or
    # its circuit is open): nothing was charged, sending it elsewhere is safe.
    # unknown: it may have reached the PG; look the order up before anything else.
    status: ChargeStatus
    order_id: str
    amount: int  # KRW
    pg_transaction_id: str | None = None
    approval_number: str | None = None
    decline_code: str | None = None
    decline_kind: DeclineKind | None = None
    message: str | None = None
    # The PG's receipt page, already checked by the connector (ivr/gateways/receipts.py):
    # a link, not card data, so it may leave the vault.
    receipt_url: str | None = None


class CardGateway(Protocol):
    """``route``: the PG account to use (already allowed by the vault), ``None``: the
    gateway's default one."""

    async def issue_billing_key(
        self, card: CardData, password2: str, customer_uid: str, *, route: Route | None = None
    ) -> BillingKeyResult: ...

    async def keyed_charge(
        self, card: CardData, password2: str, order: Order, *, route: Route | None = None
    ) -> ChargeResult: ...

    async def aclose(self) -> None:
        """Close what the gateway opened for routes (the vault calls it on close)."""
        ...
