"""The vault service on its Unix socket: private socket file, and a server that answers
malformed, oversize, unknown and badly typed requests with an error — and keeps serving."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import stat
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.vault.vault_helpers import CANARY
from vault.errors import FrameTooLarge, InvalidRequest, VaultConfigError, VaultUnavailable
from vault.forwarding import Order
from vault.protocol import OPERATIONS, TextMap, call_args, wire_args
from vault.remote import RemoteVault
from vault.server import VaultServer
from vault.service import LocalVault

pytestmark = pytest.mark.anyio

STATUS = json.dumps({"op": "status", "args": {}}).encode()


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


class RawConn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.greeting: dict[str, Any] = {}

    @classmethod
    async def open(cls, path: Path) -> RawConn:
        """Connect and read the server's greeting (it speaks first)."""
        conn = cls(*await asyncio.open_unix_connection(path))
        conn.greeting = await conn.reply()
        assert conn.greeting["ok"] is True, conn.greeting
        return conn

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self) -> dict[str, Any]:
        async with asyncio.timeout(5):
            (n,) = struct.unpack(">I", await self.reader.readexactly(4))
            body = await self.reader.readexactly(n)
        out = json.loads(body)
        assert isinstance(out, dict)
        return out

    async def ask(self, body: bytes) -> dict[str, Any]:
        await self.send(frame(body))
        return await self.reply()

    async def closed_by_peer(self) -> bool:
        async with asyncio.timeout(5):
            return await self.reader.read(1) == b""

    def close(self) -> None:
        self.writer.close()


def _modes(path: Path) -> tuple[int, int]:
    return stat.S_IMODE(os.lstat(path).st_mode), stat.S_IMODE(os.stat(path.parent).st_mode)


async def test_socket_is_private(server: VaultServer) -> None:
    sock_mode, dir_mode = _modes(server.path)
    assert stat.S_ISSOCK(os.lstat(server.path).st_mode)
    assert sock_mode == 0o600
    assert dir_mode == 0o700


@pytest.mark.parametrize(
    ("body", "error_id"),
    [
        (b"not json", "vault-malformed-frame"),
        (b"\xff\xfe\x00garbage", "vault-malformed-frame"),  # not UTF-8
        (b"[1, 2, 3]", "vault-malformed-frame"),  # not an object
        (b'"status"', "vault-malformed-frame"),
        (b'{"op": "status", "args": {}', "vault-malformed-frame"),  # truncated JSON
        (b'{"op": "status", "args": {"x": NaN}}', "vault-malformed-frame"),
        (b"[" * 2000 + b"]" * 2000, "vault-malformed-frame"),  # deep nesting
        (b'{"op": "launch_missiles", "args": {}}', "vault-unknown-operation"),
        (b'{"op": 42, "args": {}}', "vault-invalid-request"),
        (b'{"args": {}}', "vault-invalid-request"),
        (b'{"op": "status", "args": [], "extra": 1}', "vault-invalid-request"),
        (b'{"op": "status", "args": []}', "vault-invalid-request"),
        (b'{"op": "metadata", "args": {"token": 1, "merchant_id": "m"}}',
         "vault-invalid-request"),
        (b'{"op": "metadata", "args": {"token": "tok_a"}}', "vault-invalid-request"),
        (b'{"op": "audit", "args": {"token": null, "limit": true}}', "vault-invalid-request"),
        (b'{"op": "audit", "args": {"token": null, "limit": "5"}}', "vault-invalid-request"),
        (b'{"op": "tokenize", "args": {"merchant_id": "m", "who": "w", '
         b'"card": {"pan": 4012888888881881, "expiry": "1230", "birth": "900101"}}}',
         "vault-invalid-request"),
        (b'{"op": "tokenize", "args": {"merchant_id": "m", "who": "w", '
         b'"card": {"pan": "4012888888881881", "expiry": "1230", "birth": "900101", '
         b'"password": "12"}}}', "vault-invalid-request"),
        (b'{"op": "keyed_charge", "args": {"token": "tok_aaaaaaaaaaaaaaaaaaaaaaaa", '
         b'"merchant_id": "m", "who": "w", "why": "y", "password2": "12", "order_id": "o", '
         b'"amount": 1000.5, "order_name": "n", "installment_months": 0}}',
         "vault-invalid-request"),
    ],
)  # fmt: skip
async def test_bad_requests_get_an_error_and_the_connection_keeps_working(
    server: VaultServer, body: bytes, error_id: str
) -> None:
    conn = await RawConn.open(server.path)
    try:
        reply = await conn.ask(body)
        assert reply["ok"] is False
        assert reply["error"]["id"] == error_id
        assert "4012888888881881" not in json.dumps(reply)
        good = await conn.ask(STATUS)  # same connection, next request
        assert good["ok"] is True
    finally:
        conn.close()


async def test_empty_frame_is_malformed(server: VaultServer) -> None:
    conn = await RawConn.open(server.path)
    await conn.send(struct.pack(">I", 0))
    assert (await conn.reply())["error"]["id"] == "vault-malformed-frame"
    assert (await conn.ask(STATUS))["ok"] is True
    conn.close()


async def test_oversize_frame_is_refused_and_the_connection_closed(server: VaultServer) -> None:
    conn = await RawConn.open(server.path)
    await conn.send(struct.pack(">I", 1 << 30) + b"x" * 100)  # claims 1 GiB
    reply = await conn.reply()
    assert reply["error"]["id"] == FrameTooLarge.error_id
    assert await conn.closed_by_peer()
    conn.close()
    # just above the limit
    conn = await RawConn.open(server.path)
    body = json.dumps({"op": "status", "args": {}, "pad": "x" * server.max_frame_bytes})
    reply = await conn.ask(body.encode())
    assert reply["error"]["id"] == FrameTooLarge.error_id
    conn.close()
    # the server is still serving
    conn = await RawConn.open(server.path)
    assert (await conn.ask(STATUS))["ok"] is True
    conn.close()


