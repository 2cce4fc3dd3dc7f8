"""``/ready`` over HTTP with each dependency down in turn: the database (a URL nothing
listens on), the vault (a real vault server on its socket, then closed), ARI (the real
ARI app on a scripted ARI connection that drops), the engine still starting; and a PG
account's breaker open, which only degrades."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr.gateways.errors import GatewayUnavailable
from ivr.store.db import Database
from ivr.telephony.ari import CONNECTED, DISCONNECTED
from ivr.telephony.ari_app import AriApp
from tests.telephony.test_ari_app import ScriptedAri
from vault.remote import RemoteVault
from vault.server import VaultServer
from vault.service import LocalVault

from .conftest import Ops

pytestmark = pytest.mark.anyio


@pytest.fixture
def socket_dir() -> AsyncIterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rdy", dir="/tmp"))  # socket paths are short
    yield path  # type: ignore[misc]
    shutil.rmtree(path, ignore_errors=True)


async def test_ready_once_the_engine_started_and_503_while_it_starts(ops: Ops) -> None:
    status, body = await ops.ready()
    assert status == 503
    assert body["code"] == "not-ready"
    assert body["down"] == ["engine"]
    assert body["checks"]["engine"] == {"ok": False, "required": True, "detail": "starting"}  # type: ignore[index]
    ops.stack.engine.ready.set()
    status, body = await ops.ready()
    assert (status, body["state"], body["down"]) == (200, "ready", [])
    assert {"database", "vault", "engine"} <= set(body["checks"])  # type: ignore[arg-type]
    samples = await ops.metrics()
    assert samples.value("arspay_ready") == 1
    assert samples.value("arspay_dependency_up", dependency="vault") == 1


async def test_a_database_nobody_answers_is_not_ready(ops: Ops) -> None:
    ops.stack.engine.ready.set()
    readiness = ops.stack.runtime.telemetry.readiness
    good = readiness.db
    readiness.db = Database("postgresql+asyncpg://arspay@127.0.0.1:9/nothing")
    try:
        status, body = await ops.ready()
        assert status == 503
        assert body["down"] == ["database"]
        assert "127.0.0.1" not in str(body)  # names the check, never the URL
        assert (await ops.metrics()).value("arspay_dependency_up", dependency="database") == 0
    finally:
        await readiness.db.close()
        readiness.db = good
    assert (await ops.ready())[0] == 200


async def test_a_vault_whose_socket_is_gone_is_not_ready(ops: Ops, socket_dir: Path) -> None:
    ops.stack.engine.ready.set()
    local = ops.stack.runtime.vault
    assert isinstance(local, LocalVault)
    server = VaultServer(local, socket_dir / "vault.sock")
    await server.start()
    remote = RemoteVault(server.path)
    readiness = ops.stack.runtime.telemetry.readiness
    readiness.vault = remote
    try:
        assert (await ops.ready())[0] == 200  # the vault process greets us
        await server.close()  # the vault process stopped: its socket is gone
        status, body = await ops.ready()
        assert status == 503
        assert body["down"] == ["vault"]
        assert body["checks"]["vault"]["detail"] == "down"  # type: ignore[index]
    finally:
        await remote.close()
        readiness.vault = local


async def test_an_in_process_vault_whose_database_is_closed_is_not_ready(ops: Ops) -> None:
    ops.stack.engine.ready.set()
    local = ops.stack.runtime.vault
    assert isinstance(local, LocalVault)
    await local.store.close()  # the runtime's close() closes it again (idempotent)
    status, body = await ops.ready()
    assert status == 503
    assert body["down"] == ["vault"]


async def test_ari_disconnected_is_not_ready(ops: Ops) -> None:
    rt = ops.stack.runtime
    engine = rt.engine(ari=True, agi=False, scheduler=False)
    assert "ari" in rt.telemetry.readiness.links
    ari = ScriptedAri()  # the ARI connection, scripted; the engine's own ARI app on it
    engine.ari_app = AriApp(ari, engine._handle_ari, on_link=engine._ari_link)  # type: ignore[arg-type]
    engine.ready.set()
    task = asyncio.create_task(engine.ari_app.run())
    try:
        status, body = await ops.ready()
        assert (status, body["down"]) == (503, ["ari"])
        ari.queue.put_nowait(CONNECTED)
        await asyncio.wait_for(engine.ari_app.connected.wait(), 2)
        assert (await ops.ready())[0] == 200
        assert (await ops.metrics()).value("arspay_ari_connected") == 1
        ari.queue.put_nowait(DISCONNECTED)  # Asterisk went away
        for _ in range(50):
            if not engine.ari_app.connected.is_set():
                break
            await asyncio.sleep(0.01)
        status, body = await ops.ready()
        assert status == 503
        assert body["down"] == ["ari"]
        assert body["checks"]["ari"]["detail"] == "disconnected"  # type: ignore[index]
        samples = await ops.metrics()
        assert samples.value("arspay_ari_connected") == 0
        assert samples.value("arspay_ari_connects_total") == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_open_pg_breaker_only_degrades(ops: Ops) -> None:
    ops.stack.engine.ready.set()
    breaker = ops.stack.runtime.gateways.breaker(None)
    for _ in range(breaker.policy.failures):
        with pytest.raises(GatewayUnavailable), breaker.guard():
            raise GatewayUnavailable("refused", retry_safe=True)
    status, body = await ops.ready()
    assert (status, body["state"], body["degraded"]) == (200, "degraded", ["pg:default"])
    samples = await ops.metrics()
    assert samples.value("arspay_ready") == 0.5
    assert samples.value("arspay_pg_breaker_state", account="default", state="open") == 1
