"""Fuzz: the vault socket protocol (``vault.protocol``), client side and round trips.

* Client side: ``RemoteVault`` reading arbitrary replies returns its value or raises a
  ``VaultError``, and never takes a reply without ``"ok": true`` as a result.
* Round trips: a valid request, encoded then decoded, is the same ``(op, args)``; every
  result dataclass survives ``dump`` → frame → ``load``; ``encode_frame`` either makes a
  frame that decodes to the same message or raises a ``VaultError``.

The server side: ``test_fuzz_vault_server.py``.
"""

from __future__ import annotations

import asyncio
import json
import struct
from datetime import UTC
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
    json_values,
    read_all,
    reader_of,
    requests,
    streams,
    text,
)
from vault.card import CardData
from vault.errors import (
    BY_ID,
    InvalidRequest,
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
from vault.protocol import OPERATIONS, dump, encode_frame, load, parse_request
from vault.remote import RemoteVault

# ------------------------------------------------------------------ client side


class _CannedRemote(RemoteVault):
    """The real client; its connection reads ``reply`` and swallows the request."""

    def __init__(self, reply: bytes) -> None:
        super().__init__(Path("/nonexistent/vault.sock"))
        self.reply = reply

    async def _connect(self) -> Any:
        return reader_of(self.reply), FrameWriter()


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
        writer = FrameWriter()
        try:
            await remote._greeted(reader_of(data), writer)  # type: ignore[arg-type]
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
    seen = asyncio.run(read_all(frame, BIG))
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
    seen = asyncio.run(read_all(encode_frame({"ok": True, "result": dump(value)}), BIG))
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
    assert asyncio.run(read_all(frame, BIG)) == [{"v": value}, "end"]
