"""Cards: list (BIN + last 4 only, never more) and delete.

Deleting a card is :meth:`CardService.delete`, as the API's ``DELETE /v1/cards/{id}``:
the row is marked deleted and the card's vault record erased for good (audited). The
page asks first: the delete form needs its confirmation box ticked, else it is shown
again (422) and nothing changes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ivr.cards.queries import cards
from ivr.console.access import Deps, Reader, Viewer, Writer
from ivr.console.pages.common import fetch_owned, merchant_names, owned, scope_of
from ivr.console.pages.fields import ConfirmField, IdParam
from ivr.console.pages.lists import Asked, status_list
from ivr.console.pages.payments import word
from ivr.console.render import page
from ivr.domain.states import CardStatus
from ivr.store.tables import Card, Customer

router = APIRouter()
STATUSES = [s.value for s in CardStatus]


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
    deleted: IdParam = None,
    unlocked: IdParam = None,
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
    confirm: ConfirmField = "",
) -> Response:
    card = await fetch_owned(deps.api.db, Card, card_id, who, "card")
    if confirm != "yes":
        return await _confirm(request, deps, who, card.id, who.t("cards.confirm_needed"), 422)
    await deps.api.cards.delete(card.merchant_id, card.id, actor=who.actor, why="console delete")
    return RedirectResponse(f"/console/cards?deleted={card.id}", status_code=303)


@router.post("/cards/{card_id}/unlock")
async def unlock_card(card_id: str, deps: Deps, who: Writer) -> Response:
    """Lift the lock that too many wrong birth dates in payment calls put on the card
    (:meth:`~ivr.cards.verification.CardVerification.unlock`, as the API's
    ``POST /v1/cards/{id}/unlock``; audited)."""
    card = await fetch_owned(deps.api.db, Card, card_id, who, "card")
    await deps.api.verification.unlock(card.merchant_id, card.id, actor=who.actor)
    return RedirectResponse(f"/console/cards?unlocked={card.id}", status_code=303)
