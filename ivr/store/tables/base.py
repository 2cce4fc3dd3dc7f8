"""The declarative base every table of the engine's database derives from.

The engine database never holds card numbers, expiry dates, birth dates, passwords or
DTMF digits: a card is a vault token plus BIN6 / last 4 / issuer / type, and a call's
step log records prompt ids and outcomes only (THREAT_MODEL.md).

Statuses are plain strings validated by the state machines of
:mod:`ivr.domain.states`; amounts are integers in KRW.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    MetaData,
    String,
)
from sqlalchemy.orm import DeclarativeBase

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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012
