"""The NHN answers, as documented, mapped to the dispatcher's outcomes; and each notice
kind's template parameters (never more than the last 4 card digits)."""

from __future__ import annotations

from typing import Any

import pytest

from ivr.notify.alimtalk.contract import Accepted, Refused, Result, Unknown
from ivr.notify.alimtalk.nhn import _result, _send_outcome
from ivr.notify.alimtalk.params import parameters
from ivr.notify.notices.kinds import NoticeKind


def _answer(ok: bool, code: int, *, seq_code: int = 0) -> dict[str, Any]:
    return {
        "header": {"isSuccessful": ok, "resultCode": code, "resultMessage": "x"},
        "message": {"requestId": "20261207ABC", "senderGroupingKey": None,
                    "sendResults": [{"recipientSeq": 1, "recipientNo": "01012345678",
                                     "resultCode": seq_code, "resultMessage": "x"}]},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (_answer(True, 0), Accepted("20261207ABC", 1)),
        (_answer(False, -1005), Unknown("nhn: duplicate idempotency key")),
        (_answer(False, -1027), Refused("-1027", "nhn: refused, result code -1027")),
        (_answer(False, -1001), Refused("-1001", "nhn: refused, result code -1001")),
        (_answer(True, 0, seq_code=-2001), Refused("-2001",
                                                    "nhn: recipient refused, result code -2001")),
        ({"header": {"isSuccessful": True, "resultCode": 0}},
         Unknown("nhn: accepted without a message")),
        ("not json", Unknown("nhn: 2xx without a header")),
    ],
)  # fmt: skip
def test_send_answers_map_to_outcomes(answer: Any, expected: object) -> None:
    assert _send_outcome(answer) == expected


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("COMPLETED", "1000", Result(final=True, delivered=True, code="1000")),
        ("FAILED", "3018", Result(final=True, delivered=False, code="3018")),
        ("CANCEL", None, Result(final=True, delivered=False, code=None)),
        ("READY", None, Result(final=False, code=None)),
        ("SENDING", None, Result(final=False, code=None)),
    ],
)
def test_results_are_final_only_when_the_status_says_so(
    status: str, code: str | None, expected: Result
) -> None:
    assert _result({"messageStatus": status, "resultCode": code}) == expected


CARD = {"issuer": "신한카드", "last4": "5555444433331111"}
VARIABLES: dict[NoticeKind, dict[str, Any]] = {
    NoticeKind.registration_completed: CARD,
    NoticeKind.payment_approved: {"amount": 30_000, "months": 0, "approval_no": "30012345",
                                  **CARD},
    NoticeKind.payment_failed: {"amount": 30_000, "decline_code": "insufficient_funds"},
    NoticeKind.payment_settled: {"amount": 30_000, "result": "failed",
                                 "decline_code": "lost_or_stolen"},
    NoticeKind.refund: {"amount": 10_000, "full": False, "paid_amount": 30_000,
                        "refunded_amount": 10_000},
    NoticeKind.schedule_prenotice: {"amount": 30_000, "charge_date": "12/5", **CARD},
    NoticeKind.request_expired: {"request_kind": "payment", "product": "스케일링",
                                 "amount": 45_000},
}  # fmt: skip
EXPECTED: dict[NoticeKind, dict[str, str]] = {
    NoticeKind.registration_completed: {"card": "신한카드 끝자리 1111"},
    NoticeKind.payment_approved: {"amount": "30,000", "terms": "일시불",
                                  "card": "신한카드 끝자리 1111", "approval_no": "30012345"},
    NoticeKind.payment_failed: {"amount": "30,000", "reason": "잔액 부족 또는 한도 초과",
                                "next_step": "잔액·한도를 확인하신 뒤 다시 결제하시거나 "
                                             "다른 카드를 이용해 주세요."},
    NoticeKind.payment_settled: {"result": "미승인", "amount": "30,000",
                                 "reason": "분실·도난 신고된 카드",
                                 "next_step": "다른 카드를 이용해 주세요."},
    NoticeKind.refund: {"amount": "10,000", "refund_type": "부분 취소",
                        "paid_amount": "30,000", "remaining": "20,000"},
    NoticeKind.schedule_prenotice: {"charge_date": "12/5", "amount": "30,000",
                                    "card": "신한카드 끝자리 1111"},
    NoticeKind.request_expired: {"what": "스케일링 45,000원 결제"},
}  # fmt: skip


@pytest.mark.parametrize("kind", list(NoticeKind))
def test_every_kind_has_its_parameters_and_no_card_number(kind: NoticeKind) -> None:
    got = parameters(kind, {"merchant": "행복치과", **VARIABLES[kind]})
    assert got == {"merchant": "행복치과", **EXPECTED[kind]}
    assert "5555444433331111" not in repr(got)


def test_a_card_number_in_any_variable_is_masked_and_only_https_receipts_go() -> None:
    got = parameters(NoticeKind.payment_approved, {
        "merchant": "4111 1111 1111 1111", "amount": 1, "receipt_url": "http://x.example/r",
    })  # fmt: skip
    assert "4111" not in got["merchant"]
    assert "receipt_url" not in got
    url = "https://x.example/r"
    ok = parameters(NoticeKind.payment_approved, {"merchant": "m", "amount": 1, "receipt_url": url})
    assert ok["receipt_url"] == "https://x.example/r"
