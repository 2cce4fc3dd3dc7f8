"""Merchant, API key and customer services.

API keys look like ``ak_<prefix>_<secret>``: the 12-character prefix finds the row, and
only the SHA-256 of the whole key is stored. The key is returned once, at creation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.audit import audit, audit_row
from ivr.clock import Clock
from ivr.domain.ids import new_id
from ivr.domain.states import API_KEY, MERCHANT, ApiKeyStatus, MerchantStatus
from ivr.domain.text import check_text, clean_text
from ivr.errors import Conflict, InvalidInput
from ivr.merchants.policy import MerchantPolicy
from ivr.phone import PhoneError, normalize_mobile
from ivr.store.db import Database
from ivr.store.scope import Scope
from ivr.store.tables import ApiKey, Customer, Merchant

_KEY_PREFIX = "ak_"


@dataclass(frozen=True, slots=True)
class NewApiKey:
    id: str
    merchant_id: str
    key: str  # shown once, never stored

    def __repr__(self) -> str:
        return f"NewApiKey(id={self.id!r}, merchant_id={self.merchant_id!r}, key='**********')"


@dataclass(frozen=True, slots=True)
class Principal:
    merchant_id: str
    key_id: str


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _clean_name(name: str, what: str, limit: int = 100) -> str:
    return clean_text(name, what, max_length=limit)


def _audit(
    s: AsyncSession, clock: Clock, actor: str, action: str, m: Merchant, details: Any = None
) -> None:
    """Audit ``action`` (``merchant.<verb>``) on the merchant itself (its rows:
    :func:`~ivr.audit.audit_row`)."""
    audit(s, clock, actor=actor, action=action, object_type="merchant", object_id=m.id,
          merchant_id=m.id, details=details)  # fmt: skip


@dataclass(eq=False)
class MerchantService:
    db: Database
    clock: Clock

    async def create(self, name: str, *, actor: str = "cli") -> Merchant:
        now = self.clock.now()
        m = Merchant(
            id=new_id("mer"),
            name=_clean_name(name, "merchant name"),
            status=MerchantStatus.active.value,
            settings={},
            created_at=now,
        )
        async with self.db.transaction() as s:
            s.add(m)
            _audit(s, self.clock, actor, "merchant.create", m)
        return m

    async def get(self, merchant_id: str) -> Merchant:
        async with self.db.sessions() as s:
            return await Scope.of(merchant_id).one(s, Merchant, merchant_id, "merchant")

    async def list(self) -> list[Merchant]:
        return await self.db.all(select(Merchant).order_by(Merchant.id))

    async def set_status(self, merchant_id: str, status: MerchantStatus, *, actor: str) -> None:
        async with self.db.transaction() as s:
            m = await Scope.of(merchant_id).one(s, Merchant, merchant_id, "merchant", lock=True)
            m.status = MERCHANT.check(m.status, status).value
            _audit(s, self.clock, actor, f"merchant.{status.value}", m)

    async def set_policy(
        self, merchant_id: str, changes: dict[str, Any], *, replace: bool = False, actor: str
    ) -> MerchantPolicy:
        """Merge ``changes`` into the merchant's call policy (``None`` removes a key), or
        replace it; the result is validated before anything is stored."""
        async with self.db.transaction() as s:
            m = await Scope.of(merchant_id).one(s, Merchant, merchant_id, "merchant", lock=True)
            merged: dict[str, Any] = {} if replace else dict(m.settings or {})
            for key, value in changes.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            policy = MerchantPolicy.parse(merged)
            m.settings = policy.model_dump(mode="json", exclude_unset=True)
            _audit(s, self.clock, actor, "merchant.policy", m, details={"keys": sorted(changes)})
            return policy

    # ---------------------------------------------------------------- API keys

    async def create_api_key(self, merchant_id: str, name: str, *, actor: str) -> NewApiKey:
        await self.get(merchant_id)
        prefix = secrets.token_hex(6)
        key = f"{_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        row = ApiKey(
            id=new_id("key"),
            merchant_id=merchant_id,
            name=_clean_name(name, "key name"),
            prefix=prefix,
            secret_sha256=_digest(key),
            status=ApiKeyStatus.active.value,
            created_at=self.clock.now(),
        )
        async with self.db.transaction() as s:
            s.add(row)
            audit_row(s, self.clock, actor, "api_key.create", row)
        return NewApiKey(row.id, merchant_id, key)

    async def revoke_api_key(self, merchant_id: str, key_id: str, *, actor: str) -> None:
        async with self.db.transaction() as s:
            row = await Scope.of(merchant_id).one(s, ApiKey, key_id, "API key", lock=True)
            row.status = API_KEY.check(row.status, ApiKeyStatus.revoked).value
            row.revoked_at = self.clock.now()
            audit_row(s, self.clock, actor, "api_key.revoke", row)

    async def authenticate(self, key: str) -> Principal | None:
        """The merchant behind an API key, or None (unknown, revoked, malformed, suspended)."""
        parts = key.split("_", 2) if key.startswith(_KEY_PREFIX) else []
        if len(parts) != 3 or len(parts[1]) != 12:
            return None
        async with self.db.sessions() as s:
            row = await s.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
            if row is None or not hmac.compare_digest(row.secret_sha256, _digest(key)):
                return None
            if row.status != ApiKeyStatus.active.value:
                return None
            merchant = await Scope.of(row.merchant_id).get(s, Merchant, row.merchant_id)
            if merchant is None or merchant.status != MerchantStatus.active.value:
                return None
            return Principal(row.merchant_id, row.id)


@dataclass(eq=False)
class CustomerService:
    db: Database
    clock: Clock

    async def create(
        self,
        merchant_id: str,
        *,
        mobile: str,
        name: str = "",
        external_ref: str | None = None,
        actor: str = "cli",
        customer_id: str | None = None,
    ) -> Customer:
        try:
            digits = normalize_mobile(mobile).digits
        except PhoneError as exc:
            raise InvalidInput(f"mobile: {exc}") from None
        # stored and shown
        name = clean_text(name, "name", required=False)
        check_text(external_ref or "", "external_ref")
        row = Customer(
            id=customer_id or new_id("cus"),
            merchant_id=merchant_id,
            external_ref=external_ref or None,
            name=name,
            mobile=digits,
            created_at=self.clock.now(),
        )
        try:
            async with self.db.transaction() as s:
                await Scope.of(merchant_id).one(s, Merchant, merchant_id, "merchant")
                s.add(row)
                await s.flush()
                audit_row(s, self.clock, actor, "customer.create", row)
        except IntegrityError:
            raise Conflict(f"a customer with external_ref {external_ref!r} exists") from None
        return row

    async def get(self, merchant_id: str, customer_id: str) -> Customer:
        async with self.db.sessions() as s:
            return await Scope.of(merchant_id).one(s, Customer, customer_id, "customer")
