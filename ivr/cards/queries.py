"""The cards read model: the cards the API and the console list, through a
:class:`~ivr.store.scope.Scope`."""

from __future__ import annotations

from sqlalchemy import Select

from ivr.store.scope import Scope
from ivr.store.tables import Card


def cards(
    scope: Scope, *, customer_id: str | None = None, status: str | None = None
) -> Select[Card]:
    """The cards in ``scope`` (to page), optionally of one customer or status."""
    return scope.select(Card, customer_id=customer_id, status=status)
