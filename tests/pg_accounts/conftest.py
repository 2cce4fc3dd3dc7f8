"""The in-process engine stack of the flow tests (``stack``), for the failover tests."""

from tests.flows.conftest import stack  # noqa: F401 (a fixture, found by pytest here)
