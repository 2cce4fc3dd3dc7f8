"""Notifications from the PG: ``POST /v1/pg/portone-v2/webhooks``.

Not a merchant's route: PortOne calls it, signed with the webhook secret
(``gateway.webhook_secret``; without one the route answers 404). The signature and the
timestamp are checked (:mod:`ivr.gateways.portone_v2.webhooks`), a message id handled
before is answered ``duplicate`` without being handled again, and a payment notice
makes the engine settle that order now (:mod:`ivr.payments.pg_notices`) — by asking the
PG, never by believing the body. Errors are problem+json like the rest of the API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import APIKeyHeader
from starlette.responses import Response

from ivr.api import schemas as S
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
    response_model=S.PgWebhookOut,
    responses=RESPONSES,
    summary="Receive a PortOne V2 webhook (Standard Webhooks signature)",
    dependencies=[Depends(_signature)],
)
async def portone_v2_webhook(request: Request) -> S.PgWebhookOut | Response:
    verifier: PortOneWebhooks | None = getattr(request.app.state, "portone_webhooks", None)
    try:
        if verifier is None:
            raise NotFound("PortOne V2 webhooks are not configured")
        notice = verifier.verify(request.headers, await request.body())
    except (NotFound, InvalidSignature) as exc:
        return problem_for(exc).response(request.url.path)
    if verifier.seen(notice):
        return S.PgWebhookOut(result="duplicate")
    if not notice.about_a_payment:
        verifier.handled(notice)
        return S.PgWebhookOut(result="ignored")
    assert notice.payment_id is not None
    d = deps(request)
    noticed = await order_noticed(d.db, d.charger, d.payments.refunds, notice.payment_id)
    verifier.handled(notice)
    return S.PgWebhookOut(result=noticed.value)
