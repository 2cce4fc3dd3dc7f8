"""Bulk jobs: the merchant's bulk jobs with their progress, an upload form (a CSV, .xlsx
or JSON file of charges or registrations, through
:class:`~ivr.bulk.submit.BulkSubmissions` as the API's upload does), templates to fill
in (CSV, .xlsx), a job page whose progress refreshes live until the job ends, and the
result file (every row: the outcome of the processed ones, the error of the invalid
ones) in the uploaded file's format.

A bad file (empty, not CSV/.xlsx/JSON, no usable header, neither UTF-8 nor CP949) is
refused on the page with 422 and nothing is submitted. The upload form carries a
one-time job id, so a form sent twice (a double click, a browser resubmitting) lands
on the job it already made instead of charging every row again."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from sqlalchemy.exc import IntegrityError
from starlette.responses import RedirectResponse, Response

from ivr.bulk.files import MAX_BYTES, format_of
from ivr.bulk.jobs import KINDS, find_parent, id_taken, parents
from ivr.bulk.progress import BulkJobs
from ivr.bulk.results import ResultFile, result_file
from ivr.bulk.templates import template
from ivr.bulk.xlsx import ZIP_MAGIC
from ivr.console.access import Deps, Reader, Viewer, Writer
from ivr.console.pages.common import (
    PAGE,
    acting_merchant,
    fetch_owned,
    merchant_names,
    scope_of,
    split_page,
)
from ivr.console.pages.fields import Before, IdField
from ivr.console.render import STOP_POLLING, page
from ivr.domain.ids import new_id
from ivr.domain.states import JobStatus
from ivr.errors import InvalidInput, NotFound
from ivr.store.tables import Job, Merchant

router = APIRouter()
SHOWN_INVALID = 100  # invalid rows listed on the job page (all are in the result file)
_BULK_ID = re.compile(r"^bulk_[0-9A-HJKMNP-TV-Z]{26}$")


@dataclass(frozen=True, slots=True)
class JobView:
    """A bulk job as the pages show it (progress from the bulk service)."""

    id: str
    merchant_id: str
    kind: str
    status: str  # running | done
    rows: int
    valid: int
    invalid: int
    processed: int
    pending: int
    created_at: datetime
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status == JobStatus.done.value


def _merchant_of(parent: Job) -> str:
    return str(parent.payload["merchant_id"])


async def _view(bulk: BulkJobs, parent: Job) -> JobView:
    p: dict[str, Any] = {}
    if parent.status != JobStatus.done.value:
        p = await bulk.progress_of(str(parent.dedupe_key))
    valid = int(parent.payload["valid"])
    pending = int(p.get("pending", 0))
    # A job whose rows were all invalid has nothing to process: it is finished although
    # no worker ever marks it done.
    done = parent.status == JobStatus.done.value or pending == 0
    return JobView(
        id=str(parent.dedupe_key),
        merchant_id=_merchant_of(parent),
        kind=str(parent.payload.get("kind", "charges")),
        status=JobStatus.done.value if done else JobStatus.running.value,
        rows=int(parent.payload["rows"]),
        valid=valid,
        invalid=len(parent.payload["invalid"]),
        processed=int(p.get("processed", valid)),
        pending=pending,
        created_at=parent.created_at,
        finished_at=parent.finished_at,
    )


async def _list(deps: Deps, who: Viewer, before: int | None
                ) -> tuple[list[JobView], int | None, dict[str, str]]:  # fmt: skip
    q = parents(scope_of(who))
    if before is not None:
        q = q.where(Job.id < before)
    async with deps.api.db.sessions() as s:
        newest = await s.scalars(q.order_by(Job.id.desc()).limit(PAGE + 1))
        found, last = split_page(list(newest), PAGE)
        names = await merchant_names(s, who)
    views = [await _view(deps.api.bulk.jobs, j) for j in found]
    return views, (last.id if last else None), names


async def _owned_job(deps: Deps, who: Viewer, bulk_id: str) -> Job:
    """The bulk job's parent row if the viewer may see it; else 404."""
    return await find_parent(deps.api.db, scope_of(who), bulk_id)


async def _list_page(request: Request, deps: Deps, who: Viewer, *, before: int | None = None,
                     error: str | None = None, kind: str = "charges",
                     chosen: str = "") -> Response:  # fmt: skip
    jobs, nxt, names = await _list(deps, who, before)
    return page(
        request, who, "bulk.html", jobs=jobs, next_before=nxt, names=names, error=error,
        kind=kind, kinds=KINDS, chosen=chosen, upload_id=new_id("bulk"),
        live=before is None and any(not j.finished for j in jobs),
        status_code=422 if error else 200,
    )  # fmt: skip


@router.get("/bulk")
async def list_jobs(
    request: Request,
    deps: Deps,
    who: Reader,
    before: Before,
) -> Response:
    return await _list_page(request, deps, who, before=before)


@router.get("/bulk/rows")
async def list_rows(request: Request, deps: Deps, who: Reader) -> Response:
    """The first page's rows (htmx); polling stops once none of them is running."""
    jobs, _, names = await _list(deps, who, None)
    code = 200 if any(not j.finished for j in jobs) else STOP_POLLING
    return page(request, who, "fragments/bulk_rows.html", jobs=jobs, names=names,
                status_code=code)  # fmt: skip


