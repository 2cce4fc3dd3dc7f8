"""Notice texts (ivr/notify/notices/texts.py) and the SMS/LMS choice by EUC-KR length."""

from __future__ import annotations

import pytest

from ivr.gateways.declines import DeclineReason
from ivr.notify.notices.kinds import NoticeKind, NoticeSettings
from ivr.notify.notices.texts import DECLINE_WORDS, OTHER_DECLINE, decline_words, sms_text
from ivr.notify.sms.segments import SMS_MAX_BYTES, euckr_bytes, sms_format

CANARY = "4012888888881881"


def test_sms_or_lms_by_euckr_bytes() -> None:
    assert SMS_MAX_BYTES == 90
    assert euckr_bytes("가" * 45) == 90
    assert sms_format("가" * 45) == "SMS"
    assert sms_format("가" * 45 + "1") == "LMS"
    assert sms_format("a" * 90) == "SMS"
    assert sms_format("a" * 91) == "LMS"
    assert euckr_bytes("☎") == 2  # in KS X 1001
    assert euckr_bytes("똠") == 2  # not in EUC-KR (CP949 only): still two bytes
    assert euckr_bytes("😀") == 2


def test_every_decline_reason_has_plain_words_and_a_next_step() -> None:
    for reason in DeclineReason:
        why, then = DECLINE_WORDS[reason.value]
        assert why
        assert then.endswith("주세요.")
    assert decline_words("not_at_pg") == OTHER_DECLINE
    assert decline_words(None) == OTHER_DECLINE


def test_every_kind_has_a_text_and_a_switch() -> None:
    defaults = NoticeSettings()
    assert {k for k in NoticeKind if defaults.enabled(k)} == set(NoticeKind) - {
        NoticeKind.request_expired
    }
    assert defaults.prenotice_days == 3
    v = {"merchant": "행복치과", "amount": 1_000, "issuer": "신한카드", "last4": "1234",
         "months": 0, "charge_date": "12/5", "paid_amount": 1_000, "refunded_amount": 1_000,
         "full": True, "request_kind": "payment", "product": "x", "result": "approved"}  # fmt: skip
    for kind in NoticeKind:
        assert sms_text(kind, v).startswith("[행복치과] ")


@pytest.mark.parametrize(
    ("variables", "shown"),
    [
        ({"last4": CANARY}, "신한카드 끝자리 1881"),  # more than 4 digits: the last 4 only
        ({"last4": None}, "신한카드"),
    ],
)
def test_a_card_is_never_more_than_its_last_4(variables: dict[str, object], shown: str) -> None:
    v = {"merchant": "행복치과", "issuer": "신한카드", **variables}
    text = sms_text(NoticeKind.registration_completed, v)
    assert text == f"[행복치과] 자동결제 카드 등록이 완료되었습니다. ({shown})"
    assert CANARY[:12] not in text


def test_a_card_number_in_free_text_is_masked() -> None:
    v = {"merchant": "행복치과", "request_kind": "payment", "product": f"카드 {CANARY}",
         "amount": 5_000}  # fmt: skip
    text = sms_text(NoticeKind.request_expired, v)
    assert CANARY not in text
    assert "••••••••••••••••" in text
