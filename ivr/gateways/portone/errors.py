"""How PortOne v1 answers map onto the contract: one table per layer, tested row by row.

Layers, in the order a request meets them (docs/portone.md explains each row):

1. :data:`TRANSPORT_ROWS` — an aiohttp/OS error instead of an answer. Failures while
   *connecting* never sent the request (``GatewayUnavailable``); failures after the
   connection was up may have reached the PG (``OutcomeUnknown`` for a payment call).
2. :data:`HTTP_ROWS` — the HTTP status, before the body is read.
3. The ``{code, message, response}`` envelope: ``code == 0`` is success; otherwise
   ``message`` explains. A charge answered ``code == 0`` can still be declined:
   ``response.status == "failed"`` with ``fail_reason``.
4. A decline message (``fail_reason`` or a non-zero ``message``) to a normalized
   :class:`~ivr.gateways.declines.DeclineReason`: its code first (:data:`DECLINE_CODES`,
   the ``[CODE]`` the message starts with, per PG), then :data:`DECLINE_ROWS` (keywords,
   first match wins), then ``unclassified`` (soft, retried at most once).
5. :data:`CANCEL_ROWS` — a refused cancel's message to a :class:`CancelRefusal`.

Real PG messages are free Korean text that differs per PG; the patterns match the
sandbox's bracketed codes (``[INSUFFICIENT_BALANCE] 잔액이 부족합니다.``) and the usual
Korean wording. Only the short code survives (:func:`pg_code`), never the message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeVar

import aiohttp

from ivr.gateways.declines import DeclineReason
from ivr.gateways.errors import (
    CancelRefusal,
    GatewayError,
    GatewayUnavailable,
    OutcomeUnknown,
)
from ivr.gateways.http import HttpRow, status_outcome


class Transport(StrEnum):
    unsent_retry = "unsent_retry"  # never sent; a retry may well work
    unsent_final = "unsent_final"  # never sent; retrying will not help
    maybe_sent = "maybe_sent"  # may have reached the PG


@dataclass(frozen=True)
class TransportRow:
    error: type[BaseException]
    outcome: Transport
    why: str


# Most specific first: ClientSSLError is a ClientConnectorError, and so on.
TRANSPORT_ROWS: Final[tuple[TransportRow, ...]] = (
    TransportRow(aiohttp.InvalidURL, Transport.unsent_final, "bad base_url: nothing was sent"),
    TransportRow(aiohttp.NonHttpUrlClientError, Transport.unsent_final, "base_url not http(s)"),
    TransportRow(aiohttp.ClientSSLError, Transport.unsent_final, "TLS handshake/verify failed"),
    TransportRow(
        aiohttp.ClientConnectorError, Transport.unsent_retry, "connect refused/DNS/unreachable"
    ),
    TransportRow(aiohttp.ConnectionTimeoutError, Transport.unsent_retry, "connect timeout"),
    TransportRow(aiohttp.SocketTimeoutError, Transport.maybe_sent, "no answer in timeout_s"),
    TransportRow(
        aiohttp.ServerDisconnectedError, Transport.maybe_sent, "dropped after the request"
    ),
    TransportRow(aiohttp.ClientPayloadError, Transport.maybe_sent, "answer cut short"),
    TransportRow(aiohttp.ClientOSError, Transport.maybe_sent, "connection reset while talking"),
    TransportRow(TimeoutError, Transport.maybe_sent, "timed out somewhere in the exchange"),
    TransportRow(aiohttp.ClientError, Transport.maybe_sent, "anything else: assume it arrived"),
)


def transport_outcome(exc: BaseException) -> Transport:
    for row in TRANSPORT_ROWS:
        if isinstance(exc, row.error):
            return row.outcome
    return Transport.maybe_sent


def transport_error(
    exc: BaseException, *, op: str, mutating: bool, order_id: str | None = None
) -> GatewayError:
    """The contract error for a transport failure during ``op``."""
    outcome = transport_outcome(exc)
    name = type(exc).__name__
    if outcome is Transport.unsent_final:
        return GatewayUnavailable(f"PortOne {op}: not sent ({name})", retry_safe=False)
    if outcome is Transport.unsent_retry or not mutating:
        # Read-only calls cannot move money, so any failure of theirs is retry-safe.
        return GatewayUnavailable(f"PortOne {op}: no answer ({name})", retry_safe=True)
    return OutcomeUnknown(f"PortOne {op}: outcome unknown ({name})", order_id=order_id)


class Http(StrEnum):
    envelope = "envelope"  # read {code, message, response}
    reauth = "reauth"  # renew the access token once and resend
    not_found = "not_found"  # find: the PG never saw the order
    throttled = "throttled"  # refused before processing: retry later
    rejected = "rejected"  # the request itself is wrong: GatewayRejected
    unknown = "unknown"  # server failure: maybe processed


HTTP_ROWS: Final[tuple[HttpRow[Http], ...]] = (
    HttpRow(200, 299, Http.envelope, "answered; the envelope says what happened"),
    HttpRow(401, 401, Http.reauth, "token missing/expired (documented 401)"),
    HttpRow(404, 404, Http.not_found, "find: no such order (documented 404)"),
    HttpRow(429, 429, Http.throttled, "rate limited before processing"),
    HttpRow(400, 499, Http.rejected, "malformed or forbidden request"),
    HttpRow(500, 599, Http.unknown, "PG failure: may or may not have been processed"),
    HttpRow(100, 399, Http.unknown, "unexpected status (1xx/3xx): treat as unknown"),
)


def http_outcome(status: int) -> Http:
    return status_outcome(HTTP_ROWS, status, Http.unknown)


@dataclass(frozen=True)
class MessageRow:
    pattern: re.Pattern[str]
    why: str


@dataclass(frozen=True)
class DeclineRow(MessageRow):
    reason: DeclineReason


Row = TypeVar("Row", bound=MessageRow)


def first_match(rows: Sequence[Row], message: str | None) -> Row | None:
    """The first row whose pattern is found in ``message``: rows are in priority order."""
    text = message or ""
    return next((row for row in rows if row.pattern.search(text)), None)


def _rx(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


DECLINE_ROWS: Final[tuple[DeclineRow, ...]] = (
    DeclineRow(_rx(r"INSUFFICIENT|잔액\s*(이\s*)?부족"), "잔액부족",
               DeclineReason.insufficient_funds),
    DeclineRow(_rx(r"LIMIT_EXCEEDED|EXCEED_MAX|한도\s*(가\s*)?초과"), "한도초과",
               DeclineReason.limit_exceeded),
    DeclineRow(_rx(r"LOST|STOLEN|분실|도난"), "분실/도난 카드", DeclineReason.lost_or_stolen),
    DeclineRow(_rx(r"EXPIRED|유효\s*기간"), "유효기간 경과", DeclineReason.expired_card),
    DeclineRow(_rx(r"PASSWORD_REQUIRED|비밀\s*번호.{0,12}(필수|누락|입력\s*(해|하)?\s*주)"),
               "비밀번호 필요", DeclineReason.password_required),
    DeclineRow(_rx(r"PASSWORD|비밀\s*번호"), "비밀번호 불일치", DeclineReason.wrong_password),
    DeclineRow(_rx(r"IDENTITY|BIRTH|생년\s*월일|사업자\s*(등록\s*)?번호"),
               "생년월일/사업자번호 불일치", DeclineReason.identity_mismatch),
    DeclineRow(_rx(r"INSTALLMENT|할부"), "할부 불가", DeclineReason.installment_unavailable),
    DeclineRow(_rx(r"INVALID_CARD|카드\s*번호|카드\s*정보\s*인증"), "카드정보 오류",
               DeclineReason.invalid_card),
    DeclineRow(_rx(r"TEMPORAR|ISSUER_UNAVAILABLE|카드사\s*(통신|시스템|사정)"),
               "카드사 일시 장애", DeclineReason.issuer_temporary),
    DeclineRow(_rx(r"PG_PROCESSING|PG_ERROR|시스템\s*오류|통신\s*(오류|장애)"),
               "PG 처리 오류", DeclineReason.pg_error),
    DeclineRow(_rx(r"STOPPED|거래\s*정지"), "거래정지 카드", DeclineReason.rejected),
    DeclineRow(_rx(r"CUSTOMER_NOT_FOUND|등록되지\s*않은"), "빌링키 없음", DeclineReason.rejected),
    DeclineRow(_rx(r"REJECT|거절"), "카드사 거절", DeclineReason.rejected),
)  # fmt: skip


_R = DeclineReason
# Decline codes, keyed by (PG code, code); PG "" = any PG (the sandbox's own codes, which
# are PortOne-style words). Sources: the sandbox's table (ivr/gateways/sandbox/cards.py);
# 토스페이먼츠 오류코드 (support/_assets/error_code_doc/tosspayments-code.xlsx in
# portone-io/developers.portone.io, "신용카드" rows). A code is read only from a message
# that starts with ``[CODE]``, and only for the PG that answered.
DECLINE_CODES: Final[dict[tuple[str, str], DeclineReason]] = {
    ("", "INSUFFICIENT_BALANCE"): _R.insufficient_funds,
    ("", "LIMIT_EXCEEDED"): _R.limit_exceeded,
    ("", "LOST_OR_STOLEN_CARD"): _R.lost_or_stolen,
    ("", "EXPIRED_CARD"): _R.expired_card,
    ("", "INVALID_PASSWORD"): _R.wrong_password,
    ("", "PASSWORD_REQUIRED"): _R.password_required,
    ("", "IDENTITY_MISMATCH"): _R.identity_mismatch,
    ("", "INSTALLMENT_NOT_ALLOWED"): _R.installment_unavailable,
    ("", "INVALID_CARD_NUMBER"): _R.invalid_card,
    ("", "PG_PROCESSING_ERROR"): _R.pg_error,
    ("", "REJECT_CARD_PAYMENT"): _R.rejected,
    ("", "CUSTOMER_NOT_FOUND"): _R.rejected,
    **{("tosspayments", code): reason for codes, reason in (
        (("2", "16", "A8", "B4", "B5"), _R.limit_exceeded),  # 한도 부족 / 잔액 부족
        (("4", "A1", "23", "A2"), _R.expired_card),
        (("5", "6", "11", "12", "A3", "A4", "A5"), _R.installment_unavailable),
        (("14", "125", "A0", "8552"), _R.invalid_card),
        (("19", "6633", "21", "38", "8559"), _R.wrong_password),
        (("26", "A7", "9141"), _R.lost_or_stolen),
        (("51", "52", "215", "8318", "8320"), _R.identity_mismatch),
        (("121", "570", "3001"), _R.issuer_temporary),
        (("A9", "3000"), _R.rejected),  # 거래정지카드, 카드사 거절
    ) for code in codes},
}  # fmt: skip


def decline_reason(message: str | None, pg: str = "") -> DeclineReason:
    """Normalize a decline message from PG ``pg`` (a pg_provider code, or ""): its code,
    then its words; a refusal in unknown words is ``unclassified`` (soft): a payer is
    not cut off for wording nobody has seen yet, and the retry policy tries it once."""
    found = _BRACKET.match(message or "")
    if found:
        code = found.group(1)
        reason = DECLINE_CODES.get((pg, code)) or DECLINE_CODES.get(("", code))
        if reason is not None:
            return reason
    row = first_match(DECLINE_ROWS, message)
    return DeclineReason.unclassified if row is None else row.reason


@dataclass(frozen=True)
class CancelRow(MessageRow):
    refusal: CancelRefusal


CANCEL_ROWS: Final[tuple[CancelRow, ...]] = (
    CancelRow(_rx(r"CHECKSUM|취소\s*가능\s*잔액.*일치"), "checksum 불일치",
              CancelRefusal.checksum_mismatch),
    CancelRow(_rx(r"EXCEEDS|초과"), "취소가능잔액 초과", CancelRefusal.exceeds_refundable),
    CancelRow(_rx(r"ALREADY|이미"), "이미 취소됨", CancelRefusal.already_cancelled),
    CancelRow(_rx(r"NOT_FOUND|존재하지\s*않"), "결제건 없음", CancelRefusal.not_found),
    CancelRow(_rx(r"NOT_PAID|미결제|결제\s*완료\s*상태가\s*아"), "결제완료 아님",
              CancelRefusal.not_paid),
)  # fmt: skip


def cancel_refusal(message: str | None) -> CancelRefusal:
    row = first_match(CANCEL_ROWS, message)
    return CancelRefusal.refused if row is None else row.refusal


# "존재하지 않는 결제정보입니다" is the example message of a non-zero code (v1 OpenAPI).
FIND_NOT_FOUND: Final = _rx(r"NOT_FOUND|존재하지\s*않")

# A charge refused because its merchant_uid was used: the v1 OpenAPI says "이미 결제가
# 이뤄진 적이 있는 merchant_uid로는 결제요청이 불가능합니다" (the exact answer is not
# documented; V2 names ALREADY_PAID / ALREADY_PAID_OR_WAITING). Matching it is a
# courtesy: the engine looks up every refusal of an order id it sent before anyway.
DUPLICATE_ORDER: Final = _rx(r"DUPLICAT|ALREADY_PAID|이미\s*결제|중복|결제가?\s*(진행|대기)\s*중")

_BRACKET = re.compile(r"^\s*\[([A-Za-z0-9_.:-]{1,40})\]")


def pg_code(message: str | None, envelope_code: int | None = None) -> str:
    """The short code kept from a PG message: ``[CODE]`` when present, else the
    envelope code. The message itself is dropped."""
    found = _BRACKET.match(message or "")
    if found:
        return found.group(1)
    return "portone" if envelope_code is None else f"portone:{envelope_code}"
