"""The declarative base every table of the engine's database derives from.

The engine database never holds card numbers, expiry dates, birth dates, passwords or
DTMF digits: a card is a vault token plus BIN6 / last 4 / issuer / type, and a call's
step log records prompt ids and outcomes only (THREAT_MODEL.md).

Statuses are plain strings validated by the state machines of
:mod:`ivr.domain.states`; amounts are integers in KRW.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    MetaData,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from ivr.store.types import UtcDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = String(40)
Status = String(24)

Key = Annotated[str, mapped_column(Id, primary_key=True)]
"""A row's own id (``cus_…``, ``pi_…``), its primary key: ``id: Mapped[Key]``."""
MerchantId = Annotated[str, mapped_column(ForeignKey("merchants.id"))]
"""The merchant a row belongs to (``mapped_column(index=True)`` adds its index)."""


class MerchantPaged:
    """A table of merchants' rows that a merchant lists page by page in id order
    (:mod:`ivr.web.pagination`): ``id`` and ``merchant_id`` are its first columns, and
    the index the pages walk is on (``merchant_id``, ``id``)."""

    id: Mapped[Key] = mapped_column(sort_order=-2)
    merchant_id: Mapped[MerchantId] = mapped_column(sort_order=-1)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Index]:
        table = cls.__tablename__  # type: ignore[attr-defined]
        return (Index(f"ix_{table}_merchant_id_id", "merchant_id", "id"),)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012
