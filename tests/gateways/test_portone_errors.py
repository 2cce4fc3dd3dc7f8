"""The PortOne mapping tables, row by row: every row has a case that it (and no earlier
row) decides, and the sandbox's own messages land on the reasons they mean."""

from __future__ import annotations

import re

import aiohttp
import pytest

from ivr.gateways.declines import (
    KIND,
    PROMPT_TEXT,
    DeclineKind,
    DeclineReason,
    Stage,
    all_prompt_ids,
    decline,
)
from ivr.gateways.errors import CancelRefusal, GatewayUnavailable, OutcomeUnknown
from ivr.gateways.portone import errors as m
from ivr.gateways.sandbox import cards, ledger

R = DeclineReason
T = m.Transport


def blank(cls: type[BaseException]) -> BaseException:
    """An instance without running the constructor (aiohttp's need connection keys)."""
    return cls.__new__(cls)


TRANSPORT_CASES: list[tuple[BaseException, T]] = [
    (aiohttp.InvalidURL("http:///x"), T.unsent_final),
    (blank(aiohttp.NonHttpUrlClientError), T.unsent_final),
    (blank(aiohttp.ClientConnectorCertificateError), T.unsent_final),
    (blank(aiohttp.ClientConnectorError), T.unsent_retry),
    (blank(aiohttp.ClientConnectorDNSError), T.unsent_retry),
    (aiohttp.ConnectionTimeoutError(), T.unsent_retry),
    (aiohttp.SocketTimeoutError(), T.maybe_sent),
    (aiohttp.ServerDisconnectedError(), T.maybe_sent),
    (aiohttp.ClientPayloadError(), T.maybe_sent),
    (aiohttp.ClientOSError(), T.maybe_sent),
    (TimeoutError(), T.maybe_sent),
    (aiohttp.ClientError(), T.maybe_sent),
]


def first_row(rows: tuple[m.TransportRow, ...], exc: BaseException) -> int:
    return next(i for i, row in enumerate(rows) if isinstance(exc, row.error))


@pytest.mark.parametrize(("exc", "expected"), TRANSPORT_CASES)
def test_transport_row(exc: BaseException, expected: T) -> None:
    assert m.transport_outcome(exc) is expected


def test_every_transport_row_is_exercised() -> None:
    hit = {first_row(m.TRANSPORT_ROWS, exc) for exc, _ in TRANSPORT_CASES}
    assert hit == set(range(len(m.TRANSPORT_ROWS)))


def test_transport_errors_by_operation_kind() -> None:
    refused = m.transport_error(blank(aiohttp.ClientConnectorError), op="charge", mutating=True)
    assert isinstance(refused, GatewayUnavailable)
    assert refused.retry_safe
    bad_url = m.transport_error(aiohttp.InvalidURL("x"), op="charge", mutating=True)
    assert isinstance(bad_url, GatewayUnavailable)
    assert not bad_url.retry_safe
    lost = m.transport_error(aiohttp.ServerDisconnectedError(), op="charge", mutating=True,
                             order_id="ord_1")  # fmt: skip
    assert isinstance(lost, OutcomeUnknown)
    assert lost.order_id == "ord_1"
    read = m.transport_error(aiohttp.SocketTimeoutError(), op="find", mutating=False)
    assert isinstance(read, GatewayUnavailable)
    assert read.retry_safe  # a read cannot move money


HTTP_CASES = [
    (200, m.Http.envelope), (201, m.Http.envelope), (401, m.Http.reauth),
    (404, m.Http.not_found), (429, m.Http.throttled), (400, m.Http.rejected),
    (403, m.Http.rejected), (422, m.Http.rejected), (500, m.Http.unknown),
    (502, m.Http.unknown), (503, m.Http.unknown), (504, m.Http.unknown),
    (302, m.Http.unknown), (100, m.Http.unknown),
]  # fmt: skip


@pytest.mark.parametrize(("status", "expected"), HTTP_CASES)
def test_http_row(status: int, expected: m.Http) -> None:
    assert m.http_outcome(status) is expected


def test_every_http_row_is_exercised() -> None:
    hit = {
        next(i for i, r in enumerate(m.HTTP_ROWS) if r.low <= s <= r.high) for s, _ in HTTP_CASES
    }
    assert hit == set(range(len(m.HTTP_ROWS)))


