"""``arspay requests`` and ``arspay sms``."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy import select

from ivr.cli.app import app, emit, fields, with_services
from ivr.domain.states import DELIVERY, CallRequestKind, CallRequestStatus, DeliveryStatus
from ivr.errors import NotFound
from ivr.notify.sms.segments import sms_format
from ivr.phone import normalize
from ivr.store.tables import AlimtalkMessage, CallRequest, SmsMessage
from ivr.wiring import Services

requests_app = typer.Typer(help="Call requests (registration / payment).", no_args_is_help=True)
sms_app = typer.Typer(help="SMS messages and KakaoTalk 알림톡.", no_args_is_help=True)
app.add_typer(requests_app, name="requests")
app.add_typer(sms_app, name="sms")


def _row(r: CallRequest) -> dict[str, Any]:
    shown = fields(r, "id", "kind", "status") | {"did": normalize(r.did).display}
    return shown | fields(r, "mobile", "amount", "expires_at", "calls")


@requests_app.command("create")
def create(
    ctx: typer.Context,
    merchant_id: str,
    customer_id: str,
    kind: CallRequestKind = typer.Option(CallRequestKind.registration),
    product: str = typer.Option(..., help="상품명, read out in the call"),
    amount: int | None = typer.Option(None, help="KRW, payment requests only"),
    minutes: int | None = typer.Option(None, help="lease lifetime (default from settings)"),
) -> None:
    """Create a call request: lease a DID to the customer's mobile and queue the SMS."""

    async def body(s: Services) -> None:
        new = await s.requests.create(
            merchant_id, customer_id, kind, product_name=product, amount=amount,
            lease_minutes=minutes,
        )  # fmt: skip
        emit(ctx, "Call request", [_row(new.request) | {"sms": new.sms.body}])

    with_services(ctx, body)


@requests_app.command("show")
def show(ctx: typer.Context, request_id: str) -> None:
    """Show a call request."""

    async def body(s: Services) -> None:
        emit(ctx, "Call request", [_row(await s.requests.get(None, request_id))])

    with_services(ctx, body)


@requests_app.command("cancel")
def cancel(ctx: typer.Context, request_id: str) -> None:
    """Cancel an open call request and release its DID lease."""

    async def body(s: Services) -> None:
        r = await s.requests.transition(request_id, CallRequestStatus.cancelled, actor="cli")
        emit(ctx, "Call request", [_row(r)])

    with_services(ctx, body)


@requests_app.command("expire")
def expire(ctx: typer.Context) -> None:
    """Expire open requests past their lifetime (the engine does this continuously)."""
    typer.echo(f"{with_services(ctx, lambda s: s.requests.expire_due())} request(s) expired")


@sms_app.command("outbox")
def outbox(
    ctx: typer.Context,
    deliver: bool = typer.Option(False, help="mark pending outbox messages sent first"),
    status: str | None = typer.Option(None, help="only messages in this status"),
    limit: int = typer.Option(20, min=1, max=1000),
) -> None:
    """SMS messages, newest first: status, attempts and the last error (never sent
    anywhere by the development outbox adapter)."""

    async def body(s: Services) -> None:
        if deliver:
            await s.outbox.deliver_pending()
        async with s.db.sessions() as session:
            q = select(SmsMessage).order_by(SmsMessage.id.desc()).limit(limit)
            if status:
                q = q.where(SmsMessage.status == status)
            rows = await session.scalars(q)
            emit(ctx, "SMS", [
                {"id": m.id, "kind": m.kind, "to": m.to, "adapter": m.adapter,
                 "format": sms_format(m.body), "status": m.status, "attempts": m.attempts,
                 "last_error": m.last_error,
                 "sent_at": m.sent_at, "delivered_at": m.delivered_at, "body": m.body}
                for m in rows
            ])  # fmt: skip

    with_services(ctx, body)


@sms_app.command("alimtalk")
def alimtalk(
    ctx: typer.Context,
    status: str | None = typer.Option(None, help="only messages in this status"),
    limit: int = typer.Option(20, min=1, max=1000),
) -> None:
    """KakaoTalk 알림톡 messages of payer notices, newest first: template, status, the
    provider's result code, and the SMS/LMS queued as their fallback (대체 발송)."""

    async def body(s: Services) -> None:
        async with s.db.sessions() as session:
            q = select(AlimtalkMessage).order_by(AlimtalkMessage.id.desc()).limit(limit)
            if status:
                q = q.where(AlimtalkMessage.status == status)
            rows = await session.scalars(q)
            emit(ctx, "알림톡", [
                {"id": m.id, "notice": m.notice_id, "to": m.to, "template": m.template_code,
                 "status": m.status, "attempts": m.attempts, "result": m.result_code,
                 "request_id": m.request_id, "fallback_sms": m.fallback_sms_id,
                 "last_error": m.last_error, "created_at": m.created_at}
                for m in rows
            ])  # fmt: skip

    with_services(ctx, body)


@sms_app.command("retry")
def retry(ctx: typer.Context, sms_id: str) -> None:
    """Send a failed message again (it goes back to pending, attempts reset)."""

    async def body(s: Services) -> None:
        async with s.db.transaction() as session:
            m = await session.get(SmsMessage, sms_id, with_for_update=True)
            if m is None:
                raise NotFound(f"SMS {sms_id} not found")
            m.status = DELIVERY.check(m.status, DeliveryStatus.pending).value
            m.attempts = 0
            m.last_error = None
            m.created_at = s.clock.now()  # the retry schedule counts from here
        emit(ctx, "SMS", [{"id": sms_id, "status": "pending"}])

    with_services(ctx, body)
