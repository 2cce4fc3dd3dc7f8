"""The generic HTTP provider adapter.

Contract (an operator maps it to their provider with a small proxy if needed)::

    POST {sms.http_url}
    Authorization: Bearer {sms.http_api_key}
    Idempotency-Key: {our message id}
    Content-Type: application/json
    {"to": "01012345678", "from": "15880000", "text": "...", "ref": "sms_...",
     "type": "SMS"}                       # or "LMS": over 90 EUC-KR bytes

    2xx  {"id": "<provider message id>"}   accepted
    408, 429, 5xx, timeout, connection error   retried later
    any other status                           failed at once (permanent)

Delivery reports come back to the engine as ``{"id": ..., "status": "delivered" |
"failed", "error": ...}`` (see docs/sms.md), turned into a :class:`Receipt`.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from ivr.notify.sms.base import Receipt, SendResult, digits
from ivr.notify.sms.errors import SmsSendError
from ivr.notify.sms.segments import part_count, sms_format
from ivr.settings import SmsSettings

RETRYABLE = frozenset({408, 429})


class HttpSender:
    def __init__(self, settings: SmsSettings) -> None:
        if not settings.http_url:
            from ivr.errors import ConfigError

            raise ConfigError("sms.http_url must be set for the http SMS adapter")
        self.url = settings.http_url
        self._key = settings.http_api_key
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def send(self, to: str, sender: str, body: str, *, ref: str) -> SendResult:
        payload = {"to": digits(to), "from": digits(sender), "text": body, "ref": ref,
                   "type": sms_format(body)}  # fmt: skip
        headers = {"Idempotency-Key": ref}
        if self._key.get_secret_value():
            headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        try:
            async with self._client().post(self.url, json=payload, headers=headers) as resp:
                status = resp.status
                data: Any = None
                if 200 <= status < 300:
                    try:
                        data = await resp.json(content_type=None)
                    except ValueError:
                        data = None
        except TimeoutError:
            raise SmsSendError("http: timed out") from None
        except aiohttp.ClientError as exc:
            raise SmsSendError(f"http: {type(exc).__name__}") from None
        if not 200 <= status < 300:
            permanent = status < 500 and status not in RETRYABLE
            raise SmsSendError(f"http: status {status}", permanent=permanent)
        if not isinstance(data, dict) or not isinstance(data.get("id"), str | int):
            raise SmsSendError("http: 2xx without an id in the JSON answer")
        return SendResult(provider_ref=str(data["id"]), parts=part_count(body))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def receipt_from_callback(payload: Any) -> Receipt | None:
    """An HTTP provider's delivery report ``{"id", "status", "error"?}`` as a Receipt."""
    if not isinstance(payload, dict):
        return None
    ref, status = payload.get("id"), payload.get("status")
    if not isinstance(ref, str | int) or status not in ("delivered", "failed"):
        return None
    error = payload.get("error")
    return Receipt(
        provider_ref=str(ref),
        delivered=status == "delivered",
        state=str(status).upper(),
        error=str(error)[:100] if error is not None else None,
    )
