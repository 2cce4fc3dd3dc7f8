"""Core (not ORM) access to mapped tables, for the hot batch paths.

Building ORM objects and flushing them through the unit of work costs tens of
microseconds per row; a bulk job writes several rows per charge, so the batch writers
(:mod:`ivr.payments.batch`, the job queue's ``*_many_in``) send plain value lists as
one ``executemany`` per statement instead.
"""

from __future__ import annotations

from sqlalchemy import Table

from ivr.store.tables import Base


def table(model: type[Base]) -> Table:
    """The Core :class:`Table` of a mapped class (``Model.__table__`` is typed as a
    mere ``FromClause``)."""
    t = model.__table__
    assert isinstance(t, Table)
    return t
