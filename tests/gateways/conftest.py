"""Fixtures: the sandbox PG in-process on loopback and a PortOne connector pointed at it.
Everything goes over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr.gateways.portone import PortOneGateway
from tests.gateways.support import Sandbox, connector, running_sandbox


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path / "ledger.db") as sbx:
        yield sbx


@pytest.fixture
async def pg(sandbox: Sandbox) -> AsyncIterator[PortOneGateway]:
    async with connector(sandbox.url) as gateway:
        yield gateway
