"""Fuzz: the vault socket protocol (``vault.protocol``) on both ends of the socket.

* Server side: a byte stream (a StreamReader fed with ``feed_data``/``feed_eof``) read
  with ``read_frame`` and checked with ``parse_request`` as ``VaultServer`` does, and
  ``VaultServer._serve_connection`` itself on a stub vault — arbitrary bytes, truncated
  frames, oversize and zero length prefixes, corrupted bodies, wrongly typed arguments.
  Every frame ends in a message or a ``vault.errors`` error, in the order an independent
  model of the framing predicts; a stream cut mid-frame ends in
  ``asyncio.IncompleteReadError`` (both callers treat it as the peer going away) and
  only then; the server answers every complete frame and never with ``internal-error``.
* Client side: ``RemoteVault`` reading arbitrary replies returns its value or raises a
  ``VaultError``, and never takes a reply without ``"ok": true`` as a result.
* Round trips: a valid request, encoded then decoded, is the same ``(op, args)``; every
  result dataclass survives ``dump`` → frame → ``load``; ``encode_frame`` either makes a
  frame that decodes to the same message or raises a ``VaultError``.
"""

from __future__ import annotations

import asyncio
import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from vault.access import Peer, PeerPolicy
from vault.card import CardData
from vault.errors import (
    BY_ID,
    FrameTooLarge,
    InvalidRequest,
    MalformedFrame,
    VaultError,
)
from vault.forwarding import BillingKeyResult, ChargeResult, Order
from vault.models import (
    AuditEntry,
    BirthCheck,
    CardMetadata,
    KekInfo,
    RotationReport,
    TokenRef,
    VaultStatus,
)
from vault.protocol import OPERATIONS, dump, encode_frame, load, parse_request, read_frame
from vault.remote import RemoteVault
from vault.server import VaultServer

FUZZ = settings(max_examples=200, deadline=None)
BIG = 1 << 20

# ------------------------------------------------------------------ strategies

text = st.text(max_size=16)  # (hypothesis text has no lone surrogates)
scalars = st.none() | st.booleans() | st.integers() | text | st.floats(allow_nan=False)
json_values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(text, kids, max_size=4),
    max_leaves=12,
)
_BY_TYPE: dict[Any, st.SearchStrategy[Any]] = {
    str: text,
    int: st.integers(),
    type(None): st.none(),
}


def _args(spec: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for key, want in spec.items():
        if isinstance(want, dict):
            fields[key] = _args(want)
        else:
            fields[key] = st.one_of(
                *(_BY_TYPE[t] for t in (want if isinstance(want, tuple) else (want,)))
            )
    return st.fixed_dictionaries(fields)


requests = st.sampled_from(sorted(OPERATIONS)).flatmap(
    lambda op: _args(OPERATIONS[op]).map(lambda args: {"op": op, "args": args})
)


@st.composite
def bad_requests(draw: st.DrawFn) -> Any:
    """A valid request with one thing wrong: a key, a type, the op, the shape."""
    message = draw(requests)
    args = message["args"]
    how = draw(st.sampled_from(["drop", "extra", "retype", "op", "top", "args", "any"]))
    if how == "drop" and args:
        del args[draw(st.sampled_from(sorted(args)))]
    elif how == "extra":
        args[draw(text)] = draw(json_values)
    elif how == "retype" and args:
        args[draw(st.sampled_from(sorted(args)))] = draw(json_values | st.just(True))
    elif how == "op":
        message["op"] = draw(json_values | st.sampled_from(["STATUS", "status ", "__class__"]))
    elif how == "top":
        message[draw(text)] = draw(json_values)
    elif how == "args":
        message["args"] = draw(json_values)
    else:
        return draw(json_values)
    return message


def _body(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


bodies = st.one_of(
    requests.map(_body),
    bad_requests().map(_body),
    st.tuples(requests.map(_body), st.integers(0, 200), st.binary(min_size=1, max_size=3)).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + 1 :]
    ),  # a corrupted byte or three
    st.binary(max_size=40),
    st.sampled_from([b"NaN", b'{"op":"status","args":{"x":Infinity}}', b"[" * 5000, b"\xff"]),
)
framed = bodies.map(lambda b: struct.pack(">I", len(b)) + b)
frames = st.one_of(
    framed,
    framed,
    framed,
    st.tuples(st.integers(0, 2**32 - 1) | st.integers(0, 300), bodies).map(
        lambda t: struct.pack(">I", t[0]) + t[1]
    ),
    st.sampled_from([b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x00\x00\x00\x05{}"]),
)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    data = b"".join(draw(st.lists(frames, max_size=5)))
    if data and draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data) - 1))]  # cut anywhere
    return data


max_frame = st.sampled_from([65_536, 65_536, 4096, 64, 8])

