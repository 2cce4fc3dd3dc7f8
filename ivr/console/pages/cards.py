"""Cards: list (BIN + last 4 only, never more) and delete.

Deleting a card is :meth:`CardService.delete`, as the API's ``DELETE /v1/cards/{id}``:
the row is marked deleted and the card's vault record erased for good (audited). The
page asks first: the delete form needs its confirmation box ticked, else it is shown
again (422) and nothing changes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from ivr.cards.queries import cards
from ivr.console.access import Deps, Reader, Viewer, Writer
from ivr.console.i18n import register
from ivr.console.pages.common import merchant_names, owned, scope_of
from ivr.console.pages.lists import Asked, status_list
from ivr.console.pages.payments import word
from ivr.console.render import page
from ivr.domain.states import CardStatus
from ivr.store.tables import Card, Customer

router = APIRouter()
STATUSES = [s.value for s in CardStatus]

register(
    {
        "cards.title": ("카드", "Cards"),
        "cards.type": ("카드 종류", "Card type"),
        "cards.type.credit": ("신용카드", "Credit"),
        "cards.type.check": ("체크카드", "Check"),
        "cards.type.unknown": ("미확인", "Unknown"),
        "cards.owner": ("명의", "Holder"),
        "cards.owner.personal": ("개인", "Personal"),
        "cards.owner.corporate": ("법인", "Corporate"),
        "cards.deleted_at": ("삭제 시각", "Deleted"),
        "cards.delete": ("삭제", "Delete"),
        "cards.delete_title": ("카드 삭제", "Delete a card"),
        "cards.delete_warning": (
            "삭제하면 이 카드의 보관 정보(vault)가 영구히 지워지며 되돌릴 수 없습니다. "
            "이 카드로는 더 이상 결제할 수 없습니다.",
            "Deleting erases the card's vault record for good; it cannot be undone. "
            "The card can no longer be charged.",
        ),
        "cards.confirm": ("이 카드를 삭제합니다", "Yes, delete this card"),
        "cards.confirm_needed": (
            "삭제하려면 확인란을 선택하세요. 아무것도 변경되지 않았습니다.",
            "Tick the box to confirm the deletion. Nothing was changed.",
        ),
        "cards.deleted": ("카드를 삭제했습니다.", "The card was deleted."),
        "cards.locked": ("전화 결제 잠김", "Phone payments locked"),
        "cards.locked_until": ("{until}까지", "until {until}"),
        "cards.locked_hint": (
            "결제 전화에서 생년월일(사업자등록번호)을 여러 번 틀려 이 카드로는 전화 결제를 "
            "할 수 없습니다. 자동결제는 계속됩니다.",
            "Too many wrong birth dates (business numbers) in payment calls: this card "
            "cannot pay by phone. Automatic charges go on.",
        ),
        "cards.unlock": ("잠금 해제", "Unlock"),
        "cards.unlocked": (
            "카드의 전화 결제 잠금을 해제했습니다.",
            "The card can pay by phone again.",
        ),
    }
)


def labels(who: Viewer) -> dict[str, Any]:
    return {
        "card_type": lambda value: word(who, "cards.type", value),
        "owner_type": lambda value: word(who, "cards.owner", value),
    }


@router.get("/cards")
async def list_cards(
    request: Request,
    deps: Deps,
    who: Reader,
    asked: Asked,
    deleted: Annotated[str | None, Query(max_length=40)] = None,
    unlocked: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    return await status_list(request, deps, who, "cards.html", asked, query=cards,
                             id_column=Card.id, statuses=STATUSES, deleted=bool(deleted),
                             unlocked=bool(unlocked), confirm=None, error=None,
                             now=deps.api.clock.now(), **labels(who))  # fmt: skip


async def _confirm(request: Request, deps: Deps, who: Viewer, card_id: str,
                   error: str | None = None, status_code: int = 200) -> Response:  # fmt: skip
    async with deps.api.db.sessions() as s:
        card = await owned(s, Card, card_id, who, "card")
        customer = await scope_of(who).get(s, Customer, card.customer_id)
        names = await merchant_names(s, who)
    return page(request, who, "cards.html", status_code=status_code, confirm=card,
                customer=customer, names=names, error=error, **labels(who))  # fmt: skip


@router.get("/cards/{card_id}/delete")
async def confirm_delete(card_id: str, request: Request, deps: Deps, who: Reader) -> Response:
    return await _confirm(request, deps, who, card_id)


@router.post("/cards/{card_id}/delete")
async def delete_card(
    card_id: str,
    request: Request,
    deps: Deps,
    who: Writer,
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    async with deps.api.db.sessions() as s:
        card = await owned(s, Card, card_id, who, "card")
    if confirm != "yes":
        return await _confirm(request, deps, who, card.id, who.t("cards.confirm_needed"), 422)
    await deps.api.cards.delete(card.merchant_id, card.id, actor=who.actor, why="console delete")
    return RedirectResponse(f"/console/cards?deleted={card.id}", status_code=303)


@router.post("/cards/{card_id}/unlock")
async def unlock_card(card_id: str, deps: Deps, who: Writer) -> Response:
    """Lift the lock that too many wrong birth dates in payment calls put on the card
    (:meth:`~ivr.cards.verification.CardVerification.unlock`, as the API's
    ``POST /v1/cards/{id}/unlock``; audited)."""
    async with deps.api.db.sessions() as s:
        card = await owned(s, Card, card_id, who, "card")
    await deps.api.verification.unlock(card.merchant_id, card.id, actor=who.actor)
    return RedirectResponse(f"/console/cards?unlocked={card.id}", status_code=303)
