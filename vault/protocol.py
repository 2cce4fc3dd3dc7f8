"""The vault socket protocol: length-prefixed JSON frames and the operation table.

A frame is a 4-byte big-endian unsigned length followed by that many bytes of UTF-8
JSON holding one object. Requests are ``{"op": "<name>", "args": {…}}``; replies are
``{"ok": true, "result": …}`` or ``{"ok": false, "error": {"id", "message", "status"}}``.

The server speaks first: on every new connection it sends one greeting frame, either
``{"ok": true, "result": {"protocol": 1, "user": "<peer's user>", "roles": [...]}}`` or
an error (``vault-peer-not-allowed``, ``vault-busy``) followed by closing. Then the
client sends requests, one at a time, each answered by one reply.
Frames above ``max_frame_bytes`` are refused before their body is read. Arguments are
checked against :data:`OPERATIONS` exactly: no missing, extra or wrongly typed field
(``true`` is not an integer). Error messages name fields, never values. A forwarding
call's ``route`` is ``null`` (the vault's own gateway) or an object (a
:class:`~vault.forwarding.Route`: ``account_id``, ``kind``, ``base_url`` and
``connection``, an object of text values, checked again when the Route is built).

An operation's arguments are the keyword arguments of the
:class:`~vault.client.VaultClient` method of the same name: :func:`wire_args` writes
them for the client, :func:`call_args` reads them back for the server (a card is an
object, a time an ISO 8601 string, an :class:`~vault.forwarding.Order`'s fields stand
flat beside the others).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import struct
import types
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar, Union, get_args, get_origin, get_type_hints

from vault.card import CardData
from vault.errors import FrameTooLarge, InvalidRequest, MalformedFrame, UnknownOperation
from vault.forwarding import MAX_CONNECTION_FIELDS, Order, Route

HEADER: Final = struct.Struct(">I")
PROTOCOL_VERSION: Final = 1
T = TypeVar("T")

_CARD: Final = {"pan": str, "expiry": str, "birth": str}
_CALLER: Final = {"who": str, "why": str}
_RECORD: Final = {"token": str, "merchant_id": str}
_ORDER: Final = {"order_id": str, "amount": int, "order_name": str, "installment_months": int}


@dataclass(frozen=True)
class TextMap:
    """An argument that is an object of at most ``max_items`` text values under any
    names (a route's ``connection``)."""

    max_items: int


_ROUTE: Final = {"account_id": str, "kind": str, "base_url": str,
                 "connection": TextMap(MAX_CONNECTION_FIELDS)}  # fmt: skip
_ROUTED: Final = {"route": (type(None), _ROUTE)}  # null: the vault's configured gateway

OPERATIONS: Final[dict[str, dict[str, Any]]] = {
    "tokenize": {"merchant_id": str, "card": _CARD, "who": str},
    "metadata": dict(_RECORD),
    "issue_billing_key": {**_RECORD, **_CALLER, "password2": str, "customer_uid": str, **_ROUTED},
    "keyed_charge": {**_RECORD, **_CALLER, "password2": str, **_ORDER, **_ROUTED},
    "verify_birth": {**_RECORD, **_CALLER, "birth": str},
    "delete": {**_RECORD, **_CALLER},
    "audit": {"token": (str, type(None)), "limit": int},
    "tokens": {"created_before": str, "after": str, "limit": int},
    "status": {},
}
"""Every operation and its arguments: a type, a nested table, a :class:`TextMap`, or a
tuple of types and at most one table (``null`` or an object)."""


def encode_frame(message: dict[str, Any]) -> bytes:
    try:
        body = json.dumps(
            message, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except ValueError:  # NaN/Infinity, an int above 4300 digits, a lone surrogate
        raise MalformedFrame("message cannot be sent as a UTF-8 JSON frame") from None
    return HEADER.pack(len(body)) + body


def _no_constants(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedFrame("frame is not valid UTF-8 JSON") from None
    if not isinstance(message, dict):
        raise MalformedFrame("frame must hold a JSON object")
    return message


async def read_frame(
    reader: asyncio.StreamReader, max_bytes: int, *, body_timeout_s: float | None = None
) -> dict[str, Any] | None:
    """The next frame, or ``None`` on a clean end of stream. :class:`FrameTooLarge`
    leaves the stream unsynchronised (close it); :class:`MalformedFrame` does not."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    (size,) = HEADER.unpack(header)
    if size > max_bytes:
        raise FrameTooLarge(f"frame of {size} bytes is above the limit of {max_bytes}")
    if size == 0:
        raise MalformedFrame("empty frame")
    async with asyncio.timeout(body_timeout_s):
        body = await reader.readexactly(size)
    return parse_body(body)


def _safe_name(name: str) -> str:
    return name if name.isidentifier() and len(name) <= 32 else "?"


def _check(spec: dict[str, Any], args: Any, where: str) -> None:
    if not isinstance(args, dict):
        raise InvalidRequest(f"{where} must be an object")
    for key in args:
        if key not in spec:
            raise InvalidRequest(f"{where}: unexpected argument {_safe_name(str(key))}")
    for key, want in spec.items():
        if key not in args:
            raise InvalidRequest(f"{where}: missing argument {key}")
        value = args[key]
        if isinstance(want, tuple):
            tables = [w for w in want if isinstance(w, dict)]
            if tables and isinstance(value, dict):
                want = tables[0]
        if isinstance(want, dict):
            _check(want, value, f"{where}.{key}")
            continue
        if isinstance(want, TextMap):
            _check_text_map(want, value, f"{where}.{key}")
            continue
        allowed = want if isinstance(want, tuple) else (want,)
        if type(value) not in allowed:
            raise InvalidRequest(f"{where}: argument {key} has the wrong type")


def _check_text_map(want: TextMap, value: Any, where: str) -> None:
    if not isinstance(value, dict) or len(value) > want.max_items:
        raise InvalidRequest(f"{where} must be an object of at most {want.max_items} texts")
    if any(type(v) is not str for v in value.values()):
        raise InvalidRequest(f"{where}: every value must be text")


def parse_request(message: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(op, args)`` once both are checked against :data:`OPERATIONS`."""
    op = message.get("op")
    if set(message) - {"op", "args"}:
        raise InvalidRequest("request has fields other than op and args")
    if not isinstance(op, str):
        raise InvalidRequest("request needs an op string")
    spec = OPERATIONS.get(op)
    if spec is None:
        raise UnknownOperation(f"unknown operation {_safe_name(op)}")
    args = message.get("args", {})
    _check(spec, args, op)
    return op, args


def wire_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A client method's keyword arguments as the ``args`` of its request."""
    args: dict[str, Any] = {}
    for name, value in kwargs.items():
        if isinstance(value, Order):
            args.update(dump(value))
        else:
            args[name] = dump(value)
    return args


def call_args(args: dict[str, Any]) -> dict[str, Any]:
    """The ``args`` of a request :func:`parse_request` checked, as the keyword arguments
    of the vault's method of the same name (the inverse of :func:`wire_args`)."""
    kwargs = dict(args)
    if "card" in kwargs:
        kwargs["card"] = CardData(**kwargs["card"])
    if "created_before" in kwargs:
        try:
            kwargs["created_before"] = datetime.fromisoformat(kwargs["created_before"])
        except ValueError:
            raise InvalidRequest("created_before is not an ISO 8601 time") from None
    if "order_id" in kwargs:
        kwargs["order"] = Order(**{name: kwargs.pop(name) for name in _ORDER})
    if kwargs.get("route") is not None:
        kwargs["route"] = Route(**kwargs["route"])  # checked: InvalidRequest naming fields
    return kwargs


# ---------------------------------------------------------------------- values


def dump(value: Any) -> Any:
    """Dataclasses, datetimes, tuples and lists as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [dump(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): dump(v) for k, v in value.items()}
    return value


def load(cls: type[T], data: Any) -> T:
    """The inverse of :func:`dump` for the vault's flat, frozen result dataclasses."""
    if not isinstance(data, dict):
        raise InvalidRequest(f"{cls.__name__} must be an object")
    hints = get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            if f.default is not dataclasses.MISSING:
                continue  # a field newer than the other side (e.g. receipt_url): its default
            raise InvalidRequest(f"{cls.__name__}: missing {f.name}")
        kwargs[f.name] = _load_value(hints[f.name], data[f.name])
    return cls(**kwargs)


def _load_value(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        return _load_value(inner[0], value) if len(inner) == 1 else value
    if tp is datetime:
        try:
            return datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise InvalidRequest("a time is not an ISO 8601 string") from None
    if origin is tuple:
        if not isinstance(value, list):
            raise InvalidRequest("a tuple is not a JSON list")
        (item, _ellipsis) = get_args(tp)
        return tuple(_load_value(item, v) for v in value)
    if dataclasses.is_dataclass(tp):
        return load(tp, value)  # type: ignore[arg-type]
    return value