# ------------------------------------------------------------------ the framing model

Event = Any  # ("body", bytes) | "empty" | "too_large" | "truncated" | "end"


def framing(data: bytes, max_bytes: int) -> list[Event]:
    """What read_frame must see, computed without it: the spec in the module docstring."""
    out: list[Event] = []
    i = 0
    while True:
        if i == len(data):
            return [*out, "end"]
        if len(data) - i < 4:
            return [*out, "truncated"]
        size = int.from_bytes(data[i : i + 4], "big")
        i += 4
        if size > max_bytes:
            return [*out, "too_large"]
        if size == 0:
            out.append("empty")
            continue
        if len(data) - i < size:
            return [*out, "truncated"]
        out.append(("body", data[i : i + size]))
        i += size


def _reader(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def _read_all(data: bytes, max_bytes: int) -> list[Event]:
    """read_frame in a loop, handled as VaultServer handles it."""
    reader = _reader(data)
    out: list[Event] = []
    while True:
        try:
            message = await read_frame(reader, max_bytes, body_timeout_s=5)
        except FrameTooLarge:
            return [*out, "too_large"]
        except MalformedFrame:
            out.append("malformed")
            continue
        except asyncio.IncompleteReadError:
            return [*out, "truncated"]
        if message is None:
            return [*out, "end"]
        out.append(message)


def _check_request(message: dict[str, Any]) -> None:
    try:
        op, args = parse_request(message)
    except InvalidRequest:  # UnknownOperation and MalformedFrame are ones too
        return
    assert op in OPERATIONS
    assert args == message.get("args", {})


# ------------------------------------------------------------------ server side


@FUZZ
@given(data=streams() | st.binary(max_size=64), max_bytes=max_frame)
@example(data=b"\x00\x00", max_bytes=64)  # a cut header
@example(data=b"\x00\x00\x00\x10{}", max_bytes=64)  # a cut body
@example(data=struct.pack(">I", 10_000) + b"[" * 10_000, max_bytes=65_536)  # deep nesting
@example(data=b"\x00\x00\x00\x03\xff\xfe\xfd", max_bytes=64)  # not UTF-8
def test_any_stream_reads_as_the_framing_model_says(data: bytes, max_bytes: int) -> None:
    seen = asyncio.run(_read_all(data, max_bytes))
    expected = framing(data, max_bytes)
    assert len(seen) == len(expected), (seen, expected)
    for got, want in zip(seen, expected, strict=True):
        if want == "empty":
            assert got == "malformed"
        elif isinstance(want, tuple):
            if got != "malformed":
                assert isinstance(got, dict)
                assert got == json.loads(want[1])
                _check_request(got)
        else:
            assert got == want


@FUZZ
@given(message=bad_requests())
@example(message={"op": "audit", "args": {"token": None, "limit": True}})
@example(message={"op": "tokenize", "args": {"merchant_id": "m", "who": "w", "card": []}})
def test_badly_formed_requests_end_in_invalid_request(message: Any) -> None:
    frame = struct.pack(">I", len(_body(message))) + _body(message)
    seen = asyncio.run(_read_all(frame, BIG))
    assert seen[-1] == "end"
    if seen[0] != "malformed":
        _check_request(seen[0])


class _Writer:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.data += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    async def wait_closed(self) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return None


NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
METADATA = CardMetadata("tok_1", "m_1", "411111", "1111", "visa", None, "credit", "personal",
                        "ab" * 32, NOW)  # fmt: skip


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
    writer = _Writer()
    await server._serve_connection(_reader(data), writer)  # type: ignore[arg-type]
    assert writer.closed
    return bytes(writer.data)


@FUZZ
@given(data=streams(), max_bytes=st.sampled_from([65_536, 65_536, 4096, 64]))
def test_the_server_answers_every_complete_frame(data: bytes, max_bytes: int) -> None:
    replies = asyncio.run(_read_all(asyncio.run(_serve(data, max_bytes)), BIG))
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


# ------------------------------------------------------------------ client side


class _CannedRemote(RemoteVault):
    """The real client; its connection reads ``reply`` and swallows the request."""

    def __init__(self, reply: bytes) -> None:
        super().__init__(Path("/nonexistent/vault.sock"))
        self.reply = reply

    async def _connect(self) -> Any:
        return _reader(self.reply), _Writer()


CARD = CardData(pan="4111111111111111", expiry="1230", birth="880101")
RESULTS: dict[str, Any] = {
    "tokenize": dump(METADATA),
    "metadata": dump(METADATA),
    "issue_billing_key": dump(BillingKeyResult(ok=True, customer_uid="cus_1")),
    "keyed_charge": dump(ChargeResult(status="failed", order_id="o_1", amount=1000)),
    "verify_birth": dump(BirthCheck(matched=True)),
    "delete": None,
    "audit": [dump(AuditEntry(1, NOW, "who", "in-process", "tokenize", "why", "tok_1", "m_1"))],
    "status": dump(VaultStatus("file", "kek_1", (KekInfo("kek_1", "current", 1, NOW, NOW),), 1)),
    "tokens": [dump(TokenRef("tok_1", "m_1", NOW))],
}


async def _client_call(op: str, reply: bytes) -> Any:
    remote = _CannedRemote(reply)
    try:
        if op == "tokenize":
            return await remote.tokenize("m_1", CARD, who="w")
        if op == "metadata":
            return await remote.metadata("tok_1", "m_1")
        if op == "issue_billing_key":
            return await remote.issue_billing_key(
                "tok_1", "m_1", password2="12", customer_uid="cus_1", who="w", why="y"
            )
        if op == "keyed_charge":
            order = Order(order_id="o_1", amount=1000, order_name="n", installment_months=0)
            return await remote.keyed_charge(
                "tok_1", "m_1", password2="12", order=order, who="w", why="y"
            )
        if op == "verify_birth":
            return await remote.verify_birth("tok_1", "m_1", birth="880101", who="w", why="y")
        if op == "delete":
            return await remote.delete("tok_1", "m_1", who="w", why="y")
        if op == "audit":
            return await remote.audit(limit=5)
        if op == "tokens":
            return await remote.tokens(created_before=NOW, after="", limit=5)
        return await remote.status()
    finally:
        await remote.close()


@st.composite
def mutated_results(draw: st.DrawFn, op: str) -> Any:
    value = json.loads(json.dumps(RESULTS[op]))
    target = value[0] if isinstance(value, list) else value
    if isinstance(target, dict):
        for key in draw(st.lists(st.sampled_from(sorted(target)), max_size=2, unique=True)):
            if draw(st.booleans()):
                del target[key]
            else:
                target[key] = draw(
                    json_values | st.sampled_from(["2030-13-01T00:00:00", "yesterday", ""])
                )
    return value


@st.composite
def replies(draw: st.DrawFn, op: str) -> bytes:
    how = draw(st.sampled_from(["ok", "ok", "error", "any", "stream"]))
    if how == "stream":
        return draw(streams())
    if how == "any":
        reply = draw(json_values)
    elif how == "error":
        reply = {
            "ok": draw(st.sampled_from([False, None, 0, "true"])),
            "error": draw(
                st.fixed_dictionaries(
                    {"id": st.sampled_from(sorted(BY_ID)) | text, "message": json_values},
                    optional={"status": json_values},
                )
                | json_values
            ),
        }
    else:
        reply = {"ok": draw(st.sampled_from([True, True, 1, "true"])), "result": draw(
            mutated_results(op) | json_values)}  # fmt: skip
    try:
        return encode_frame(reply)
    except VaultError:
        return b""


RESULT_TYPES: dict[str, tuple[type, ...]] = {
    "tokenize": (CardMetadata,),
    "metadata": (CardMetadata,),
    "issue_billing_key": (BillingKeyResult,),
    "keyed_charge": (ChargeResult,),
    "verify_birth": (BirthCheck,),
    "delete": (type(None),),
    "audit": (list,),
    "status": (VaultStatus,),
    "tokens": (list,),
}


def _metadata_reply(**changes: Any) -> bytes:
    return encode_frame({"ok": True, "result": {**RESULTS["metadata"], **changes}})


@FUZZ
@given(
    op_reply=st.sampled_from(sorted(OPERATIONS)).flatmap(
        lambda op: st.tuples(st.just(op), replies(op))
    )
)
@example(op_reply=("metadata", _metadata_reply(created_at="yesterday")))  # was ValueError
@example(op_reply=("tokenize", _metadata_reply(created_at=1_700_000_000)))  # was TypeError
@example(
    op_reply=("status", encode_frame({"ok": True, "result": {**RESULTS["status"], "keks": 1}}))
)
@example(op_reply=("status", encode_frame({"ok": 1, "result": RESULTS["status"]})))
@example(op_reply=("verify_birth", encode_frame({"ok": True, "result": {"matched": 1}})))
def test_the_client_reads_any_reply_into_a_value_or_a_vault_error(
    op_reply: tuple[str, bytes],
) -> None:
    op, reply = op_reply
    try:
        value = asyncio.run(_client_call(op, reply))
    except VaultError:
        return
    assert isinstance(value, RESULT_TYPES[op])
    if op == "verify_birth":  # a security answer: exactly true or false, never truthy
        assert type(value.matched) is bool
    # a value only from a complete frame whose "ok" is exactly true
    assert reply[:4] == struct.pack(">I", len(reply) - 4)
    assert json.loads(reply[4:])["ok"] is True


@st.composite
def greetings(draw: st.DrawFn) -> bytes:
    how = draw(st.sampled_from(["welcome", "refusal", "any", "stream"]))
    if how == "stream":
        return draw(streams())
    if how == "welcome":
        reply: Any = {"ok": True, "result": {"protocol": draw(st.sampled_from([1, 1, 2, "1"])),
                                             "user": draw(text), "roles": ["engine"]}}  # fmt: skip
    elif how == "refusal":
        reply = {"ok": False, "error": {"id": draw(st.sampled_from(sorted(BY_ID)) | text),
                                        "message": draw(json_values)}}  # fmt: skip
    else:
        reply = draw(json_values)
    try:
        return encode_frame(reply)
    except VaultError:
        return b""


@FUZZ
@given(data=greetings())
@example(data=encode_frame({"ok": False, "error": {"id": "vault-busy", "message": "full"}}))
def test_the_client_reads_any_greeting_into_a_connection_or_a_vault_error(data: bytes) -> None:
    async def greet() -> bool:
        remote = RemoteVault(Path("/nonexistent/vault.sock"), timeout_s=1)
        writer = _Writer()
        try:
            await remote._greeted(_reader(data), writer)  # type: ignore[arg-type]
        except VaultError:
            assert writer.closed  # a refused or garbled connection is not kept
            return False
        return True

    if asyncio.run(greet()):  # admitted only by a well-formed welcome of this protocol
        message = json.loads(data[4:])
        assert message["ok"] is True
        assert message["result"]["protocol"] == 1


@FUZZ
@given(
    cls=st.sampled_from(
        [
            CardMetadata,
            AuditEntry,
            VaultStatus,
            KekInfo,
            BillingKeyResult,
            ChargeResult,
            RotationReport,
            TokenRef,
            BirthCheck,
        ]
    ),
    value=json_values,
)
@example(cls=CardMetadata, value={**RESULTS["metadata"], "created_at": "yesterday"})  # ValueError
@example(cls=CardMetadata, value={**RESULTS["metadata"], "created_at": 5})  # was TypeError
@example(cls=VaultStatus, value={**RESULTS["status"], "keks": 3})  # was TypeError
def test_load_of_any_value_is_a_result_or_invalid_request(cls: type, value: Any) -> None:
    try:
        result = load(cls, value)
    except InvalidRequest:
        return
    assert isinstance(result, cls)


# ------------------------------------------------------------------ round trips


@FUZZ
@given(message=requests)
def test_a_valid_request_round_trips(message: dict[str, Any]) -> None:
    frame = encode_frame(message)
    seen = asyncio.run(_read_all(frame, BIG))
    assert seen == [message, "end"]
    assert parse_request(seen[0]) == (message["op"], message["args"])


times = st.datetimes(timezones=st.none() | st.just(UTC))
results = st.one_of(
    st.builds(CardMetadata, created_at=times, issuer=st.none() | text, card_type=st.none() | text),
    st.builds(AuditEntry, at=times, token=st.none() | text, merchant_id=st.none() | text),
    st.builds(TokenRef, created_at=times),
    st.builds(BirthCheck),
    st.builds(
        VaultStatus,
        keks=st.lists(
            st.builds(KekInfo, created_at=times, retired_at=st.none() | times), max_size=3
        ).map(tuple),
    ),
    st.builds(
        RotationReport,
        retired=st.lists(text, max_size=3).map(tuple),
        seconds=st.floats(allow_nan=False, allow_infinity=False),
    ),
    st.builds(BillingKeyResult, decline_kind=st.sampled_from([None, "soft", "hard"])),
    st.builds(
        ChargeResult,
        status=st.sampled_from(["succeeded", "failed", "unknown"]),
        decline_kind=st.sampled_from([None, "soft", "hard"]),
    ),
)


@FUZZ
@given(value=results)
def test_every_result_round_trips_through_a_frame(value: Any) -> None:
    seen = asyncio.run(_read_all(encode_frame({"ok": True, "result": dump(value)}), BIG))
    assert seen[1:] == ["end"]
    assert load(type(value), seen[0]["result"]) == value


@FUZZ
@given(value=json_values | st.sampled_from(["\ud800", float("nan"), float("inf"), 10**5000]))
@example(value="a\udc80b")  # a lone surrogate: was UnicodeEncodeError
@example(value=float("nan"))  # was a frame read back as MalformedFrame
@example(value=10**5000)  # was ValueError (int digit limit)
def test_encode_frame_round_trips_or_raises_a_vault_error(value: Any) -> None:
    try:
        frame = encode_frame({"v": value})
    except VaultError:
        return
    assert asyncio.run(_read_all(frame, BIG)) == [{"v": value}, "end"]
