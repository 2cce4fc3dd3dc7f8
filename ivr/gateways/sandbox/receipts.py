"""``GET /sandbox/receipts/{imp_uid}``: the sandbox's card slip (매출전표) page.

The sandbox answers every paid payment with ``receipt_url`` pointing here (PortOne
gives the PG's slip page). A plain HTML page: the order, the amount, the card as the
PG masks it, the approval number, the times. No token (a payer opens it from the SMS);
404 for a payment it does not know or one that was never paid.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from html import escape

from aiohttp import web

from ivr.gateways.sandbox.state import STATE

_IMP_UID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_KST = timezone(timedelta(hours=9))


def _when(ts: int) -> str:
    return (
        datetime.fromtimestamp(ts, UTC).astimezone(_KST).strftime("%Y-%m-%d %H:%M:%S")
        if ts
        else "—"
    )


async def page(request: web.Request) -> web.Response:
    imp_uid = request.match_info["imp_uid"]
    if _IMP_UID.fullmatch(imp_uid) is None:
        return web.Response(status=404, text="not found")
    p = await request.app[STATE].ledger.by_imp_uid(imp_uid)
    if p is None or p.status not in ("paid", "cancelled"):
        return web.Response(status=404, text="not found")
    rows = [
        ("상태", "취소" if p.status == "cancelled" else "승인"),
        ("주문번호", p.merchant_uid),
        ("상품명", p.name or "—"),
        ("결제금액", f"{p.amount:,}원"),
        ("취소금액", f"{p.cancel_amount:,}원"),
        ("카드", f"{p.card_name or '카드'} {p.card_masked or ''}".strip()),
        ("할부", f"{p.card_quota}개월" if p.card_quota else "일시불"),
        ("승인번호", p.apply_num or "—"),
        ("승인일시", _when(p.paid_at)),
        ("거래번호", p.imp_uid),
    ]
    body = "".join(
        f'<tr><th>{escape(k)}</th><td data-field="{i}">{escape(v)}</td></tr>'
        for i, (k, v) in enumerate(rows)
    )
    html = (
        '<!doctype html><html lang="ko"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>매출전표 (sandbox)</title></head><body>"
        f"<h1>카드 매출전표</h1><p>arspay sandbox PG: 테스트 결제입니다.</p><table>{body}</table>"
        "</body></html>"
    )
    return web.Response(
        text=html,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'"},
    )
