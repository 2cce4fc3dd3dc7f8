"""FastAGI server against a scripted Asterisk peer on a loopback socket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ivr.telephony import agi
from ivr.telephony.agi import AgiCall, AgiServer
from ivr.telephony.call import Call, CollectSpec
from ivr.telephony.errors import CallHungUp

pytestmark = pytest.mark.anyio

SECRET = "Ys1-dEpl0yment_secret-of-43-characters-xxxxx"


def agi_env(arg: str | None = SECRET) -> str:
    """What Asterisk sends for ``AGI(agi://127.0.0.1:4573/arspay,<arg>)`` (res_agi.c
    launch_netscript + setup_env): the URL in agi_request, the part after the slash in
    agi_network_script, the arguments as agi_arg_N."""
    args = "" if arg is None else f"agi_arg_1: {arg}\n"
    return (
        "agi_network: yes\nagi_network_script: arspay\n"
        "agi_request: agi://127.0.0.1:4573/arspay\n"
        "agi_channel: PJSIP/sipp-00000001\nagi_uniqueid: 1700000000.7\n"
        "agi_callerid: 01012345678\nagi_extension: 05051234567\nagi_context: arspay-agi\n"
        f"{args}\n"
    )


ENV = agi_env()


async def fake_asterisk(port: int, answer: Callable[[str], list[str]], env: str = ENV) -> list[str]:
    """Connect like Asterisk, answer each command with ``answer(cmd)``; return commands."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(env.encode())
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
    server = AgiServer(handler, port=0, secret=SECRET)  # type: ignore[arg-type]
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


# ------------------------------------------------------------------ the deployment secret


@pytest.mark.parametrize(
    "presented",
    [
        None,  # AGI(agi://127.0.0.1:4573/arspay): no argument at all
        "",  # an empty argument
        "wrong-secret-of-the-same-length-as-the-real-one",
        SECRET[:-1],  # all but the last character
        SECRET + "x",  # the secret and more
        SECRET.upper(),
    ],
)
async def test_a_connection_without_the_secret_runs_no_flow_and_plays_nothing(
    presented: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    async def handler(call: Call) -> None:
        calls.append(call.call_id)
        await call.play(["arspay/reg.greeting"])

    server = await serve(handler)
    try:
        seen = await asyncio.wait_for(
            fake_asterisk(server.port, lambda c: ["200 result=0"], agi_env(presented)), 5
        )
        assert server.refused == 1
        # the server keeps serving: the real secret still gets its call
        await asyncio.wait_for(fake_asterisk(server.port, lambda c: ["200 result=0"]), 5)
    finally:
        await server.stop()
    assert seen == []  # closed before any command: no ANSWER, no STREAM FILE, no HANGUP
    assert calls == ["1700000000.7"]  # only the authentic connection reached the flow
    assert server.refused == 1
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1
    assert refusals[0].levelname == "WARNING"
    assert "PJSIP/sipp-00000001" in refusals[0].getMessage()  # which call, for the operator
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET not in logged
    if presented:
        assert presented not in logged  # not even the wrong guess


async def test_the_right_secret_reaches_the_flow_without_the_secret_in_its_env(
    caplog: pytest.LogCaptureFixture,
) -> None:
    envs: list[dict[str, str]] = []

    async def handler(call: Call) -> None:
        assert isinstance(call, AgiCall)
        envs.append(dict(call.env))
        await call.answer()

    server = await serve(handler)
    try:
        seen = await asyncio.wait_for(fake_asterisk(server.port, lambda c: ["200 result=0"]), 5)
    finally:
        await server.stop()
    assert seen == ["ANSWER", "HANGUP"]
    assert server.refused == 0
    [env] = envs
    assert env["agi_extension"] == "05051234567"
    assert "agi_arg_1" not in env
    assert SECRET not in repr(env)
    assert SECRET not in caplog.text


async def test_the_secret_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = agi.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(agi.hmac, "compare_digest", spy)

    async def handler(call: Call) -> None:
        await call.answer()

    server = await serve(handler)
    try:
        await asyncio.wait_for(fake_asterisk(server.port, lambda c: ["200 result=0"]), 5)
        await asyncio.wait_for(
            fake_asterisk(server.port, lambda c: ["200 result=0"], agi_env("guess")), 5
        )
    finally:
        await server.stop()
    assert compared == [(SECRET.encode(), SECRET.encode()), (b"guess", SECRET.encode())]
    assert server.refused == 1


def test_a_server_without_a_secret_cannot_be_built() -> None:
    async def handler(call: Call) -> None:
        pass

    with pytest.raises(ValueError, match="secret"):
        AgiServer(handler, port=0, secret="")
