"""How the V2 mount answers: JSON objects, typed errors ``{type, message}`` with their
documented status, RFC 3339 times; and reading V2 request bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ivr.gateways.sandbox.cards import Failure
from ivr.gateways.sandbox.http import BadRequest


def ok(body: Mapping[str, Any]) -> web.Response:
    return web.json_response(dict(body))


def error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response({"type": error_type, "message": message}, status=status)


def invalid(problem: str) -> web.Response:
    return error(400, "INVALID_REQUEST", problem)


def pg_provider(failure: Failure) -> web.Response:
    """``PgProviderError`` (HTTP 502): the card company or PG said no."""
    body = {
        "type": "PG_PROVIDER",
        "message": failure.text,
        "pgCode": failure.code,
        "pgMessage": failure.message,
    }
    return web.json_response(body, status=502)


def rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


async def body(request: web.Request) -> Mapping[str, Any]:
    """The JSON body; for GET, the ``requestBody`` query field (the V2 guide's "GET
    요청 시 body 대신 query 사용하기") when there is no body."""
    raw = request.query.get("requestBody") if request.method == "GET" else None
    try:
        data = json.loads(raw) if raw is not None else await request.json()
    except ValueError:
        raise BadRequest("body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("body is not an object")
    return data


def obj(data: Mapping[str, Any], key: str, *, required: bool = False) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{key} must be an object")
    return value


def text(data: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise BadRequest(f"{key} is required")
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{key} must be a non-empty string")
    return value


def integer(data: Mapping[str, Any], key: str, *, required: bool = True) -> int | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if type(value) is not int:
        raise BadRequest(f"{key} must be an integer")
    return value
