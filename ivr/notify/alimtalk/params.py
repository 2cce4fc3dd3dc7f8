"""A notice's 알림톡 template parameters (``#{name}`` in the approved template), from
the notice's variables — the same facts as its SMS text (ivr/notify/notices/texts.py),
in pieces: the merchant, the amount with separators, 일시불/N개월, the card as issuer
and last 4 digits (never more), the approval number, why a payment failed and what to
do next. Every value goes through the card-number mask on the way out.

The templates registered with Kakao use these names (docs/notices.md lists them per
kind). A receipt link, when the PG gave one, is ``#{receipt_url}`` in the template's
web-link button."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ivr.domain.text import mask_card_numbers
from ivr.notify.notices.kinds import NoticeKind
from ivr.notify.notices.texts import card, decline_words, terms
from ivr.notify.templates import won


def _amount(v: Mapping[str, Any], key: str = "amount") -> str:
    return won(int(v.get(key) or 0))


def _approved(v: Mapping[str, Any]) -> dict[str, str]:
    return {
        "amount": _amount(v),
        "terms": terms(int(v.get("months") or 0)),
        "card": card(v),
        "approval_no": str(v.get("approval_no") or "-"),
    }


def _failed(v: Mapping[str, Any]) -> dict[str, str]:
    why, then = decline_words(v.get("decline_code"))
    return {"amount": _amount(v), "reason": why, "next_step": then}


def parameters(kind: NoticeKind, v: Mapping[str, Any]) -> dict[str, str]:
    """The template parameters of a notice (all strings, card-like digits masked)."""
    out: dict[str, str] = {"merchant": str(v.get("merchant") or "")}
    if kind is NoticeKind.registration_completed:
        out["card"] = card(v)
    elif kind is NoticeKind.payment_approved:
        out |= _approved(v)
    elif kind is NoticeKind.payment_failed:
        out |= _failed(v)
    elif kind is NoticeKind.payment_settled:
        approved = v.get("result") == "approved"
        out["result"] = "승인" if approved else "미승인"
        out |= _approved(v) if approved else _failed(v)
    elif kind is NoticeKind.refund:
        paid, refunded = int(v.get("paid_amount") or 0), int(v.get("refunded_amount") or 0)
        out |= {
            "amount": _amount(v),
            "refund_type": "전액 취소" if v.get("full") or paid - refunded <= 0 else "부분 취소",
            "paid_amount": won(paid),
            "remaining": won(max(0, paid - refunded)),
        }
    elif kind is NoticeKind.schedule_prenotice:
        out |= {"charge_date": str(v.get("charge_date") or ""), "amount": _amount(v),
                "card": card(v)}  # fmt: skip
    elif kind is NoticeKind.request_expired:
        registration = v.get("request_kind") == "registration"
        out["what"] = (
            "자동결제 카드 등록" if registration else f"{v.get('product')} {_amount(v)}원 결제"
        )
    if receipt := receipt_url(v):
        out["receipt_url"] = receipt
    return {k: mask_card_numbers(s) for k, s in out.items()}


def receipt_url(v: Mapping[str, Any]) -> str | None:
    """The receipt link of an approved payment, when the PG gave one (https only)."""
    url = v.get("receipt_url")
    return url if isinstance(url, str) and url.startswith("https://") else None
