"""Consent evidence: the MAC-chained records the calls wrote (a merchant user sees its
own merchant's, by ``consent_records.merchant_id``), a record's page (the prompts that
played with their sha256, the key pressed, the details and the chain fields), the
JSON export of a record's call request (the same document as the API's
``GET /v1/call-requests/{id}/consent``) and, for operators, a check of the whole chain
(:meth:`~ivr.consent.ledger.ConsentLedger.verify`).

The chain spans every merchant, so only an operator may verify it; the check and each
export are written to the audit log. Pages show the caller's number masked; the export
carries the evidence as stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ivr.audit import audit
from ivr.consent.evidence import check_records, export_evidence
from ivr.consent.ledger import KINDS, VerifyResult
from ivr.consent.queries import consent_records, record_at
from ivr.console.access import Deps, Reader, Viewer, Writer
from ivr.console.i18n import register
from ivr.console.pages.common import PAGE, merchant_names, scope_of
from ivr.console.render import page
from ivr.errors import NotFound
from ivr.store.tables import ConsentRecord
from ivr.web import views

router = APIRouter()
KIND_CHOICES = sorted(KINDS)
PROBLEMS = {
    "record missing": "consent.problem.missing",
    "prev_hash does not link": "consent.problem.link",
    "hash does not match content": "consent.problem.hash",
    "MAC does not match: rewritten, inserted, or sealed with another key": "consent.problem.mac",
}

register(
    {
        "consent.title": ("동의 기록", "Consent evidence"),
        "consent.record": ("동의 기록", "Consent record"),
        "consent.seq": ("순번", "Seq"),
        "consent.kind": ("종류", "Kind"),
        "consent.kind.registration_consent": ("카드 등록 동의", "Registration consent"),
        "consent.kind.payment_confirmation": ("결제 확인", "Payment confirmation"),
        "consent.kind.card_choice": ("결제 카드 선택", "Card choice"),
        "consent.kind.save_card": ("카드 등록 선택", "Save card for automatic payment"),
        "consent.kind.installment_choice": ("일시불/할부 선택", "Lump sum or installments"),
        "consent.kind.installment_months": ("할부 개월 수", "Installment months"),
        "consent.kind.identity_verification": ("본인 확인", "Identity verified"),
        "consent.call_request": ("ARS 요청", "Call request"),
        "consent.caller": ("발신 번호", "Caller"),
        "consent.did": ("안내 번호", "Number called"),
        "consent.call_id": ("통화 ID", "Call id"),
        "consent.call_started": ("통화 시작", "Call started"),
        "consent.decided": ("선택 시각", "Decided at"),
        "consent.key": ("누른 번호", "Key pressed"),
        "consent.played": ("재생한 안내 멘트", "Prompts played"),
        "consent.prompt": ("멘트", "Prompt"),
        "consent.sound": ("음성 파일", "Sound"),
        "consent.sha256": ("SHA-256", "SHA-256"),
        "consent.details": ("내용", "Details"),
        "consent.chain": ("해시 체인", "Hash chain"),
        "consent.prev_hash": ("이전 해시", "Previous hash"),
        "consent.hash": ("해시", "Hash"),
        "consent.hash_valid": ("해시 재계산", "Hash recomputed"),
        "consent.hash_ok": ("일치", "matches"),
        "consent.hash_bad": ("불일치", "does not match"),
        "consent.recorded": ("기록 시각", "Recorded at"),
        "consent.export": ("JSON 내보내기", "Export JSON"),
        "consent.export_hint": (
            "이 ARS 요청의 모든 동의 기록을 API와 같은 형식으로 내려받습니다.",
            "Downloads every consent record of this call request, in the API's format.",
        ),
        "consent.verify": ("체인 검증", "Verify the chain"),
        "consent.verify_hint": (
            "모든 가맹점의 동의 기록을 처음부터 다시 계산하고 키 기반 MAC과 최근 서명 "
            "체크포인트로 위변조·삽입·삭제를 확인합니다.",
            "Recomputes every merchant's records from the first one and checks their keyed "
            "MACs and the newest signed checkpoint, to detect rewritten, inserted or deleted "
            "records.",
        ),
        "consent.verify_ok": (
            "정상: 기록 {n}건의 체인이 모두 이어집니다.",
            "OK: all {n} records link up.",
        ),
        "consent.verify_bad": (
            "손상: 순번 {seq}에서 체인이 끊어졌습니다 ({problem}). 그 앞의 {n}건은 정상입니다.",
            "Broken at seq {seq} ({problem}). The {n} records before it are intact.",
        ),
        "consent.problem.missing": ("기록 없음", "record missing"),
        "consent.problem.link": ("이전 해시가 맞지 않음", "prev_hash does not link"),
        "consent.problem.hash": ("내용이 해시와 맞지 않음", "hash does not match content"),
        "consent.problem.mac": (
            "MAC 불일치: 고쳐 쓰였거나 끼워 넣어졌거나 다른 키로 봉인됨",
            "MAC does not match: rewritten, inserted, or sealed with another key",
        ),
        "consent.verify_bad_chain": ("손상: {problem}", "Problem: {problem}"),
        "consent.problems": ("발견된 문제", "Problems found"),
        "consent.mac": ("MAC (키 기반)", "MAC (keyed)"),
        "consent.mac_valid": ("MAC 검증", "MAC verified"),
        "consent.mac_legacy": (
            "키 기반 MAC 도입 이전 기록 (봉인으로 보호됨)",
            "recorded before keyed MACs (covered by the seal)",
        ),
        "consent.filter_request": ("ARS 요청 ID", "Call request id"),
    }
)


async def _record(deps: Deps, who: Viewer, record_id: str) -> ConsentRecord:
    async with deps.api.db.sessions() as s:
        row = await scope_of(who).get(s, ConsentRecord, record_id)
    if row is None:
        raise NotFound("consent record not found")
    return row


async def _list_page(
    request: Request,
    deps: Deps,
    who: Viewer,
    *,
    call_request_id: str | None,
    kind: str | None,
    before: int | None,
    verified: VerifyResult | None = None,
    broken_id: str | None = None,
) -> Response:
    async with deps.api.db.sessions() as s:
        rows = await consent_records(
            s, scope_of(who), call_request_id=(call_request_id or "").strip() or None,
            kind=kind if kind in KINDS else None, before=before, limit=PAGE + 1,
        )  # fmt: skip
        names = await merchant_names(s, who)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    problem = None
    if verified is not None and verified.problem is not None:
        key = PROBLEMS.get(verified.problem)
        problem = who.t(key) if key else verified.problem
    return page(request, who, "consent.html", rows=rows, names=names,
                call_request_id=call_request_id or "", kind=kind or "", kinds=KIND_CHOICES,
                next_before=rows[-1].seq if more else None, verified=verified,
                problem=problem, broken_id=broken_id)  # fmt: skip


@router.get("/consent")
async def list_consent(
    request: Request,
    deps: Deps,
    who: Reader,
    call_request_id: Annotated[str | None, Query(max_length=40)] = None,
    kind: Annotated[str | None, Query(max_length=30)] = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    return await _list_page(request, deps, who, call_request_id=call_request_id, kind=kind,
                            before=before)  # fmt: skip


@router.post("/consent/verify")
async def verify_chain(request: Request, deps: Deps, who: Writer) -> Response:
    """Walk the whole chain (operators only) and show the result on the list page; the
    answer is the page itself, so a result is never carried in a URL."""
    who.operator_only()
    result = await deps.api.consent.verify(saved=True)
    broken_id = None
    async with deps.api.db.transaction() as s:
        if result.first_bad_seq is not None:
            broken_id = await record_at(s, scope_of(who), result.first_bad_seq)
        audit(
            s, deps.api.clock, actor=who.actor, action="consent.verify",
            object_type="consent_chain", object_id="consent_records",
            details={"ok": result.ok, "records": result.records,
                     "first_bad_seq": result.first_bad_seq, "problem": result.problem},
        )  # fmt: skip
    return await _list_page(request, deps, who, call_request_id=None, kind=None, before=None,
                            verified=result, broken_id=broken_id)  # fmt: skip


@router.get("/consent/{record_id}")
async def show_record(record_id: str, request: Request, deps: Deps, who: Reader) -> Response:
    row = await _record(deps, who, record_id)
    async with deps.api.db.sessions() as s:
        names = await merchant_names(s, who)
    played = list((row.prompts or {}).get("played") or [])
    [checked] = await check_records(deps.api.consent, [row])
    return page(request, who, "consent_record.html", r=row, played=played, names=names,
                kinds=KIND_CHOICES, hash_valid=checked.hash_valid,
                mac_valid=checked.mac_valid)  # fmt: skip


@router.get("/consent/{record_id}/export")
async def export_record(record_id: str, deps: Deps, who: Reader) -> Response:
    """The consent export of the record's call request: what the API's export answers
    (with the record MACs, a checkpoint and the signed attestation)."""
    row = await _record(deps, who, record_id)
    evidence = await export_evidence(deps.api.consent, row.merchant_id, row.call_request_id)
    body = views.consent_export(row.call_request_id, deps.api.clock.now(), evidence)
    async with deps.api.db.transaction() as s:
        audit(
            s, deps.api.clock, actor=who.actor, action="consent.export",
            object_type="call_request", object_id=row.call_request_id,
            merchant_id=row.merchant_id, details={"records": len(evidence.records)},
        )  # fmt: skip
    safe = "".join(c for c in row.call_request_id if c.isalnum() or c in "_-")
    filename = f"consent-{safe}.json"
    return Response(
        body.model_dump_json(indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