def _format(filename: str, content_type: str, data: bytes) -> str | None:
    """``csv``, ``xlsx`` or ``json`` from the file's name, else its type, else its first
    bytes."""
    known = format_of(filename, "")
    if known:
        return known
    if "." in filename.lower().rsplit("/", 1)[-1]:
        return None  # .xls, .pdf …: not a file the engine reads
    if "json" in content_type:
        return "json"
    if "spreadsheetml" in content_type or data.startswith(ZIP_MAGIC):
        return "xlsx"
    if "csv" in content_type or content_type.startswith("text/"):
        return "csv"
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"[", b"{"):
        return "json"
    return "csv" if head else None


@router.post("/bulk")
async def upload(
    request: Request,
    deps: Deps,
    who: Writer,
    file: Annotated[UploadFile | None, File()] = None,
    kind: Annotated[str, Form(max_length=20)] = "charges",
    merchant_id: IdField = "",
    upload_id: IdField = "",
) -> Response:
    """Submit the file; a refused file re-renders the list with the reason (422)."""
    kind = kind if kind in KINDS else "charges"

    async def refuse(message: str) -> Response:
        return await _list_page(request, deps, who, error=message, kind=kind, chosen=merchant_id)

    try:
        target = acting_merchant(who, merchant_id)
    except InvalidInput as exc:
        return await refuse(exc.message)
    await fetch_owned(deps.api.db, Merchant, target, who, "merchant")
    bulk_id = upload_id if _BULK_ID.match(upload_id) else new_id("bulk")
    done = await _already(deps, who, bulk_id)
    if done is not None:
        return done
    data = await file.read(MAX_BYTES + 1) if file is not None else b""
    if file is None or not (file.filename or data):
        return await refuse(who.t("bulk.no_file"))
    if not data.strip(b"\xef\xbb\xbf \t\r\n"):
        return await refuse(who.t("bulk.empty"))
    fmt = _format(file.filename or "", file.content_type or "", data)
    if fmt is None:
        return await refuse(who.t("bulk.not_csv_json"))
    try:
        await deps.api.bulk.submissions.submit(target, data, fmt, actor=who.actor, bulk_id=bulk_id,
                                   kind=kind)  # fmt: skip
    except InvalidInput as exc:
        return await refuse(exc.message)
    except IntegrityError:  # the same form sent twice at once: the other one made it
        done = await _already(deps, who, bulk_id)
        if done is None:
            raise
        return done
    return RedirectResponse(f"/console/bulk/{bulk_id}", status_code=303)


async def _already(deps: Deps, who: Viewer, bulk_id: str) -> Response | None:
    """The job this form already submitted (a resubmission), if any."""
    try:
        await _owned_job(deps, who, bulk_id)
    except NotFound:
        if await id_taken(deps.api.db, bulk_id):
            raise  # another merchant's job: the id is not this form's to use
        return None
    return RedirectResponse(f"/console/bulk/{bulk_id}", status_code=303)


async def _detail(deps: Deps, who: Viewer, bulk_id: str) -> dict[str, Any]:
    parent = await _owned_job(deps, who, bulk_id)
    job = await _view(deps.api.bulk.jobs, parent)
    invalid: list[dict[str, Any]] = list(parent.payload["invalid"])
    async with deps.api.db.sessions() as s:
        merchant = await scope_of(who).get(s, Merchant, job.merchant_id)
    return {
        "job": job,
        "merchant_name": merchant.name if merchant is not None else job.merchant_id,
        "invalid_rows": invalid[:SHOWN_INVALID],
        "more_invalid": max(0, len(invalid) - SHOWN_INVALID),
    }


@router.get("/bulk/{bulk_id}")
async def show_job(bulk_id: str, request: Request, deps: Deps, who: Reader) -> Response:
    return page(request, who, "bulk_job.html", **await _detail(deps, who, bulk_id))


@router.get("/bulk/{bulk_id}/progress")
async def job_progress(bulk_id: str, request: Request, deps: Deps, who: Reader) -> Response:
    """The live part of the job page; once the job has finished htmx stops polling."""
    parent = await _owned_job(deps, who, bulk_id)
    job = await _view(deps.api.bulk.jobs, parent)
    code = STOP_POLLING if job.finished else 200
    return page(request, who, "fragments/bulk_progress.html", job=job, status_code=code)


def _download(file: ResultFile, name: str) -> Response:
    return Response(
        file.body,
        media_type=file.media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}.{file.extension}"'},
    )


@router.get("/bulk/templates/{kind}")
async def kind_template(kind: str, who: Reader, format: str = "xlsx") -> Response:
    """The kind's template (its header row) as .xlsx or CSV."""
    if kind not in KINDS or format not in ("csv", "xlsx"):
        raise NotFound("template not found")
    return _download(template(kind, format), f"arspay-bulk-{kind}")


async def _results(deps: Deps, who: Viewer, bulk_id: str, fmt: str | None) -> Response:
    parent = await _owned_job(deps, who, bulk_id)
    merchant_id = _merchant_of(parent)
    rows = await deps.api.bulk.results.rows(merchant_id, bulk_id)
    source = await deps.api.bulk.results.source(merchant_id, bulk_id)
    file = await asyncio.to_thread(result_file, rows, source, fmt)  # seconds for an .xlsx
    return _download(file, bulk_id)


@router.get("/bulk/{bulk_id}/results")
async def job_results(bulk_id: str, deps: Deps, who: Reader) -> Response:
    """The result file, the same as the API's, in the uploaded file's format (.xlsx,
    CP949 or UTF-8 CSV): processed rows with their outcome and invalid rows with their
    error."""
    return await _results(deps, who, bulk_id, None)


@router.get("/bulk/{bulk_id}/results.csv")
async def job_results_csv(bulk_id: str, deps: Deps, who: Reader) -> Response:
    """The result file as CSV (CP949 when the upload was)."""
    return await _results(deps, who, bulk_id, "csv")
