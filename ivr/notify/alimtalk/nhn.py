"""NHN Cloud Notification — KakaoTalk Bizmessage, 알림톡 API v2.3 (the shapes relied on
are in docs/notices.md, "Alimtalk", with the source pages).

    POST {base}/alimtalk/v2.3/appkeys/{appkey}/messages          send (치환 발송)
         X-Secret-Key, X-NC-API-IDEMPOTENCY-KEY: our message id
         {"senderKey", "templateCode", "recipientList": [{"recipientNo",
          "templateParameter", "buttons"?, "resendParameter": {"isResend": false},
          "recipientGroupingKey": our message id}]}
      -> {"header": {"isSuccessful", "resultCode", "resultMessage"},
          "message": {"requestId", "sendResults": [{"recipientSeq", "resultCode", ...}]}}
    GET  .../messages/{requestId}/{recipientSeq}                 one message's result
      -> {"header", "message": {"messageStatus": COMPLETED|FAILED|CANCEL|…,
                                "resultCode", "resultCodeName", ...}}
    GET  .../messages?startRequestDate=&endRequestDate=&recipientGroupingKey=
      -> {"header", "messageSearchResultResponse": {"messages": [...], "totalCount"}}

The provider's own fallback (``resendParameter.isResend``) is switched off: the engine
queues the fallback itself, in its SMS outbox, so that a notice is told once and the
outbox shows which channel carried it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import aiohttp

from ivr.clock import SEOUL
from ivr.notify.alimtalk.contract import (
    Accepted,
    AlimtalkRequest,
    Refused,
    Result,
    RetryLater,
    SendOutcome,
    Unknown,
)
from ivr.notify.sms.base import digits
from ivr.settings import AlimtalkSettings

RETRYABLE = frozenset({408, 429})
DUPLICATE_KEY = -1005  # the same X-NC-API-IDEMPOTENCY-KEY within 10 minutes
FINAL = {"COMPLETED": True, "FAILED": False, "CANCEL": False}
LOOKUP_RANGE = timedelta(days=29)


def _stamp(at: datetime) -> str:
    """``yyyy-MM-dd HH:mm`` in Korea time (the API's date parameters)."""
    return at.astimezone(SEOUL).strftime("%Y-%m-%d %H:%M")


class NhnAlimtalk:
    def __init__(self, settings: AlimtalkSettings) -> None:
        from ivr.errors import ConfigError

        if not settings.app_key or not settings.sender_key:
            raise ConfigError("alimtalk.app_key and alimtalk.sender_key must be set (nhn)")
        secret = settings.secret_key()
        if not secret.get_secret_value():
            raise ConfigError("alimtalk.secret_key_file must name a file holding the secret")
        self._secret = secret
        self.sender_key = settings.sender_key
        self.base = f"{settings.base_url.rstrip('/')}/alimtalk/v2.3/appkeys/{settings.app_key}"
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def _headers(self) -> dict[str, str]:
        return {
            "X-Secret-Key": self._secret.get_secret_value(),
            "Content-Type": "application/json;charset=UTF-8",
        }

    def body(self, req: AlimtalkRequest) -> dict[str, Any]:
        recipient: dict[str, Any] = {
            "recipientNo": digits(req.to),
            "templateParameter": dict(req.parameters),
            "resendParameter": {"isResend": False},
            "recipientGroupingKey": req.ref,
        }
        if req.button_url:
            # the template's web-link button carries #{receipt_url}; open it outside
            recipient["buttons"] = [{"ordering": 1, "target": "out"}]
        return {
            "senderKey": self.sender_key,
            "templateCode": req.template_code,
            "recipientList": [recipient],
        }

    async def send(self, req: AlimtalkRequest) -> SendOutcome:
        headers = self._headers() | {"X-NC-API-IDEMPOTENCY-KEY": req.ref}
        try:
            async with self._client().post(
                f"{self.base}/messages", json=self.body(req), headers=headers
            ) as resp:
                status = resp.status
                data = await _json(resp) if 200 <= status < 300 else None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # no connection, so no request: nothing reached the provider
            return RetryLater(f"nhn: cannot connect ({type(exc).__name__})")
        except TimeoutError:
            return Unknown("nhn: timed out after sending")
        except aiohttp.ClientError as exc:
            return Unknown(f"nhn: {type(exc).__name__} while waiting for the answer")
        if status >= 500 or status in RETRYABLE:
            return RetryLater(f"nhn: status {status}")
        if not 200 <= status < 300:
            return Refused(str(status), f"nhn: status {status}")
        return _send_outcome(data)

    async def result(self, request_id: str, recipient_seq: int) -> Result | None:
        data = await self._get(f"{self.base}/messages/{request_id}/{recipient_seq}", {})
        if not isinstance(data, dict) or not _header_ok(data):
            return None
        message = data.get("message")
        if not isinstance(message, dict):
            return None
        return _result(message)

    async def find(
        self, ref: str, since: datetime, until: datetime
    ) -> Accepted | RetryLater | None:
        # the API answers for at most a 30-day range, and nothing older than 90 days
        since = max(since, until - LOOKUP_RANGE)
        params = {
            "startRequestDate": _stamp(since - timedelta(minutes=1)),
            "endRequestDate": _stamp(until + timedelta(minutes=1)),
            "recipientGroupingKey": ref,
        }
        data = await self._get(f"{self.base}/messages", params)
        if not isinstance(data, dict) or not _header_ok(data):
            return RetryLater("nhn: message lookup failed")
        found = data.get("messageSearchResultResponse")
        messages = found.get("messages") if isinstance(found, dict) else None
        if not isinstance(messages, list):
            return RetryLater("nhn: message lookup answered without a list")
        for m in messages:
            if isinstance(m, dict) and m.get("recipientGroupingKey") == ref:
                try:
                    return Accepted(str(m["requestId"]), int(m["recipientSeq"]))
                except (KeyError, TypeError, ValueError):
                    return RetryLater("nhn: message lookup answered without ids")
        return None

    async def _get(self, url: str, params: dict[str, str]) -> Any:
        try:
            async with self._client().get(url, params=params, headers=self._headers()) as resp:
                if not 200 <= resp.status < 300:
                    return None
                return await _json(resp)
        except (TimeoutError, aiohttp.ClientError):
            return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _json(resp: aiohttp.ClientResponse) -> Any:
    try:
        return await resp.json(content_type=None)
    except ValueError:
        return None


def _header_ok(data: dict[str, Any]) -> bool:
    header = data.get("header")
    return isinstance(header, dict) and header.get("isSuccessful") is True


def _send_outcome(data: Any) -> SendOutcome:
    if not isinstance(data, dict) or not isinstance(data.get("header"), dict):
        return Unknown("nhn: 2xx without a header")
    header = data["header"]
    code = header.get("resultCode")
    if header.get("isSuccessful") is not True:
        if code == DUPLICATE_KEY:  # an earlier send with this id got there
            return Unknown("nhn: duplicate idempotency key")
        # bad app key or secret, blocked sender, unknown template, invalid parameter:
        # none of them is fixed by sending again
        return Refused(str(code), f"nhn: refused, result code {code}")
    message = data.get("message")
    if not isinstance(message, dict):
        return Unknown("nhn: accepted without a message")
    results = message.get("sendResults")
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        return Unknown("nhn: accepted without send results")
    first = results[0]
    if first.get("resultCode") != 0:
        rc = first.get("resultCode")
        return Refused(str(rc), f"nhn: recipient refused, result code {rc}")
    try:
        return Accepted(str(message["requestId"]), int(first["recipientSeq"]))
    except (KeyError, TypeError, ValueError):
        return Unknown("nhn: accepted without a request id")


def _result(message: dict[str, Any]) -> Result:
    status = message.get("messageStatus")
    code = message.get("resultCode")
    code_s = str(code) if code is not None else None
    if status in FINAL:
        return Result(final=True, delivered=FINAL[str(status)], code=code_s)
    return Result(final=False, code=code_s)
