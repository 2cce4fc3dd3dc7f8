"""Merchant scoping of reads, in one place.

Every table with a ``merchant_id`` column (and ``merchants`` itself) holds one merchant's
data. A :class:`Scope` is who a read is for: one merchant (an API key, a merchant's
console user) or every merchant (a console operator). Read models never write
``WHERE merchant_id = ...`` themselves: they pass their statement through
:meth:`Scope.where` (or fetch one row with :meth:`Scope.get`), which adds the filter for
each merchant-owned table named and marks the statement with the tables it scoped
(execution option :data:`MARK`). ``tests/console/test_merchant_scope.py`` watches every
SELECT the API and the console send while serving reads and fails on one that names a
merchant-owned table without that mark — a query that forgets its scope is caught.

Tables whose rows belong to a parent (attempts and refunds of a payment, steps of a
call, deliveries of an event) carry no ``merchant_id``: they are read by the id of a
parent that was read through the scope first. Jobs keep their merchant in their
payload (``payload["merchant_id"]``: the bulk jobs' rows): :func:`merchant_column` knows
that column too, so bulk reads go through the same scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.errors import NotFound
from ivr.store.tables import Job, Merchant

MARK = "merchant_scope"
"""Execution option: the names of the tables :meth:`Scope.where` scoped in a statement."""

M = TypeVar("M")
Q = TypeVar("Q", bound="Select[*tuple[Any, ...]]")


def merchant_column(model: Any) -> Any:
    """The column naming the merchant that owns ``model``'s rows."""
    if model is Merchant:
        return Merchant.id
    if model is Job:
        return Job.payload["merchant_id"].as_string()
    return model.merchant_id


@dataclass(frozen=True, slots=True)
class Scope:
    """The merchant a read is for; ``merchant_id=None``: every merchant (an operator)."""

    merchant_id: str | None

    @classmethod
    def of(cls, merchant_id: str) -> Scope:
        return cls(merchant_id)

    @classmethod
    def everyone(cls) -> Scope:
        return cls(None)

    def where(self, query: Q, *models: Any) -> Q:
        """``query`` limited to this scope's rows of each of ``models`` (a model is a
        mapped class with ``merchant_id``, or :class:`Merchant`)."""
        marked = set(query.get_execution_options().get(MARK, ()))
        for model in models:
            if self.merchant_id is not None:
                query = query.where(merchant_column(model) == self.merchant_id)
            marked.add(model.__tablename__)
        limited: Q = query.execution_options(**{MARK: frozenset(marked)})
        return limited

    def shared(self, query: Q, model: Any) -> Q:
        """``query`` limited to the rows of ``model`` this scope may see where a row
        without a merchant is everyone's (PG accounts: the operators' are offered to
        every merchant, a merchant's own to it alone)."""
        if self.merchant_id is not None:
            column = merchant_column(model)
            query = query.where(column.is_(None) | (column == self.merchant_id))
        return self._mark(query, model.__tablename__)

    def nest(self, outer: Q, *inner: Any) -> Q:
        """``outer`` carrying the marks of subqueries built through :meth:`where` (their
        filter is inside them: ``outer`` itself names their tables only through them)."""
        names: set[str] = set()
        for sub in inner:
            names |= set(sub.get_execution_options().get(MARK, ()))
        return self._mark(outer, *names)

    @staticmethod
    def _mark(query: Q, *names: str) -> Q:
        marked = set(query.get_execution_options().get(MARK, ())) | set(names)
        limited: Q = query.execution_options(**{MARK: frozenset(marked)})
        return limited

    def select(self, model: type[M], **equal: object) -> Select[M]:
        """The rows of ``model`` in this scope whose columns equal ``equal``'s values
        (a ``None`` value: any) — a list's filters."""
        column: Any = model
        q = self.where(select(model), model)
        for name, value in equal.items():
            if value is not None:
                q = q.where(getattr(column, name) == value)
        return q

    def owns(self, merchant_id: str | None) -> bool:
        """Whether a row of ``merchant_id`` is within this scope."""
        return self.merchant_id is None or merchant_id == self.merchant_id

    async def get(
        self, s: AsyncSession, model: type[M], object_id: str, *, lock: bool = False
    ) -> M | None:
        """The row of ``model`` with ``object_id`` if it exists within this scope;
        ``lock``: locked for the transaction (``FOR UPDATE``) and read afresh."""
        column: Any = model
        q = self.where(select(model).where(column.id == object_id), model)
        if lock:
            q = q.with_for_update().execution_options(populate_existing=True)
        found: M | None = await s.scalar(q)
        return found

    async def one(
        self, s: AsyncSession, model: type[M], object_id: str, what: str, *, lock: bool = False
    ) -> M:
        """:meth:`get`, or NotFound (``"<what> <id> not found"``) for a row that does not
        exist or is another merchant's — the two are told apart by nobody (never 403):
        the ownership check of every write path."""
        row = await self.get(s, model, object_id, lock=lock)
        if row is None:
            raise NotFound(f"{what} {object_id} not found")
        return row
