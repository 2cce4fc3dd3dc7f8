"""Bulk jobs: a CSV, .xlsx or JSON list of charges or registrations, processed by the
engine's workers within the PG rate limit; progress, per-row results, a result file in
the uploaded format and a template per kind."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal

from fastapi import File, Form, Query, Request, UploadFile
from starlette.responses import Response

from ivr.api import schemas as S
from ivr.api.route import actor, new_object_id
from ivr.api.routes.common import WRITE_ERRORS, Deps, Me
from ivr.api.routes.common import router as make_router
from ivr.bulk.files import MAX_BYTES, format_of
from ivr.bulk.results import ResultFile, result_file
from ivr.bulk.templates import template
from ivr.bulk.xlsx import MEDIA_TYPE as _XLSX
from ivr.errors import InvalidInput, NotFound

router = make_router("bulk jobs")


async def _view(d: Deps, merchant_id: str, bulk_id: str) -> S.BulkJobOut:
    progress = await d.bulk.jobs.progress(merchant_id, bulk_id)
    invalid = [
        r for r in await d.bulk.results.rows(merchant_id, bulk_id) if r["result"] == "invalid"
    ]
    return S.BulkJobOut(
        id=bulk_id,
        kind=progress["kind"],
        status=str(progress["status"]),
        progress=progress,
        invalid_rows=[{"row": r["row"], "ref": r["ref"], "error": r["error"]} for r in invalid],
    )


async def _submit(
    request: Request, d: Deps, me: Me, data: bytes, fmt: str, kind: str
) -> S.BulkJobOut:
    rid = new_object_id(request, "bulk")
    try:
        return await _view(d, me.merchant_id, rid)  # a retried request: already submitted
    except NotFound:
        pass
    submitted = await d.bulk.submissions.submit(
        me.merchant_id, data, fmt, actor=actor(me), bulk_id=rid, kind=kind
    )
    return await _view(d, me.merchant_id, submitted.bulk_id)


@router.post(
    "/bulk-jobs",
    status_code=201,
    responses=WRITE_ERRORS,
    summary="Submit charges or registrations as JSON; invalid rows are reported, valid rows "
    "processed",
)
async def create_bulk_job(body: S.BulkJobIn, request: Request, d: Deps, me: Me) -> S.BulkJobOut:
    data = json.dumps(body.rows, ensure_ascii=False).encode()
    return await _submit(request, d, me, data, "json", body.kind)


@router.post(
    "/bulk-jobs/upload",
    status_code=201,
    responses=WRITE_ERRORS,
    summary="Submit a CSV (UTF-8 or CP949, with a header line), .xlsx (first sheet, a header "
    "row) or JSON file of charges or registrations",
)
async def upload_bulk_job(
    request: Request,
    d: Deps,
    me: Me,
    file: Annotated[
        UploadFile,
        File(description="CSV (UTF-8 or CP949/EUC-KR) with a header line, .xlsx, or JSON"),
    ],
    kind: Annotated[Literal["charges", "registrations"], Form()] = "charges",
    format: Annotated[
        Literal["csv", "json", "xlsx"] | None,
        Form(description="default: by the file name's extension (.xlsx, .json), else csv"),
    ] = None,
) -> S.BulkJobOut:
    data = await file.read(MAX_BYTES + 1)
    if not data:
        raise InvalidInput("the uploaded file is empty")
    return await _submit(request, d, me, data, format or format_of(file.filename or ""), kind)


@router.get("/bulk-jobs/{bulk_id}")
async def get_bulk_job(bulk_id: str, d: Deps, me: Me) -> S.BulkJobOut:
    return await _view(d, me.merchant_id, bulk_id)


def _download(file: ResultFile, name: str) -> Response:
    return Response(
        file.body,
        media_type=file.media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}.{file.extension}"'},
    )


@router.get(
    "/bulk-jobs/{bulk_id}/results",
    responses={
        200: {
            "description": "one line per row: the result file, by default in the uploaded "
            "file's format (.xlsx for .xlsx, CP949 CSV for CP949 CSV, else UTF-8 CSV)",
            "content": {"text/csv": {}, "application/json": {}, _XLSX: {}},
        },
    },
    response_class=Response,
)
async def bulk_job_results(
    bulk_id: str,
    d: Deps,
    me: Me,
    format: Literal["csv", "json", "xlsx"] | None = Query(
        None, description="default: the uploaded file's format"
    ),
) -> Response:
    rows: list[dict[str, Any]] = await d.bulk.results.rows(me.merchant_id, bulk_id)
    if format == "json":
        return Response(json.dumps(rows, ensure_ascii=False), media_type="application/json")
    source = await d.bulk.results.source(me.merchant_id, bulk_id)
    file = await asyncio.to_thread(result_file, rows, source, format)  # seconds for an .xlsx
    return _download(file, bulk_id)


@router.get(
    "/bulk-templates/{kind}",
    responses={
        200: {
            "description": "the header of the kind's columns, to fill in and upload",
            "content": {"text/csv": {}, _XLSX: {}},
        },
    },
    response_class=Response,
    summary="A template for a bulk file of charges or registrations (CSV or .xlsx)",
)
async def bulk_template(
    kind: Literal["charges", "registrations"],
    me: Me,
    format: Literal["csv", "xlsx"] = Query("xlsx"),
) -> Response:
    return _download(template(kind, format), f"arspay-bulk-{kind}")
