"""The interface the engine uses to reach the vault, in-process or over a socket.

:class:`VaultClient` is implemented by :class:`vault.service.LocalVault` (in this
process) and :class:`vault.remote.RemoteVault` (the ``arspay vault serve`` process over
its Unix socket); the vault test suite runs against both. Plaintext card data only
flows *into* the vault (``tokenize``, and the password into forwarding calls); what
comes back is metadata, gateway results, audit entries and whether a keyed birth date
matched (``verify_birth``: a yes or no, never the stored value).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from vault.card import CardData
from vault.forwarding import BillingKeyResult, ChargeResult, Order, Route
from vault.models import AuditEntry, BirthCheck, CardMetadata, TokenRef, VaultStatus


class VaultClient(Protocol):
    async def tokenize(self, merchant_id: str, card: CardData, *, who: str) -> CardMetadata:
        """Validate and store a card; a fresh random token every time."""
        ...

    async def metadata(self, token: str, merchant_id: str) -> CardMetadata:
        """What is known about a stored card without decrypting it."""
        ...

    async def issue_billing_key(
        self,
        token: str,
        merchant_id: str,
        *,
        password2: str,
        customer_uid: str,
        who: str,
        why: str,
        route: Route | None = None,
    ) -> BillingKeyResult:
        """Decrypt (audited) and ask the gateway for a billing key: the PG account
        ``route`` names, else the vault's configured one. A route to a host not on
        ``vault.gateway_hosts`` is refused before the decrypt
        (:class:`~vault.errors.GatewayHostRefused`, audited). ``pg_down`` in the result:
        the PG did not answer (a key may exist there)."""
        ...

    async def keyed_charge(
        self,
        token: str,
        merchant_id: str,
        *,
        password2: str,
        order: Order,
        who: str,
        why: str,
        route: Route | None = None,
    ) -> ChargeResult:
        """Decrypt (audited) and make a one-time keyed charge (``route`` as for
        :meth:`issue_billing_key`); status ``not_sent``: it never reached the PG."""
        ...

    async def verify_birth(
        self, token: str, merchant_id: str, *, birth: str, who: str, why: str
    ) -> BirthCheck:
        """Compare a keyed birth date (YYMMDD) or business number with the stored one,
        in constant time (audited: who, when, why and the outcome — never the digits).
        Raises :class:`~vault.errors.VerifyLimited` past the vault's own ceiling."""
        ...

    async def delete(self, token: str, merchant_id: str, *, who: str, why: str) -> None:
        """Erase the record for good (audited)."""
        ...

    async def audit(self, *, token: str | None = None, limit: int = 50) -> list[AuditEntry]:
        """Newest first."""
        ...

    async def tokens(
        self, *, created_before: datetime, after: str = "", limit: int = 500
    ) -> list[TokenRef]:
        """Stored records created before ``created_before`` — token, merchant, creation
        time; nothing about the card — in token order after ``after`` (paging). The
        engine's orphan sweep erases those no card row refers to."""
        ...

    async def status(self) -> VaultStatus: ...

    async def close(self) -> None: ...
