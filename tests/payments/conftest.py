"""Payments tests charge through the sandbox PG in-process: the ``sandbox`` fixture is
the gateways tests' one, shared rather than copied. Each module keeps its own ``pg``
connector, because its timeouts are part of what that module tests."""

from tests.gateways.conftest import sandbox

__all__ = ["sandbox"]
