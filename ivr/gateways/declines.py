"""Normalized card declines: a stable reason, soft or hard, and the prompt to play.

docs/product.md §6: *soft* declines (insufficient funds, limit exceeded, a temporary issuer or
PG error, and a refusal whose wording nobody has classified yet) may be retried later;
*hard* declines (lost/stolen, expired, invalid card, wrong password, identity mismatch,
rejected) must not be retried — the payer is asked for another card. docs/product.md §4
names the prompts ``reg.failed.{reason}`` (registration call) and ``pay.failed.{reason}``
(payment call); :func:`decline` builds the id from the reason and the stage, so every
reason has exactly one prompt per stage.

The PG's own message is never kept: only a short code (``pg_code``) such as the
bracketed PG code or ``portone:-1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class DeclineKind(StrEnum):
    soft = "soft"  # retry later (the dunning schedule)
    hard = "hard"  # never retry this card; ask for another one


class DeclineReason(StrEnum):
    insufficient_funds = "insufficient_funds"
    limit_exceeded = "limit_exceeded"
    issuer_temporary = "issuer_temporary"
    pg_error = "pg_error"
    lost_or_stolen = "lost_or_stolen"
    expired_card = "expired_card"
    invalid_card = "invalid_card"
    wrong_password = "wrong_password"  # noqa: S105 - a reason code, not a secret
    identity_mismatch = "identity_mismatch"
    installment_unavailable = "installment_unavailable"
    rejected = "rejected"
    # The PG wants the card password to issue a billing key, and none was sent: a stored
    # card moving to another PG account (the password is never stored; the payer must call)
    password_required = "password_required"  # noqa: S105 - a reason code, not a secret
    # A refusal in words no table knows: soft, so a payer is not cut off by wording we
    # have not seen, but retried at most once per cycle (ivr/billing/retry.py).
    unclassified = "unclassified"


class Stage(StrEnum):
    """Which call the decline happened in; it picks the prompt family."""

    registration = "reg"
    payment = "pay"


KIND: Final[dict[DeclineReason, DeclineKind]] = {
    DeclineReason.insufficient_funds: DeclineKind.soft,
    DeclineReason.limit_exceeded: DeclineKind.soft,
    DeclineReason.issuer_temporary: DeclineKind.soft,
    DeclineReason.pg_error: DeclineKind.soft,
    DeclineReason.lost_or_stolen: DeclineKind.hard,
    DeclineReason.expired_card: DeclineKind.hard,
    DeclineReason.invalid_card: DeclineKind.hard,
    DeclineReason.wrong_password: DeclineKind.hard,
    DeclineReason.identity_mismatch: DeclineKind.hard,
    # Hard for this card *with installments*; the same card can still pay 일시불.
    DeclineReason.installment_unavailable: DeclineKind.hard,
    DeclineReason.rejected: DeclineKind.hard,
    DeclineReason.password_required: DeclineKind.hard,
    DeclineReason.unclassified: DeclineKind.soft,
}

# Canonical Korean text for each reason (docs/product.md §4 gives the first three verbatim);
# the prompt ids are ``{stage}.failed.{reason}``.
PROMPT_TEXT: Final[dict[DeclineReason, str]] = {
    DeclineReason.wrong_password: "카드 비밀번호가 일치하지 않습니다.",
    DeclineReason.expired_card: "유효기간이 지난 카드입니다.",
    DeclineReason.rejected: "사용할 수 없는 카드입니다.",
    DeclineReason.invalid_card: "카드 정보가 올바르지 않습니다.",
    DeclineReason.lost_or_stolen: "분실 또는 도난 신고된 카드로 사용할 수 없습니다.",
    DeclineReason.identity_mismatch: (
        "생년월일 또는 사업자등록번호가 카드 정보와 일치하지 않습니다."
    ),
    DeclineReason.insufficient_funds: "잔액이 부족하거나 한도가 초과되었습니다.",
    DeclineReason.limit_exceeded: "잔액이 부족하거나 한도가 초과되었습니다.",
    DeclineReason.issuer_temporary: (
        "카드사 사정으로 지금은 처리할 수 없습니다. 잠시 후 다시 시도해 주세요."
    ),
    DeclineReason.pg_error: "결제 처리 중 오류가 발생했습니다. 잠시 후 다시 시도해 주세요.",
    DeclineReason.installment_unavailable: "이 카드 또는 금액으로는 할부 결제를 할 수 없습니다.",
    DeclineReason.password_required: "카드 비밀번호 앞 두 자리가 필요합니다.",
    DeclineReason.unclassified: (
        "카드사에서 승인되지 않았습니다. 잠시 후 다시 시도하시거나 다른 카드를 이용해 주세요."
    ),
}


@dataclass(frozen=True)
class Decline:
    kind: DeclineKind
    reason: DeclineReason
    prompt_id: str  # e.g. "pay.failed.insufficient_funds"
    pg_code: str  # short PG code only, never the PG's message

    @property
    def retryable(self) -> bool:
        return self.kind is DeclineKind.soft


def prompt_id(reason: DeclineReason, stage: Stage) -> str:
    return f"{stage.value}.failed.{reason.value}"


def decline(reason: DeclineReason, stage: Stage, pg_code: str) -> Decline:
    return Decline(
        kind=KIND[reason], reason=reason, prompt_id=prompt_id(reason, stage), pg_code=pg_code
    )


def all_prompt_ids() -> frozenset[str]:
    """Every prompt id a decline can ask for (for the prompt manifest)."""
    return frozenset(prompt_id(r, s) for r in DeclineReason for s in Stage)
