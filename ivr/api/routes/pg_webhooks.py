"""Notifications from the PG: ``POST /v1/pg/portone-v2/webhooks`` (the ``[gateway]``
settings' account) and ``POST /v1/pg/portone-v2/webhooks/{account_id}`` (a stored PG
account of kind ``portone_v2``: set this URL in that store's PortOne console).

Not a merchant's route: PortOne calls it, signed with the account's webhook secret
(``gateway.webhook_secret``, or the stored account's; without one the route answers
404). The signature and the timestamp are checked
(:mod:`ivr.gateways.portone_v2.webhooks`), a message id handled before is answered
``duplicate`` without being handled again, and a payment notice makes the engine
settle that order now (:mod:`ivr.payments.pg_notices`) — by asking the PG (the account
the order went to), never by believing the body. Errors are problem+json like the rest
of the API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import APIKeyHeader
from starlette.responses import Response

from ivr.api import webhook_schemas as W
from ivr.api.route import deps
from ivr.errors import NotFound
from ivr.gateways.portone_v2.webhooks import InvalidSignature, PortOneWebhooks
from ivr.payments.pg_notices import order_noticed
from ivr.web.problems import problem_for

router = APIRouter(prefix="/v1/pg", tags=["pg"])

# Documents how the route is authenticated; the check itself is the verifier's (it
# needs the body and the other two Standard Webhooks headers).
_signature = APIKeyHeader(
    name="webhook-signature",
    scheme_name="PortOneWebhookSignature",
    description="Standard Webhooks: v1,<base64 HMAC-SHA256 of webhook-id.webhook-timestamp."
    "body> with the PortOne V2 webhook secret (gateway.webhook_secret)",
    auto_error=False,
)

RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad signature, a timestamp outside the tolerance, or not a notice"},
    404: {"description": "no PortOne V2 webhook secret is configured"},
    500: {"description": "internal error (PortOne retries the delivery)"},
}


@router.post(
    "/portone-v2/webhooks",
    response_model=W.PgWebhookOut,
    responses=RESPONSES,
    summary="Receive a PortOne V2 webhook (Standard Webhooks signature)",
    dependencies=[Depends(_signature)],
)
async def portone_v2_webhook(request: Request) -> W.PgWebhookOut | Response:
    verifier: PortOneWebhooks | None = getattr(request.app.state, "portone_webhooks", None)
    return await _receive(request, verifier)


@router.post(
    "/portone-v2/webhooks/{account_id}",
    response_model=W.PgWebhookOut,
    responses=RESPONSES,
    summary="Receive a PortOne V2 webhook for a stored PG account",
    dependencies=[Depends(_signature)],
)
async def portone_v2_account_webhook(
    request: Request, account_id: str
) -> W.PgWebhookOut | Response:
    try:
        verifier = await _account_verifier(request, account_id)
    except NotFound as exc:
        return problem_for(exc).response(request.url.path)
    return await _receive(request, verifier)


async def _account_verifier(request: Request, account_id: str) -> PortOneWebhooks:
    """The verifier of a stored account's webhooks, one per account and secret (kept on
    the app: its memory of handled message ids must outlive a request)."""
    account = await deps(request).pg_accounts.get(account_id)  # NotFound when there is none
    if account.kind != "portone_v2" or not account.webhook_secret or account.id == "default":
        raise NotFound(f"PG account {account_id} takes no PortOne V2 webhooks")
    state = request.app.state
    verifiers: dict[tuple[str, str], PortOneWebhooks] | None = getattr(
        state, "account_webhooks", None
    )
    if verifiers is None:
        verifiers = state.account_webhooks = {}
    key = (account.id, account.version)
    if key not in verifiers:
        verifiers[key] = PortOneWebhooks(account.webhook_secret)
    return verifiers[key]


async def _receive(request: Request, verifier: PortOneWebhooks | None) -> W.PgWebhookOut | Response:
    try:
        if verifier is None:
            raise NotFound("PortOne V2 webhooks are not configured")
        notice = verifier.verify(request.headers, await request.body())
    except (NotFound, InvalidSignature) as exc:
        return problem_for(exc).response(request.url.path)
    if verifier.seen(notice):
        return W.PgWebhookOut(result="duplicate")
    if not notice.about_a_payment:
        verifier.handled(notice)
        return W.PgWebhookOut(result="ignored")
    assert notice.payment_id is not None
    d = deps(request)
    noticed = await order_noticed(d.db, d.charger, d.payments.refunds, notice.payment_id)
    verifier.handled(notice)
    return W.PgWebhookOut(result=noticed.value)
