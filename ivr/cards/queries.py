"""The cards read model: the cards the API and the console list, through a
:class:`~ivr.store.scope.Scope`."""

from __future__ import annotations

from sqlalchemy import Select, select

from ivr.store.scope import Scope
from ivr.store.tables import Card


def cards(
    scope: Scope, *, customer_id: str | None = None, status: str | None = None
) -> Select[Card]:
    """The cards in ``scope`` (to page), optionally of one customer or status."""
    q = scope.where(select(Card), Card)
    if customer_id is not None:
        q = q.where(Card.customer_id == customer_id)
    if status is not None:
        q = q.where(Card.status == status)
    return q
