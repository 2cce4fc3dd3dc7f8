"""Page text in Korean (default) and English.

``CATALOG[key] = (korean, english)``; the shell's texts are here, each page module
adds its own with :func:`register`. Templates call ``t("key")``; a key missing from
the catalog is a bug, so :func:`text` raises (a test renders every page in both
languages). Status words come from :data:`STATUS`; unknown ones are shown as they are.
"""

from __future__ import annotations

from typing import Literal

Lang = Literal["ko", "en"]
LANGS: tuple[Lang, ...] = ("ko", "en")

CATALOG: dict[str, tuple[str, str]] = {
    # shell
    "app.title": ("ARS 자동결제 관리", "ARS payments console"),
    "nav.dashboard": ("대시보드", "Dashboard"),
    "nav.customers": ("고객", "Customers"),
    "nav.cards": ("카드", "Cards"),
    "nav.call_requests": ("ARS 요청", "Call requests"),
    "nav.payments": ("결제", "Payments"),
    "nav.schedules": ("정기결제", "Schedules"),
    "nav.bulk": ("대량 작업", "Bulk jobs"),
    "nav.dids": ("DID 번호", "DID pool"),
    "nav.webhooks": ("웹훅", "Webhooks"),
    "nav.sms": ("문자 발송함", "SMS outbox"),
    "nav.consent": ("동의 기록", "Consent evidence"),
    "nav.settings": ("설정", "Settings"),
    "nav.audit": ("감사 로그", "Audit log"),
    "nav.logout": ("로그아웃", "Log out"),
    "lang.switch": ("English", "한국어"),
    "role.operator": ("운영자", "Operator"),
    "role.merchant": ("가맹점", "Merchant"),
    "common.all_merchants": ("전체 가맹점", "All merchants"),
    "common.merchant": ("가맹점", "Merchant"),
    "common.none": ("없음", "None"),
    "common.empty": ("항목이 없습니다.", "Nothing here yet."),
    "common.more": ("더 보기", "More"),
    "common.created": ("생성", "Created"),
    "common.updated": ("변경", "Updated"),
    "common.status": ("상태", "Status"),
    "common.amount": ("금액", "Amount"),
    "common.id": ("ID", "ID"),
    "common.save": ("저장", "Save"),
    "common.create": ("만들기", "Create"),
    "common.cancel": ("취소", "Cancel"),
    "common.back": ("목록으로", "Back to list"),
    "common.customer": ("고객", "Customer"),
    "common.mobile": ("휴대폰", "Mobile"),
    "common.name": ("이름", "Name"),
    "common.card": ("카드", "Card"),
    "common.won": ("원", "KRW"),
    "common.live": ("실시간", "Live"),
    "common.search": ("검색", "Search"),
    # errors
    "error.title": ("오류", "Error"),
    "error.not_found": ("찾을 수 없습니다.", "Not found."),
    "error.forbidden": ("권한이 없습니다.", "You are not allowed to do this."),
    "error.csrf": (
        "보안 토큰이 없거나 맞지 않습니다. 페이지를 새로 고친 뒤 다시 시도하세요.",
        "The security token is missing or wrong. Reload the page and try again.",
    ),
    "error.invalid": (
        "입력값이 올바르지 않습니다. 확인 후 다시 시도하세요.",
        "Some input is not valid. Check it and try again.",
    ),
    "error.generic": ("요청을 처리하지 못했습니다.", "The request could not be processed."),
    # login
    "login.title": ("로그인", "Log in"),
    "login.email": ("이메일", "Email"),
    "login.password": ("비밀번호", "Password"),
    "login.submit": ("로그인", "Log in"),
    "login.failed": ("이메일 또는 비밀번호가 맞지 않습니다.", "Wrong email or password."),
    "login.locked": (
        "로그인 실패가 반복되어 잠시 잠겼습니다. 나중에 다시 시도하세요.",
        "Too many failed logins: the account is locked for a while. Try again later.",
    ),
    # dashboard
    "dash.collected": ("일별 결제 금액 (최근 14일)", "Amount collected per day (last 14 days)"),
    "dash.success_rate": ("결제 성공률", "Charge success rate"),
    "dash.recovery": ("재시도 회복률", "Retry recovery rate"),
    "dash.did_usage": ("DID 사용률", "DID pool usage"),
    "dash.calls_now": ("진행 중인 통화", "Calls in progress"),
    "dash.open_requests": ("진행 중인 ARS 요청", "Open call requests"),
    "dash.health": ("시스템 상태", "System health"),
    "dash.rate_detail": ("성공 {ok} / 시도 {total}", "{ok} succeeded of {total} attempts"),
    "dash.recovery_detail": (
        "재시도로 결제된 {ok} / 재시도한 결제 {total}",
        "{ok} recovered of {total} retried intents",
    ),
    "dash.usage_detail": ("사용 중 {used} / 전체 {total}", "{used} in use of {total}"),
    # call requests
    "creq.title": ("ARS 요청", "Call requests"),
    "creq.kind": ("종류", "Kind"),
    "creq.kind.registration": ("카드 등록", "Card registration"),
    "creq.kind.payment": ("결제 동의", "Payment consent"),
    "creq.did": ("안내 번호", "Number to call"),
    "creq.product": ("상품명", "Product"),
    "creq.calls": ("통화 수", "Calls"),
    "creq.expires": ("만료", "Expires"),
    "creq.new": ("결제 요청 만들기", "New payment request"),
    "creq.new_registration": ("카드 등록 요청 만들기", "New registration request"),
    "creq.sessions": ("통화", "Calls"),
    "creq.steps": ("단계", "Steps"),
    "creq.step": ("단계", "Step"),
    "creq.prompt": ("안내 멘트", "Prompt"),
    "creq.keys": ("입력", "Keys"),
    "creq.outcome": ("결과", "Outcome"),
    "creq.duration": ("소요", "Duration"),
    "creq.caller": ("발신 번호", "Caller"),
    "creq.cancel": ("요청 취소", "Cancel request"),
    "creq.payment": ("결제", "Payment"),
}

