"""Persistence: SQLAlchemy 2 tables (``tables``), the async database handle (``db``)
and one Alembic migration chain for SQLite and PostgreSQL (``migrate``)."""
