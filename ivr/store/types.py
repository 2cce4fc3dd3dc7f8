"""Column types that behave the same on SQLite and PostgreSQL: defined in the vault
(:mod:`vault.columns`, which imports nothing from the engine), shared by both databases."""

from vault.columns import BigIntPK as BigIntPK
from vault.columns import UtcDateTime as UtcDateTime
