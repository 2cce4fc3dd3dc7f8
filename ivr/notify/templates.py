"""SMS texts of docs/product.md §9. Transactional only; numbers printed dialable
(``0505-123-4567``) so phones turn them into links; times in Asia/Seoul."""

from __future__ import annotations

from datetime import datetime

from ivr.clock import SEOUL
from ivr.phone import normalize


def won(amount: int) -> str:
    """``53000`` -> ``53,000``."""
    return f"{amount:,}"


def dialable(did: str) -> str:
    return normalize(did).display


def until(at: datetime) -> str:
    """Expiry as Seoul wall time, e.g. ``11/28 14:30``."""
    local = at.astimezone(SEOUL)
    return f"{local.month}/{local.day} {local:%H:%M}"


def registration_sms(merchant: str, did: str, expires_at: datetime) -> str:
    return (
        f"[{merchant}] 자동결제 카드 등록 안내입니다. 아래 번호로 전화해 주세요. "
        f"☎ {dialable(did)} ({until(expires_at)}까지)"
    )


def payment_sms(merchant: str, product: str, amount: int, did: str, expires_at: datetime) -> str:
    return (
        f"[{merchant}] {product} {won(amount)}원 결제 요청입니다. "
        f"☎ {dialable(did)} 로 전화해 결제해 주세요. ({until(expires_at)}까지)"
    )


def receipt_sms(merchant: str, amount: int, issuer: str, last4: str, approval_no: str) -> str:
    return f"[{merchant}] {won(amount)}원 결제 완료 ({issuer} {last4}, 승인 {approval_no})"
