"""At start-up an engine ends the calls its own dead process left open — and only those.

Several engines (each with its own Asterisk) may share one database (PostgreSQL,
scale-out). An engine judges a session dead when its channel is not up on *its*
Asterisk; the calls of the other engines are up on *theirs*, so by that test alone they
looked dead too, and a restart of one node ended every other node's calls in progress
and released their requests mid-call. Sessions now carry the serving engine's
``engine.node_id`` and each engine judges its own (and, by channel id, those written
before the column existed).

The Asterisk is a loopback fake of the three ARI resources the judgement reads
(``asterisk/info``, ``channels``, ``applications/{app}``) and the hang-up it sends.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from aiohttp import web
from sqlalchemy import insert, select

from ivr.domain.ids import new_id
from ivr.domain.states import CallRequestKind, CallRequestStatus
from ivr.engine import LOST, node_id
from ivr.errors import ConfigError
from ivr.settings import load_settings
from ivr.store.tables import CallSession
from ivr.telephony.ari import AriClient
from ivr.telephony.ari_app import AriApp
from ivr.telephony.fake import HangUp
from tests.flows.conftest import Stack

pytestmark = pytest.mark.anyio

APP = "arspay-test"


@dataclass
class FakeAsterisk:
    """What one Asterisk reports: its system name, live channels, channels in our app."""

    name: str = ""
    live: set[str] = field(default_factory=set)
    in_app: set[str] = field(default_factory=set)
    hung_up: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture
async def asterisk() -> AsyncIterator[FakeAsterisk]:
    fake = FakeAsterisk()

    async def info(_: web.Request) -> web.Response:
        return web.json_response({"config": {"name": fake.name}, "system": {"entity_id": "x"}})

    async def channels(_: web.Request) -> web.Response:
        return web.json_response([{"id": c} for c in sorted(fake.live)])

    async def application(_: web.Request) -> web.Response:
        return web.json_response({"name": APP, "channel_ids": sorted(fake.in_app)})

    async def hangup(request: web.Request) -> web.Response:
        fake.hung_up.append(request.match_info["id"])
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/ari/asterisk/info", info)
    app.router.add_get("/ari/channels", channels)
    app.router.add_get(f"/ari/applications/{APP}", application)
    app.router.add_delete("/ari/channels/{id}", hangup)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


async def _in_call(stack: Stack) -> str:
    req = await stack.request(CallRequestKind.registration)
    await stack.runtime.services.requests.transition(
        req.id, CallRequestStatus.in_call, actor="call"
    )
    return req.id


async def _open_session(
    stack: Stack, channel_id: str, node: str | None, request_id: str | None = None
) -> str:
    session_id = new_id("cses")
    async with stack.db.transaction() as s:
        await s.execute(
            insert(CallSession).values(
                id=session_id,
                call_request_id=request_id,
                channel_id=channel_id,
                did="05051110001",
                caller_id="01012345678",
                status="active",
                outcome=None,
                started_at=stack.clock.now() - timedelta(minutes=2),
                ended_at=None,
                node=node,
            )
        )
    return session_id


async def _outcomes(stack: Stack) -> dict[str, str | None]:
    async with stack.db.sessions() as s:
        rows = (await s.execute(select(CallSession.channel_id, CallSession.outcome))).all()
    return {channel: outcome for channel, outcome in rows}


async def test_a_restarting_engine_ends_its_own_dead_calls_and_no_other_engines(
    stack: Stack, asterisk: FakeAsterisk
) -> None:
    engine = stack.engine
    me = engine.node
    mine_dead = await _in_call(stack)
    theirs = await _in_call(stack)
    await _open_session(stack, "1765000000.7", me, mine_dead)  # ours; the channel is gone
    await _open_session(stack, "1765000000.8", "node-b", theirs)  # up on node b's Asterisk
    await _open_session(stack, "1765000000.9", me)  # ours, still in our Stasis app
    await _open_session(stack, "1765000000.10", me)  # ours, up but in the dialplan (AGI)
    await _open_session(stack, "1765000000.11", None)  # before migration 0005: plain id
    await _open_session(stack, "pbx-b-1765000000.12", None)  # before 0005: another system
    asterisk.live = {"1765000000.9", "1765000000.10"}
    asterisk.in_app = {"1765000000.9"}

    engine.ari_client = AriClient(asterisk.url, "arspay", "secret", APP)
    engine.ari_app = AriApp(engine.ari_client, engine.handle)  # this engine takes ARI calls
    async with engine.ari_client:
        ended = await engine.end_orphaned_calls(before=stack.clock.now())

    assert ended == 3
    assert asterisk.hung_up == ["1765000000.9"]
    assert await _outcomes(stack) == {
        "1765000000.7": LOST,
        "1765000000.8": None,  # node b's call in progress is not touched
        "1765000000.9": LOST,
        "1765000000.10": None,
        "1765000000.11": LOST,
        "pbx-b-1765000000.12": None,
    }
    requests = stack.runtime.services.requests
    assert (await requests.get(None, mine_dead)).status == CallRequestStatus.sms_sent.value
    assert (await requests.get(None, theirs)).status == CallRequestStatus.in_call.value


async def test_a_fastagi_only_engine_ends_every_call_its_dead_process_left(
    stack: Stack,
) -> None:
    """With ARI off (asterisk.ari_enabled = false) a call lives on its FastAGI
    connection to the process: every call of this node from before the start is dead.
    Other nodes' calls, and rows without a node (they cannot be judged without ARI),
    are left alone."""
    engine = stack.engine
    assert engine.ari_app is None
    mine = await _in_call(stack)
    theirs = await _in_call(stack)
    await _open_session(stack, "1765000000.21", engine.node, mine)
    await _open_session(stack, "1765000000.22", engine.node)
    await _open_session(stack, "1765000000.23", "node-b", theirs)
    await _open_session(stack, "1765000000.24", None)
    assert await engine.end_orphaned_calls(before=stack.clock.now()) == 2
    assert await _outcomes(stack) == {
        "1765000000.21": LOST, "1765000000.22": LOST,
        "1765000000.23": None, "1765000000.24": None,
    }  # fmt: skip
    requests = stack.runtime.services.requests
    assert (await requests.get(None, mine)).status == CallRequestStatus.sms_sent.value
    assert (await requests.get(None, theirs)).status == CallRequestStatus.in_call.value


async def test_sessions_carry_the_engine_node(stack: Stack) -> None:
    await stack.request(CallRequestKind.registration)
    await stack.call([HangUp()])
    async with stack.db.sessions() as s:
        [row] = list(await s.scalars(select(CallSession)))
    assert row.node == stack.engine.node == socket.gethostname()[:64]


def test_node_id_setting() -> None:
    base = {"ARSPAY_CONFIG": "/nonexistent.toml"}
    settings = load_settings(env=base | {"ARSPAY_ENGINE_NODE_ID": "pbx-2.seoul"})
    assert node_id(settings.engine.node_id) == "pbx-2.seoul"
    assert node_id(load_settings(env=base).engine.node_id) == socket.gethostname()[:64]
    for bad in ("two words", "x" * 65, "node/1"):
        with pytest.raises(ConfigError, match="node_id"):
            load_settings(env=base | {"ARSPAY_ENGINE_NODE_ID": bad})