DECLINE_CASES: list[tuple[str | None, DeclineReason]] = [
    ("[INSUFFICIENT_BALANCE] 잔액이 부족합니다.", R.insufficient_funds),
    ("잔액부족", R.insufficient_funds),
    ("[LIMIT_EXCEEDED] 카드 한도가 초과되었습니다.", R.limit_exceeded),
    ("한도초과", R.limit_exceeded),
    ("[LOST_OR_STOLEN_CARD] 분실 또는 도난 신고된 카드입니다.", R.lost_or_stolen),
    ("도난카드", R.lost_or_stolen),
    ("[EXPIRED_CARD] 유효기간이 지난 카드입니다.", R.expired_card),
    ("유효기간오류", R.expired_card),
    ("[INVALID_PASSWORD] 카드 비밀번호가 일치하지 않습니다.", R.wrong_password),
    ("비밀번호 오류", R.wrong_password),
    ("카드 비밀번호 앞 2자리는 필수입니다", R.password_required),
    ("[IDENTITY_MISMATCH] 생년월일 또는 사업자등록번호가 일치하지 않습니다.", R.identity_mismatch),
    ("사업자번호 불일치", R.identity_mismatch),
    ("[INSTALLMENT_NOT_ALLOWED] 할부가 불가능한 카드 또는 금액입니다.", R.installment_unavailable),
    ("[INVALID_CARD_NUMBER] 유효하지 않은 카드번호입니다.", R.invalid_card),
    ("카드정보 인증에 실패하였습니다.", R.invalid_card),  # PortOne's own wording
    ("카드사 통신 장애", R.issuer_temporary),
    ("[TEMPORARY_ERROR] try later", R.issuer_temporary),
    ("[PG_PROCESSING_ERROR] PG사 처리 중 오류가 발생했습니다.", R.pg_error),
    ("거래정지카드", R.rejected),
    ("[CUSTOMER_NOT_FOUND] 등록되지 않은 customer_uid입니다.", R.rejected),
    ("[REJECT_CARD_PAYMENT] 카드사에서 승인을 거절했습니다.", R.rejected),
    # Words no row knows: soft and retried once, not a hard refusal (issue #27).
    ("알 수 없는 오류", R.unclassified),
    ("", R.unclassified),
    (None, R.unclassified),
]


@pytest.mark.parametrize(("message", "expected"), DECLINE_CASES)
def test_decline_row(message: str | None, expected: DeclineReason) -> None:
    assert m.decline_reason(message) is expected


@pytest.mark.parametrize(("message", "pg", "expected"), [
    # The code decides before the words do.
    ("[LIMIT_EXCEEDED] 비밀번호 확인 후 다시 시도", "", R.limit_exceeded),
    ("[INVALID_PASSWORD] 한도초과", "", R.wrong_password),
    # A PG's numeric codes count only for that PG (토스페이먼츠 오류코드, 신용카드).
    ("[19] 승인 실패", "tosspayments", R.wrong_password),
    ("[26] 승인 실패", "tosspayments", R.lost_or_stolen),
    ("[A8] 승인 실패", "tosspayments", R.limit_exceeded),
    ("[12] 승인 실패", "tosspayments", R.installment_unavailable),
    ("[3001] 승인 실패", "tosspayments", R.issuer_temporary),
    ("[A9] 승인 실패", "tosspayments", R.rejected),
    ("[26] 승인 실패", "ksnet", R.unclassified),
    ("[26] 분실카드", "ksnet", R.lost_or_stolen),  # then the words
    ("[NEW_CODE] 처음 보는 문구", "tosspayments", R.unclassified),
])  # fmt: skip
def test_decline_codes_come_first(message: str, pg: str, expected: DeclineReason) -> None:
    assert m.decline_reason(message, pg) is expected


def test_unclassified_declines_are_soft_with_a_prompt() -> None:
    d = decline(R.unclassified, Stage.payment, "portone:-1")
    assert d.kind is DeclineKind.soft
    assert d.retryable
    assert d.prompt_id == "pay.failed.unclassified"
    assert R.unclassified in PROMPT_TEXT


