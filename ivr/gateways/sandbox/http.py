"""HTTP helpers of the sandbox: the PortOne envelope, request fields, faults."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ivr.gateways.sandbox.cards import Failure
from ivr.gateways.sandbox.state import STATE

UID = re.compile(r"[A-Za-z0-9_-]{1,80}")
MERCHANT_UID = re.compile(r"[A-Za-z0-9_-]{1,40}")


class BadRequest(Exception):
    """A request field is missing or malformed: HTTP 400."""


def envelope(
    code: int, message: str | None, response: Any = None, *, status: int = 200
) -> web.Response:
    body = {"code": code, "message": message, "response": response}
    return web.json_response(body, status=status)


def origin(request: web.Request) -> str:
    """The origin of the sandbox's receipt links: ``receipt_base`` when configured (a
    proxy in front), else ``scheme://host[:port]`` as the client reached it."""
    configured: str = request.config_dict[STATE].config.receipt_base
    return configured.rstrip("/") or f"{request.scheme}://{request.host}"


def ok(response: Any) -> web.Response:
    return envelope(0, None, response)


def refused(failure: Failure, code: int = -1) -> web.Response:
    """HTTP 200 with a non-zero code: PortOne's way of saying "no"."""
    return envelope(code, failure.text)


def server_error(failure: Failure) -> web.Response:
    return envelope(-1, failure.text, status=500)


def bad_request(problem: str) -> web.Response:
    return envelope(-1, f"[INVALID_REQUEST] {problem}", status=400)


async def read_body(request: web.Request) -> Mapping[str, Any]:
    """JSON (what the connector sends) or form fields (what the OpenAPI lists)."""
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise BadRequest("body is not JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("body is not an object")
        return data
    return dict(await request.post())


def text(data: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise BadRequest(f"{key} is required")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value


def number(data: Mapping[str, Any], key: str, *, required: bool = True) -> int | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise BadRequest(f"{key} is required")
        return None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise BadRequest(f"{key} must be an integer (KRW)")


def flag(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key)
    return value is True or value in ("true", "1")


def uid(value: str | None, pattern: re.Pattern[str], what: str) -> str:
    if value is None or pattern.fullmatch(value) is None:
        raise BadRequest(f"invalid {what}")
    return value


async def drop(request: web.Request, hang_ms: int) -> web.Response:
    """Simulate a timeout after the PG recorded the payment: hang, then cut the line."""
    if hang_ms:
        await asyncio.sleep(hang_ms / 1000)
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)  # never reaches the client