STATUS: dict[str, tuple[str, str]] = {
    "created": ("생성", "created"),
    "processing": ("처리 중", "processing"),
    "retry_scheduled": ("재시도 예정", "retry scheduled"),
    "suspended": ("정지", "suspended"),
    "revoked": ("폐기", "revoked"),
    "call_ringing": ("연결 중", "ringing"),
    "call_active": ("통화 중", "in progress"),
    "call_ended": ("종료", "ended"),
    "call_rejected": ("거부", "rejected"),
    "ringing": ("연결 중", "ringing"),
    "rejected": ("거부", "rejected"),
    "dead": ("중단", "dead"),
    "pending": ("대기", "pending"),
    "sending": ("발송 중", "sending"),
    "retrying": ("재시도 대기", "retrying"),
    "invalid": ("오류 행", "invalid"),
    "enabled": ("사용", "enabled"),
    "sms_sent": ("문자 발송", "SMS sent"),
    "in_call": ("통화 중", "in call"),
    "completed": ("완료", "completed"),
    "expired": ("만료", "expired"),
    "cancelled": ("취소", "cancelled"),
    "failed": ("실패", "failed"),
    "succeeded": ("성공", "succeeded"),
    "declined": ("거절", "declined"),
    "unknown": ("확인 중", "unknown"),
    "refunded": ("환불", "refunded"),
    "partially_refunded": ("부분 환불", "partially refunded"),
    "active": ("사용", "active"),
    "deleted": ("삭제", "deleted"),
    "paused": ("일시 중지", "paused"),
    "ended": ("종료", "ended"),
    "queued": ("대기", "queued"),
    "running": ("진행 중", "running"),
    "done": ("완료", "done"),
    "sent": ("발송", "sent"),
    "delivered": ("전달", "delivered"),
    "disabled": ("중지", "disabled"),
    "released": ("해제", "released"),
}


def register(texts: dict[str, tuple[str, str]]) -> None:
    """Add a page module's texts (at import). A key defined twice is a bug."""
    clash = CATALOG.keys() & texts.keys()
    if clash:
        raise ValueError(f"console texts defined twice: {sorted(clash)}")
    CATALOG.update(texts)


def text(lang: Lang, key: str, **values: object) -> str:
    try:
        pair = CATALOG[key]
    except KeyError:
        raise KeyError(f"console text {key!r} is not in the catalog") from None
    template = pair[0] if lang == "ko" else pair[1]
    return template.format(**values) if values else template


def status(lang: Lang, value: str | None) -> str:
    if value is None:
        return "—"
    pair = STATUS.get(value)
    if pair is None:
        return value
    return pair[0] if lang == "ko" else pair[1]


def pick(value: str | None, default: Lang) -> Lang:
    for lang in LANGS:
        if value == lang:
            return lang
    return default