def test_every_sandbox_code_is_in_the_code_table() -> None:
    failures = [f for f in vars(cards).values() if isinstance(f, cards.Failure)]
    assert {("", f.code) for f in failures} <= set(m.DECLINE_CODES)


def test_every_decline_row_is_exercised() -> None:
    hit = set()
    for message, _ in DECLINE_CASES:
        for i, row in enumerate(m.DECLINE_ROWS):
            if row.pattern.search(message or ""):
                hit.add(i)
                break
    assert hit == set(range(len(m.DECLINE_ROWS)))


SANDBOX_DECLINES = [
    (cards.INVALID_CARD_NUMBER, R.invalid_card),
    (cards.REJECTED, R.rejected),
    (cards.LOST_OR_STOLEN, R.lost_or_stolen),
    (cards.EXPIRED, R.expired_card),
    (cards.PASSWORD_REQUIRED, R.password_required),
    (cards.WRONG_PASSWORD, R.wrong_password),
    (cards.IDENTITY, R.identity_mismatch),
    (cards.INSUFFICIENT, R.insufficient_funds),
    (cards.LIMIT, R.limit_exceeded),
    (cards.NO_INSTALLMENT, R.installment_unavailable),
    (cards.PG_ERROR, R.pg_error),
    (cards.NO_CUSTOMER, R.rejected),
]


@pytest.mark.parametrize(("failure", "expected"), SANDBOX_DECLINES)
def test_the_sandbox_messages_mean_what_they_say(
    failure: cards.Failure, expected: DeclineReason
) -> None:
    assert m.decline_reason(failure.text) is expected
    assert m.pg_code(failure.text) == failure.code


CANCEL_CASES = [
    (ledger.CHECKSUM_MISMATCH.text, CancelRefusal.checksum_mismatch),
    (ledger.EXCEEDS.text, CancelRefusal.exceeds_refundable),
    (ledger.ALREADY_CANCELLED.text, CancelRefusal.already_cancelled),
    (ledger.CANCEL_NOT_FOUND.text, CancelRefusal.not_found),
    ("취소할 결제건이 존재하지 않습니다.", CancelRefusal.not_found),  # PortOne's own wording
    (ledger.NOT_PAID.text, CancelRefusal.not_paid),
    ("알 수 없는 오류", CancelRefusal.refused),
    (None, CancelRefusal.refused),
]


@pytest.mark.parametrize(("message", "expected"), CANCEL_CASES)
def test_cancel_row(message: str | None, expected: CancelRefusal) -> None:
    assert m.cancel_refusal(message) is expected


def test_every_cancel_row_is_exercised() -> None:
    hit = set()
    for message, _ in CANCEL_CASES:
        for i, row in enumerate(m.CANCEL_ROWS):
            if row.pattern.search(message or ""):
                hit.add(i)
                break
    assert hit == set(range(len(m.CANCEL_ROWS)))


@pytest.mark.parametrize(
    ("message", "code", "expected"),
    [
        ("[INSUFFICIENT_BALANCE] 잔액이 부족합니다.", 0, "INSUFFICIENT_BALANCE"),
        ("카드정보 인증에 실패하였습니다.", -1, "portone:-1"),
        (None, None, "portone"),
        ("[" + "A" * 41 + "] too long", 1, "portone:1"),
        ("4111-1111-1111-1111 거절", -1, "portone:-1"),  # never copies message text
    ],
)
def test_only_a_short_code_survives(message: str | None, code: int | None, expected: str) -> None:
    assert m.pg_code(message, code) == expected


def test_every_reason_has_a_kind_a_prompt_and_text() -> None:
    assert set(KIND) == set(DeclineReason) == set(PROMPT_TEXT)
    soft = {r for r, k in KIND.items() if k is DeclineKind.soft}
    assert soft == {R.insufficient_funds, R.limit_exceeded, R.issuer_temporary, R.pg_error,
                    R.unclassified}  # fmt: skip
    ids = all_prompt_ids()
    assert "reg.failed.wrong_password" in ids
    assert "pay.failed.insufficient_funds" in ids
    assert all(re.fullmatch(r"(reg|pay)\.failed\.[a-z_]+", i) for i in ids)