async def test_half_frames_and_stalls_do_not_hurt_the_server(server: VaultServer) -> None:
    # a peer that sends half a header and leaves
    conn = await RawConn.open(server.path)
    await conn.send(b"\x00\x00")
    conn.close()
    # a peer that announces a body and never sends it: dropped after body_timeout_s
    conn = await RawConn.open(server.path)
    await conn.send(struct.pack(">I", 100) + b"{")
    assert await conn.closed_by_peer()
    conn.close()
    # many connections at once, some rude, some not
    rude = [await RawConn.open(server.path) for _ in range(10)]
    for r in rude:
        await r.send(b"\xff\xff\xff\xff")
    polite = [await RawConn.open(server.path) for _ in range(10)]
    replies = await asyncio.gather(*(p.ask(STATUS) for p in polite))
    assert all(r["ok"] for r in replies)
    for c in rude + polite:
        c.close()


async def test_a_valid_tokenize_after_abuse(server: VaultServer) -> None:
    conn = await RawConn.open(server.path)
    for junk in (b"{", b"[]", b'{"op": "nope"}'):
        assert (await conn.ask(junk))["ok"] is False
    conn.close()
    remote = RemoteVault(server.path, max_frame_bytes=server.max_frame_bytes)
    try:
        meta = await remote.tokenize("mer_1", CANARY, who="after-abuse")
        assert meta.last4 == "1881"
        assert (await remote.audit(token=meta.token))[0].peer.startswith("uid=")
    finally:
        await remote.close()


async def test_large_reply_becomes_an_error_not_a_broken_stream(
    server: VaultServer, vault: LocalVault
) -> None:
    for i in range(30):
        await vault.tokenize("mer_1", CANARY, who=f"writer-{i}")
    remote = RemoteVault(server.path, max_frame_bytes=server.max_frame_bytes)
    try:
        with pytest.raises(FrameTooLarge, match="ask for less"):
            await remote.audit(limit=1000)
        assert len(await remote.audit(limit=3)) == 3  # and the client still works
    finally:
        await remote.close()


async def test_second_server_on_the_same_socket_is_refused(
    server: VaultServer, vault: LocalVault
) -> None:
    with pytest.raises(VaultConfigError, match="already serving"):
        await VaultServer(vault, server.path).start()


async def test_stale_socket_file_is_replaced(vault: LocalVault, socket_dir: Path) -> None:
    first = VaultServer(vault, socket_dir / "vault.sock")
    await first.start()
    assert first._server is not None
    first._server.close()  # simulate a crash: the socket file stays behind
    await first._server.wait_closed()
    assert (socket_dir / "vault.sock").exists()
    second = VaultServer(vault, socket_dir / "vault.sock")
    await second.start()
    remote = RemoteVault(second.path)
    assert (await remote.status()).records == 0
    await remote.close()
    await second.close()


async def test_client_without_a_server(socket_dir: Path) -> None:
    remote = RemoteVault(socket_dir / "nothing.sock")
    with pytest.raises(VaultUnavailable):
        await remote.status()


async def test_a_regular_file_at_the_socket_path_is_refused(
    vault: LocalVault, socket_dir: Path
) -> None:
    path = socket_dir / "vault.sock"
    path.write_text("not a socket")
    with pytest.raises(VaultConfigError, match="not a socket"):
        await VaultServer(vault, path).start()


# ------------------------------------------------------------------ the operation table


NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
SAMPLES: dict[Any, Any] = {str: NOW.isoformat(), int: 7, type(None): None}  # str: also a time


def _sample(spec: dict[str, Any]) -> dict[str, Any]:
    """Arguments that fit ``spec``."""
    out: dict[str, Any] = {}
    for name, want in spec.items():
        want = want[0] if isinstance(want, tuple) else want
        if isinstance(want, TextMap):
            out[name] = {"api_key": "k"}
        else:
            out[name] = _sample(want) if isinstance(want, dict) else SAMPLES[want]
    return out


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_each_operation_calls_the_local_vault_method_of_its_name(op: str) -> None:
    """The server calls ``LocalVault.<op>(**call_args(args))``, adding ``peer`` (the
    kernel's word) to the audited operations: the arguments a request may carry are
    exactly that method's parameters but ``peer``, which no request can set."""
    params = set(inspect.signature(getattr(LocalVault, op)).parameters) - {"self"}
    kwargs = call_args(_sample(OPERATIONS[op]))
    assert set(kwargs) == params - {"peer"}
    assert ("peer" in params) == ("who" in kwargs)
    assert "peer" not in OPERATIONS[op]


def test_wire_args_and_call_args_are_inverses() -> None:
    kwargs: dict[str, Any] = {"token": "tok_1", "card": CANARY, "created_before": NOW,
                              "order": Order("o_1", 1_000, "n", 3), "limit": 5}  # fmt: skip
    args = wire_args(kwargs)
    assert args == json.loads(json.dumps(args))  # plain JSON values
    assert args["card"] == {"pan": CANARY.pan, "expiry": CANARY.expiry, "birth": CANARY.birth}
    assert args["order_id"] == "o_1"  # an order's fields stand flat
    assert "order" not in args
    assert call_args(args) == kwargs


def test_a_bad_created_before_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="created_before"):
        call_args({"created_before": "yesterday", "after": "", "limit": 1})
