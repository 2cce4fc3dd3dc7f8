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
from ivr.console.pages.common import PAGE, fetch_owned, merchant_names, scope_of, split_page
from ivr.console.pages.fields import IdParam
from ivr.console.render import page
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


async def _record(deps: Deps, who: Viewer, record_id: str) -> ConsentRecord:
    return await fetch_owned(deps.api.db, ConsentRecord, record_id, who, "consent record")


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
    rows, last = split_page(rows, PAGE)
    problem = None
    if verified is not None and verified.problem is not None:
        key = PROBLEMS.get(verified.problem)
        problem = who.t(key) if key else verified.problem
    return page(request, who, "consent.html", rows=rows, names=names,
                call_request_id=call_request_id or "", kind=kind or "", kinds=KIND_CHOICES,
                next_before=last.seq if last else None, verified=verified,
                problem=problem, broken_id=broken_id)  # fmt: skip


@router.get("/consent")
async def list_consent(
    request: Request,
    deps: Deps,
    who: Reader,
    call_request_id: IdParam = None,
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
