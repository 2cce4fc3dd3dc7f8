"""How PortOne V2 answers map onto the contract: one table per layer, tested row by row.

Layers, in the order a request meets them (docs/portone.md §6 explains each row):

1. Transport errors: the v1 connector's table (:data:`ivr.gateways.portone.errors.TRANSPORT_ROWS`)
   — the socket does not know which API version it carries.
2. :data:`HTTP_ROWS` — the HTTP status. V2 answers errors with a real status and a
   ``{type, message}`` body; 502 is documented for ``PgProviderError`` (the card company
   or PG said no), so a 502 whose body names a documented type is an answer, while any
   other 5xx (or a 502 from a proxy) may or may not have been processed.
3. :data:`TYPE_ROWS` — the error ``type`` (the discriminator of every ``…Error`` schema in
   the V2 document) to what it means for the operation.
4. Declines (``PG_PROVIDER``): ``pgCode`` and ``pgMessage`` through the v1 decline table
   (:func:`ivr.gateways.portone.errors.decline_reason`); only ``pgCode`` is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from ivr.gateways.declines import Decline, DeclineReason, Stage, decline
from ivr.gateways.errors import CancelRefusal
from ivr.gateways.http import HttpRow, status_outcome
from ivr.gateways.portone.errors import decline_reason


class Http(StrEnum):
    ok = "ok"  # 2xx: the operation's answer
    error = "error"  # a documented error status: read its type
    throttled = "throttled"  # 429: refused before processing
    unknown = "unknown"  # 5xx other than a typed 502: maybe processed


HTTP_ROWS: Final[tuple[HttpRow[Http], ...]] = (
    HttpRow(200, 299, Http.ok, "answered"),
    HttpRow(429, 429, Http.throttled, "rate limited before processing"),
    HttpRow(400, 499, Http.error, "400/401/403/404/409 are documented with a typed body"),
    HttpRow(502, 502, Http.error, "PgProviderError / ChannelSpecificError (typed body)"),
    HttpRow(500, 599, Http.unknown, "PG failure: may or may not have been processed"),
    HttpRow(100, 399, Http.unknown, "unexpected status (1xx/3xx): treat as unknown"),
)


def http_outcome(status: int) -> Http:
    return status_outcome(HTTP_ROWS, status, Http.unknown)


class Meaning(StrEnum):
    declined = "declined"  # the card company / PG refused: a decline
    duplicate = "duplicate"  # the paymentId was paid (or is being paid) already
    in_progress = "in_progress"  # the same Idempotency-Key is still being processed
    no_payment = "no_payment"  # the PG never saw the paymentId
    key_gone = "key_gone"  # the billing key does not exist (any more)
    refused = "refused"  # the PG refused this request of the payer (a decline, no payment)
    cancel = "cancel"  # a cancel refusal: see CANCEL_REFUSALS
    auth = "auth"  # the API secret was refused
    rejected = "rejected"  # the request itself is wrong: fix configuration or code


@dataclass(frozen=True)
class TypeRow:
    type: str
    meaning: Meaning
    why: str


TYPE_ROWS: Final[tuple[TypeRow, ...]] = (
    TypeRow("PG_PROVIDER", Meaning.declined, "PgProviderError: PG사에서 오류를 전달한 경우"),
    TypeRow("CHANNEL_SPECIFIC", Meaning.declined, "every channel of the request failed"),
    TypeRow("ALREADY_PAID", Meaning.duplicate, "AlreadyPaidError: 결제가 이미 완료된 경우"),
    TypeRow("ALREADY_PAID_OR_WAITING", Meaning.duplicate, "paid, or waiting to be paid"),
    TypeRow(
        "IDEMPOTENCY_OUTSTANDING_REQUEST",
        Meaning.in_progress,
        "the same Idempotency-Key is still being processed (REST V2 guide)",
    ),
    TypeRow("PAYMENT_NOT_FOUND", Meaning.no_payment, "PaymentNotFoundError"),
    TypeRow("BILLING_KEY_NOT_FOUND", Meaning.key_gone, "BillingKeyNotFoundError"),
    TypeRow("BILLING_KEY_ALREADY_DELETED", Meaning.key_gone, "BillingKeyAlreadyDeletedError"),
    TypeRow("BILLING_KEY_NOT_ISSUED", Meaning.key_gone, "BillingKeyNotIssuedError"),
    TypeRow(
        "MAX_TRANSACTION_COUNT_REACHED",
        Meaning.refused,
        "결제 혹은 본인인증 시도 횟수가 최대에 도달한 경우",
    ),
    TypeRow("CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN", Meaning.cancel, "checksum mismatch"),
    TypeRow("CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT", Meaning.cancel, "over the balance"),
    TypeRow("PAYMENT_ALREADY_CANCELLED", Meaning.cancel, "cancelled already"),
    TypeRow("PAYMENT_NOT_PAID", Meaning.cancel, "not paid"),
    TypeRow("MAX_CANCEL_COUNT_REACHED", Meaning.cancel, "too many cancel attempts"),
    TypeRow("UNAUTHORIZED", Meaning.auth, "UnauthorizedError: the API secret"),
)
_BY_TYPE: Final = {row.type: row.meaning for row in TYPE_ROWS}


def meaning(error_type: str | None) -> Meaning:
    """What an error ``type`` means; an unlisted (or missing) type is ``rejected``:
    INVALID_REQUEST, FORBIDDEN, CHANNEL_NOT_FOUND, the tax and promotion checks…"""
    return _BY_TYPE.get(error_type or "", Meaning.rejected)


CANCEL_REFUSALS: Final[dict[str, CancelRefusal]] = {
    "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN": CancelRefusal.checksum_mismatch,
    "CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT": CancelRefusal.exceeds_refundable,
    "PAYMENT_ALREADY_CANCELLED": CancelRefusal.already_cancelled,
    "PAYMENT_NOT_PAID": CancelRefusal.not_paid,
    "PAYMENT_NOT_FOUND": CancelRefusal.not_found,
}


def cancel_refusal(error_type: str | None) -> CancelRefusal:
    return CANCEL_REFUSALS.get(error_type or "", CancelRefusal.refused)


_SHORT = re.compile(r"[A-Za-z0-9_.:-]{1,40}")


def short_code(pg_code: str | None, error_type: str | None) -> str:
    """The code kept from a V2 error: the PG's ``pgCode`` when it is a short token,
    else ``portone_v2:<type>``. Messages are never kept."""
    if pg_code and _SHORT.fullmatch(pg_code):
        return pg_code
    return f"portone_v2:{error_type or 'error'}"


def pg_decline(
    pg_code: str | None, pg_message: str | None, error_type: str | None, stage: Stage
) -> Decline:
    """A decline from ``pgCode``/``pgMessage`` (a ``PgProviderError`` or a
    ``FailedPayment.failure``), classified by the v1 table; unfamiliar is ``rejected``."""
    text = " ".join(part for part in (pg_code, pg_message) if part)
    reason = decline_reason(text) if text else DeclineReason.rejected
    return decline(reason, stage, short_code(pg_code, error_type))
