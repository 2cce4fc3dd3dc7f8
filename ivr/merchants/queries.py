"""The merchants read model: merchants, their API keys, their customers (with what is
newest of each customer) and their audit log, as the API and the console show them.
Every read goes through a :class:`~ivr.store.scope.Scope`."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.store.scope import Scope
from ivr.store.tables import ApiKey, AuditLog, Customer, Merchant

M = TypeVar("M")


async def merchant_names(s: AsyncSession, scope: Scope) -> dict[str, str]:
    """Merchant id → name in ``scope``, by name (the console's merchant column and picker)."""
    q = scope.where(select(Merchant.id, Merchant.name), Merchant).order_by(Merchant.name)
    return {mid: name for mid, name in (await s.execute(q)).all()}


async def merchants(s: AsyncSession, scope: Scope) -> list[Merchant]:
    """The merchants in ``scope``, by name."""
    return list(await s.scalars(scope.where(select(Merchant), Merchant).order_by(Merchant.name)))


async def api_keys(s: AsyncSession, scope: Scope, merchant_id: str) -> list[ApiKey]:
    """A merchant's API keys (newest first); none outside ``scope``."""
    q = scope.where(select(ApiKey).where(ApiKey.merchant_id == merchant_id), ApiKey)
    return list(await s.scalars(q.order_by(ApiKey.id.desc())))


def customers(
    scope: Scope,
    *,
    external_ref: str | None = None,
    search: str = "",
    name: str = "",
    mobile: str = "",
) -> Select[Customer]:
    """The customers in ``scope`` (to page), deleted ones left out: one ``external_ref``;
    ``name`` a part of the name; ``mobile`` normalized digits, exact; or ``search``, an
    external ref or the last four digits of a mobile number (the console's search box)."""
    q = scope.select(Customer, external_ref=external_ref).where(Customer.deleted_at.is_(None))
    if name:
        q = q.where(Customer.name.like(f"%{_like_escaped(name)}%", escape="\\"))
    if mobile:
        q = q.where(Customer.mobile == mobile)
    if search:
        match = Customer.external_ref == search
        if len(search) == 4 and search.isdigit():
            q = q.where(or_(match, Customer.mobile.endswith(search)))
        else:
            q = q.where(match)
    return q


async def customers_of(s: AsyncSession, scope: Scope, rows: list[Any]) -> dict[str, Customer]:
    """The customers of ``rows`` (anything with a ``customer_id``), by id: one query."""
    ids = {r.customer_id for r in rows}
    if not ids:
        return {}
    q = scope.where(select(Customer).where(Customer.id.in_(ids)), Customer)
    return {c.id: c for c in await s.scalars(q)}


async def newest_of_customer(
    s: AsyncSession, scope: Scope, model: type[M], customer_id: str, limit: int
) -> list[M]:
    """The newest ``limit`` rows of ``model`` (anything with a ``customer_id``) of one
    customer."""
    column: Any = model
    q = scope.where(select(model).where(column.customer_id == customer_id), model)
    return list(await s.scalars(q.order_by(column.id.desc()).limit(limit)))


def _like_escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_prefix(value: str) -> str:
    return _like_escaped(value) + ".%"


def audit_log(
    scope: Scope, *, action: str = "", object_id: str = "", before: int | None = None
) -> Select[AuditLog]:
    """The audit rows in ``scope``, newest first: of ``action`` or every action under it
    (``bulk`` → ``bulk.submit``), of one object, older than row ``before``."""
    q = scope.where(select(AuditLog), AuditLog)
    if action:
        q = q.where(or_(AuditLog.action == action,
                        AuditLog.action.like(_like_prefix(action), escape="\\")))  # fmt: skip
    if object_id:
        q = q.where(AuditLog.object_id == object_id)
    if before is not None:
        q = q.where(AuditLog.id < before)
    return q.order_by(AuditLog.id.desc())


async def last_actions(
    s: AsyncSession, object_type: str, object_ids: list[str], action: str
) -> dict[str, AuditLog]:
    """The newest audit row of ``action`` on each of ``object_ids``. The objects were
    read through the scope first; an action on them may name no merchant (the engine
    disabling an endpoint), so these rows are read unfiltered, on purpose."""
    if not object_ids:
        return {}
    q = Scope.everyone().where(
        select(AuditLog).where(
            AuditLog.object_type == object_type,
            AuditLog.object_id.in_(object_ids),
            AuditLog.action == action,
        ),
        AuditLog,
    )
    return {row.object_id: row for row in await s.scalars(q.order_by(AuditLog.id))}


async def newest_customers(s: AsyncSession, scope: Scope, limit: int) -> list[Customer]:
    """The newest ``limit`` customers in ``scope`` (the console's customer picker)."""
    return list(await s.scalars(customers(scope).order_by(Customer.id.desc()).limit(limit)))
