"""Strategies and the framing model shared by the vault-protocol fuzz tests (server side
and client side)."""

from __future__ import annotations

import asyncio
import json
import struct
from datetime import UTC, datetime
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from vault.errors import (
    FrameTooLarge,
    InvalidRequest,
    MalformedFrame,
)
from vault.models import CardMetadata
from vault.protocol import OPERATIONS, TextMap, parse_request, read_frame

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


def _value_for(want: Any) -> st.SearchStrategy[Any]:
    if isinstance(want, dict):
        return args_for(want)
    if isinstance(want, TextMap):
        return st.dictionaries(text, text, max_size=want.max_items)
    if isinstance(want, tuple):
        return st.one_of(*(_value_for(w) for w in want))
    return _BY_TYPE[want]


def args_for(spec: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({key: _value_for(want) for key, want in spec.items()})


requests = st.sampled_from(sorted(OPERATIONS)).flatmap(
    lambda op: args_for(OPERATIONS[op]).map(lambda args: {"op": op, "args": args})
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


def body_of(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


bodies = st.one_of(
    requests.map(body_of),
    bad_requests().map(body_of),
    st.tuples(requests.map(body_of), st.integers(0, 200), st.binary(min_size=1, max_size=3)).map(
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


def reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def read_all(data: bytes, max_bytes: int) -> list[Event]:
    """read_frame in a loop, handled as VaultServer handles it."""
    reader = reader_of(data)
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


def check_request(message: dict[str, Any]) -> None:
    try:
        op, args = parse_request(message)
    except InvalidRequest:  # UnknownOperation and MalformedFrame are ones too
        return
    assert op in OPERATIONS
    assert args == message.get("args", {})


class FrameWriter:
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
