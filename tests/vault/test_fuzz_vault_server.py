"""Fuzz: the vault socket protocol (``vault.protocol``), server side.

* Server side: a byte stream (a StreamReader fed with ``feed_data``/``feed_eof``) read
  with ``read_frame`` and checked with ``parse_request`` as ``VaultServer`` does, and
  ``VaultServer._serve_connection`` itself on a stub vault — arbitrary bytes, truncated
  frames, oversize and zero length prefixes, corrupted bodies, wrongly typed arguments.
  Every frame ends in a message or a ``vault.errors`` error, in the order an independent
  model of the framing predicts; a stream cut mid-frame ends in
  ``asyncio.IncompleteReadError`` (both callers treat it as the peer going away) and
  only then; the server answers every complete frame and never with ``internal-error``.

The client side and round trips: ``test_fuzz_vault_client.py``.
"""

from __future__ import annotations

import asyncio
import json
import struct
from datetime import datetime
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from tests.vault.fuzz_support import (
    BIG,
    FUZZ,
    METADATA,
    NOW,
    FrameWriter,
    bad_requests,
    body_of,
    check_request,
    framing,
    max_frame,
    read_all,
    reader_of,
    streams,
)
from vault.access import Peer, PeerPolicy
from vault.card import CardData
from vault.errors import (
    BY_ID,
    FrameTooLarge,
    InvalidRequest,
)
from vault.forwarding import BillingKeyResult, ChargeResult, Order
from vault.models import (
    AuditEntry,
    BirthCheck,
    CardMetadata,
    KekInfo,
    TokenRef,
    VaultStatus,
)
from vault.server import VaultServer

# ------------------------------------------------------------------ server side


@FUZZ
@given(data=streams() | st.binary(max_size=64), max_bytes=max_frame)
@example(data=b"\x00\x00", max_bytes=64)  # a cut header
@example(data=b"\x00\x00\x00\x10{}", max_bytes=64)  # a cut body
@example(data=struct.pack(">I", 10_000) + b"[" * 10_000, max_bytes=65_536)  # deep nesting
@example(data=b"\x00\x00\x00\x03\xff\xfe\xfd", max_bytes=64)  # not UTF-8
def test_any_stream_reads_as_the_framing_model_says(data: bytes, max_bytes: int) -> None:
    seen = asyncio.run(read_all(data, max_bytes))
    expected = framing(data, max_bytes)
    assert len(seen) == len(expected), (seen, expected)
    for got, want in zip(seen, expected, strict=True):
        if want == "empty":
            assert got == "malformed"
        elif isinstance(want, tuple):
            if got != "malformed":
                assert isinstance(got, dict)
                assert got == json.loads(want[1])
                check_request(got)
        else:
            assert got == want


@FUZZ
@given(message=bad_requests())
@example(message={"op": "audit", "args": {"token": None, "limit": True}})
@example(message={"op": "tokenize", "args": {"merchant_id": "m", "who": "w", "card": []}})
def test_badly_formed_requests_end_in_invalid_request(message: Any) -> None:
    frame = struct.pack(">I", len(body_of(message))) + body_of(message)
    seen = asyncio.run(read_all(frame, BIG))
    assert seen[-1] == "end"
    if seen[0] != "malformed":
        check_request(seen[0])


class _StubVault:
    """Answers every operation without checks: what the fuzz reaches is the protocol."""

    async def tokenize(self, *a: Any, **kw: Any) -> CardMetadata:
        assert isinstance(kw["card"], CardData)
        return METADATA

    async def metadata(self, *a: Any, **kw: Any) -> CardMetadata:
        return METADATA

    async def issue_billing_key(self, *a: Any, **kw: Any) -> BillingKeyResult:
        return BillingKeyResult(ok=True, customer_uid="cus_1")

    async def keyed_charge(self, *a: Any, **kw: Any) -> ChargeResult:
        assert isinstance(kw["order"], Order)
        return ChargeResult(status="succeeded", order_id="o_1", amount=1000)

    async def verify_birth(self, *a: Any, **kw: Any) -> BirthCheck:
        assert isinstance(kw["birth"], str)
        return BirthCheck(matched=False)

    async def delete(self, *a: Any, **kw: Any) -> None:
        return None

    async def audit(self, *a: Any, **kw: Any) -> list[AuditEntry]:
        return [AuditEntry(1, NOW, "who", "in-process", "tokenize", "why", None, None)]

    async def tokens(self, *a: Any, **kw: Any) -> list[TokenRef]:
        assert isinstance(kw["created_before"], datetime)
        return [TokenRef("tok_1", "m_1", NOW)]

    async def status(self) -> VaultStatus:
        return VaultStatus("file", "kek_1", (KekInfo("kek_1", "current", 1, NOW, None),), 1)


FUZZ_PEER = Peer(pid=4242, uid=4242, gid=4242)


class _FuzzServer(VaultServer):
    """The real server; its peer (a stub socket has none) holds both roles, so what the
    fuzz reaches is the protocol, not the access check."""

    def _peer(self, writer: Any) -> Peer:
        return FUZZ_PEER


async def _serve(data: bytes, max_bytes: int) -> bytes:
    both = frozenset({FUZZ_PEER.uid})
    server = _FuzzServer(
        _StubVault(),  # type: ignore[arg-type]
        Path("/nonexistent/vault.sock"),
        max_frame_bytes=max_bytes,
        policy=PeerPolicy(engine_uids=both, admin_uids=both),
    )
    writer = FrameWriter()
    await server._serve_connection(reader_of(data), writer)  # type: ignore[arg-type]
    assert writer.closed
    return bytes(writer.data)


@FUZZ
@given(data=streams(), max_bytes=st.sampled_from([65_536, 65_536, 4096, 64]))
def test_the_server_answers_every_complete_frame(data: bytes, max_bytes: int) -> None:
    replies = asyncio.run(read_all(asyncio.run(_serve(data, max_bytes)), BIG))
    assert replies[-1] == "end"
    greeting, replies = replies[0], replies[1:-1]  # the server speaks first
    assert isinstance(greeting, dict)
    assert greeting["ok"] is True
    assert greeting["result"]["roles"] == ["engine", "admin"]
    expected = [e for e in framing(data, max_bytes) if e not in ("end", "truncated")]
    assert len(replies) == len(expected)
    for reply, event in zip(replies, expected, strict=True):
        assert isinstance(reply, dict)
        if reply["ok"] is True:
            assert isinstance(event, tuple)
            continue
        error = reply["error"]
        assert error["id"] in BY_ID, error  # never "internal-error"
        assert issubclass(BY_ID[error["id"]], InvalidRequest)
        if event == "too_large":
            assert error["id"] == FrameTooLarge.error_id
