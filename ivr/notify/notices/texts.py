"""The Korean text of each notice kind (docs/notices.md has the matrix), rendered from
the notice's variables. Transactional only; amounts with thousands separators; a card
appears as its issuer and last 4 digits, never more — and any card-like digit run that
reached a variable anyway is masked on the way out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ivr.domain.text import mask_card_numbers
from ivr.notify.notices.kinds import NoticeKind
from ivr.notify.templates import won

# A decline reason (ivr.gateways.declines.DeclineReason, or an engine code) -> what
# happened, in plain words, and what the payer can do next.
_BALANCE = "잔액·한도를 확인하신 뒤 다시 결제하시거나 다른 카드를 이용해 주세요."
DECLINE_WORDS: dict[str, tuple[str, str]] = {
    "insufficient_funds": ("잔액 부족 또는 한도 초과", _BALANCE),
    "limit_exceeded": ("잔액 부족 또는 한도 초과", _BALANCE),
    "issuer_temporary": ("카드사 일시 장애", "잠시 후 다시 결제해 주세요."),
    "pg_error": ("결제 처리 중 일시 오류", "잠시 후 다시 결제해 주세요."),
    "lost_or_stolen": ("분실·도난 신고된 카드", "다른 카드를 이용해 주세요."),
    "expired_card": ("유효기간이 지난 카드", "새 카드로 다시 결제해 주세요."),
    "invalid_card": ("카드 정보 불일치", "카드 정보를 확인하신 뒤 다시 결제해 주세요."),
    "wrong_password": ("카드 비밀번호 불일치", "비밀번호를 확인하신 뒤 다시 결제해 주세요."),
    "password_required": ("카드 비밀번호 확인 필요",
                          "전화로 카드 비밀번호 앞 두 자리를 입력해 다시 결제해 주세요."),
    "identity_mismatch": ("생년월일 또는 사업자번호 불일치",
                          "카드 명의자의 정보로 다시 결제해 주세요."),
    "installment_unavailable": ("할부가 안 되는 카드 또는 금액", "일시불로 다시 결제해 주세요."),
    "rejected": ("카드사 승인 거절", "다른 카드를 이용하시거나 카드사에 문의해 주세요."),
    "unclassified": ("카드사 승인 거절", "잠시 후 다시 결제하시거나 다른 카드를 이용해 주세요."),
}  # fmt: skip
OTHER_DECLINE = ("결제 처리 오류", "잠시 후 다시 결제해 주세요.")


def decline_words(code: str | None) -> tuple[str, str]:
    """(why, what to do next) for a decline code; engine codes (``not_at_pg``,
    ``no_billing_key``…) and unknown ones get the generic pair."""
    return DECLINE_WORDS.get(code or "", OTHER_DECLINE)


def terms(months: int) -> str:
    return f"{months}개월 할부" if months else "일시불"


def card(v: Mapping[str, Any]) -> str:
    """``신한카드 끝자리 1234`` (only the last 4 digits, whatever the variable held)."""
    last4 = "".join(ch for ch in str(v.get("last4") or "") if ch.isdigit())[-4:]
    issuer = str(v.get("issuer") or "카드")
    return f"{issuer} 끝자리 {last4}" if last4 else issuer


def _approved(v: Mapping[str, Any], lead: str) -> str:
    parts = [terms(int(v.get("months") or 0)), card(v)]
    if v.get("approval_no"):
        parts.append(f"승인번호 {v['approval_no']}")
    amount = won(int(v["amount"]))
    text = f"[{v['merchant']}] {lead}{amount}원 결제가 승인되었습니다. ({', '.join(parts)})"
    if v.get("receipt_url"):
        text += f" 영수증 {v['receipt_url']}"
    return text


def _failed(v: Mapping[str, Any], lead: str) -> str:
    why, then = decline_words(v.get("decline_code"))
    return (
        f"[{v['merchant']}] {lead}{won(int(v['amount']))}원 결제가 승인되지 않았습니다"
        f"(청구되지 않음). 사유: {why}. {then}"
    )


def registration_completed(v: Mapping[str, Any]) -> str:
    return f"[{v['merchant']}] 자동결제 카드 등록이 완료되었습니다. ({card(v)})"


def payment_approved(v: Mapping[str, Any]) -> str:
    return _approved(v, "")


def payment_failed(v: Mapping[str, Any]) -> str:
    return _failed(v, "")


def payment_settled(v: Mapping[str, Any]) -> str:
    if v.get("result") == "approved":
        return _approved(v, "확인 중이던 ")
    return _failed(v, "확인 중이던 ")


def refund(v: Mapping[str, Any]) -> str:
    amount = won(int(v["amount"]))
    if v.get("full"):
        return f"[{v['merchant']}] {amount}원 결제가 전액 취소되었습니다."
    paid = won(int(v["paid_amount"]))
    left = int(v["paid_amount"]) - int(v["refunded_amount"])
    if left <= 0:  # the last part of a payment refunded in parts
        return f"[{v['merchant']}] 결제 {paid}원 중 남은 {amount}원이 취소되어 전액 취소되었습니다."
    return (
        f"[{v['merchant']}] 결제 {paid}원 중 {amount}원이 부분 취소되었습니다. "
        f"(남은 결제 {won(left)}원)"
    )


def schedule_prenotice(v: Mapping[str, Any]) -> str:
    return (
        f"[{v['merchant']}] {v['charge_date']} 정기결제 {won(int(v['amount']))}원이 "
        f"등록하신 카드({card(v)})로 결제될 예정입니다."
    )


def request_expired(v: Mapping[str, Any]) -> str:
    what = (
        "자동결제 카드 등록"
        if v.get("request_kind") == "registration"
        else f"{v.get('product')} {won(int(v.get('amount') or 0))}원 결제"
    )
    return (
        f"[{v['merchant']}] {what} 요청의 유효 시간이 지났습니다. "
        f"필요하시면 {v['merchant']}에 다시 요청해 주세요."
    )


SMS: dict[NoticeKind, Callable[[Mapping[str, Any]], str]] = {
    NoticeKind.registration_completed: registration_completed,
    NoticeKind.payment_approved: payment_approved,
    NoticeKind.payment_failed: payment_failed,
    NoticeKind.payment_settled: payment_settled,
    NoticeKind.refund: refund,
    NoticeKind.schedule_prenotice: schedule_prenotice,
    NoticeKind.request_expired: request_expired,
}


def sms_text(kind: NoticeKind, variables: Mapping[str, Any]) -> str:
    """The SMS/LMS body of a notice (card-like digit runs masked)."""
    return mask_card_numbers(SMS[kind](variables))
