"""FastAGI server against a scripted Asterisk peer on a loopback socket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ivr.telephony.agi import AgiServer
from ivr.telephony.call import Call, CollectSpec
from ivr.telephony.errors import CallHungUp

pytestmark = pytest.mark.anyio

ENV = (
    "agi_network: yes\nagi_network_script: arspay\nagi_request: agi://127.0.0.1/arspay\n"
    "agi_channel: PJSIP/sipp-00000001\nagi_uniqueid: 1700000000.7\n"
    "agi_callerid: 01012345678\nagi_extension: 05051234567\nagi_context: arspay-agi\n\n"
)


async def fake_asterisk(port: int, answer: Callable[[str], list[str]]) -> list[str]:
    """Connect like Asterisk, answer each command with ``answer(cmd)``; return commands."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(ENV.encode())
    await writer.drain()
    seen: list[str] = []
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = line.decode().strip()
        seen.append(cmd)
        for reply in answer(cmd):
            writer.write(reply.encode() + b"\n")
        await writer.drain()
    writer.close()
    return seen


async def serve(handler: Callable[[Call], object]) -> AgiServer:
    server = AgiServer(handler, port=0)  # type: ignore[arg-type]
    await server.start()
    assert server._server is not None
    server.port = server._server.sockets[0].getsockname()[1]
    return server


async def test_env_play_barge_in_and_collect() -> None:
    results: list[object] = []

    async def handler(call: Call) -> None:
        await call.answer()
        results.append((call.call_id, call.did, call.caller_id))
        results.append(await call.play(["arspay/reg.consent", "arspay/more"]))
        r = await call.collect(CollectSpec(max_digits=4, first_timeout_s=1, inter_timeout_s=1))
        results.append((r.digits, r.end.value))

    keys = iter([ord("1"), ord("2"), ord("3"), 0])

    def answer(cmd: str) -> list[str]:
        if cmd.startswith("STREAM FILE"):
            return [f"200 result={ord('9')} endpos=100"]  # 9 pressed during the first prompt
        if cmd.startswith("WAIT FOR DIGIT"):
            return [f"200 result={next(keys)}"]
        return ["200 result=0"]

    server = await serve(handler)
    try:
        seen = await asyncio.wait_for(fake_asterisk(server.port, answer), 5)
    finally:
        await server.stop()
    assert results == [
        ("1700000000.7", "05051234567", "01012345678"),
        True,
        ("9123", "max_digits"),
    ]
    assert seen[0] == "ANSWER"
    assert seen[1] == 'STREAM FILE arspay/reg.consent "0123456789*#"'
    assert len([c for c in seen if c.startswith("STREAM FILE")]) == 1  # barge-in cut it
    assert seen[-1] == "HANGUP"


async def test_hangup_line_mid_command_raises_call_hung_up() -> None:
    outcome: list[str] = []

    async def handler(call: Call) -> None:
        try:
            await call.collect(CollectSpec(max_digits=4))
        except CallHungUp:
            outcome.append("hung up")
            raise

    def answer(cmd: str) -> list[str]:
        if cmd.startswith("WAIT FOR DIGIT"):
            return ["HANGUP", "200 result=-1"]
        return ["511 result=-1 Command Not Permitted on a dead channel"]

    server = await serve(handler)
    try:
        seen = await asyncio.wait_for(fake_asterisk(server.port, answer), 5)
    finally:
        await server.stop()
    assert outcome == ["hung up"]
    assert "HANGUP" not in seen  # nothing is sent to a dead channel


async def test_transfer_sets_the_dialplan_location() -> None:
    async def handler(call: Call) -> None:
        await call.transfer("agents,100")

    server = await serve(handler)
    try:
        seen = await asyncio.wait_for(fake_asterisk(server.port, lambda c: ["200 result=0"]), 5)
    finally:
        await server.stop()
    assert seen == ["SET CONTEXT agents", "SET EXTENSION 100", "SET PRIORITY 1"]


async def test_garbage_peer_does_not_crash_the_server() -> None:
    calls: list[str] = []

    async def handler(call: Call) -> None:
        calls.append(call.call_id)

    server = await serve(handler)
    try:
        r, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(b"x" * 10000 + b"\n")
        await w.drain()
        assert await asyncio.wait_for(r.read(), 5) == b""  # closed on us
        w.close()
        seen = await asyncio.wait_for(fake_asterisk(server.port, lambda c: ["200 result=1"]), 5)
    finally:
        await server.stop()
    assert calls == ["1700000000.7"]
    assert seen == ["HANGUP"]
