"""A local NHN Cloud KakaoTalk Bizmessage (알림톡 v2.3) for the tests and development:
an aiohttp server speaking the documented shapes (see :mod:`.nhn`), its behaviour
scripted per recipient number.

Plans (``FakeNhn.plan[recipient] = ...``):

- ``deliver`` (default) — accepted; its result ``COMPLETED`` / ``1000``;
- ``no_kakao`` — accepted; its result ``FAILED`` / ``3018`` (메시지를 전송할 수 없음:
  not a KakaoTalk user, or the user blocked the channel);
- ``blocked_sender`` — refused at once: header ``-1027`` (the sender is blocked);
- ``down`` — ``500`` for the next ``down_for`` sends (then ``deliver``);
- ``slow_accept`` — accepted and recorded, answered after ``slow_s`` (the client's
  timeout fires first: the outcome is unknown to it, and the lookup finds it);
- ``lost`` — for the next ``down_for`` sends: answered ``500`` after ``slow_s``, never
  recorded (the outcome is unknown to the client; the lookup finds nothing).

A template whose parameters lack one the registered template needs (``templates``)
fails with result ``3016`` (메시지 내용이 템플릿과 일치하지 않음). A repeated
``X-NC-API-IDEMPOTENCY-KEY`` is refused with header ``-1005``, as documented. Results
stay ``READY`` for ``ready_polls`` queries before they are final.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ivr.domain.ids import ulid

SECRET = "fake-nhn-secret"  # noqa: S105 (the fake provider's own, for tests)
APP_KEY = "fakeappkey"
SENDER_KEY = "f" * 40


@dataclass
class FakeMessage:
    request_id: str
    recipient_seq: int
    recipient_no: str
    template_code: str
    parameters: dict[str, str]
    grouping_key: str | None
    buttons: list[dict[str, Any]]
    final_status: str
    result_code: str
    polls: int = 0


@dataclass
class FakeNhn:
    templates: dict[str, set[str]] = field(default_factory=dict)
    plan: dict[str, str] = field(default_factory=dict)
    down_for: int = 2
    slow_s: float = 1.0
    ready_polls: int = 0
    messages: list[FakeMessage] = field(default_factory=list)
    sends: int = 0  # send requests received (any answer)
    lookups: int = 0
    _keys: set[str] = field(default_factory=set)
    _down_left: dict[str, int] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    base_url: str = ""

    # ------------------------------------------------------------------ lifetime

    async def start(self) -> str:
        app = web.Application()
        prefix = "/alimtalk/v2.3/appkeys/{appkey}"
        app.router.add_post(prefix + "/messages", self._send)
        app.router.add_get(prefix + "/messages", self._list)
        app.router.add_get(prefix + "/messages/{request_id}/{seq}", self._one)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def delivered_to(self, recipient: str) -> list[FakeMessage]:
        """Messages that reached ``recipient`` as 알림톡."""
        return [m for m in self.messages
                if m.recipient_no == recipient and m.final_status == "COMPLETED"]  # fmt: skip

    # ------------------------------------------------------------------ handlers

    @staticmethod
    def _header(ok: bool, code: int, message: str) -> dict[str, Any]:
        return {"isSuccessful": ok, "resultCode": code, "resultMessage": message}

    def _auth(self, request: web.Request) -> web.Response | None:
        if request.match_info["appkey"] != APP_KEY:
            return web.json_response({"header": self._header(False, -1000, "Invalid appKey.")})
        if request.headers.get("X-Secret-Key") != SECRET:
            return web.json_response({"header": self._header(False, -1001, "Invalid secretKey.")})
        return None

    async def _send(self, request: web.Request) -> web.Response:
        self.sends += 1
        if (denied := self._auth(request)) is not None:
            return denied
        body = await request.json()
        recipient = body["recipientList"][0]
        number = str(recipient["recipientNo"])
        plan = self.plan.get(number, "deliver")
        if plan == "down":
            left = self._down_left.setdefault(number, self.down_for)
            if left > 0:
                self._down_left[number] = left - 1
                return web.json_response({"message": "unavailable"}, status=500)
        if plan == "lost":
            left = self._down_left.setdefault(number, self.down_for)
            if left > 0:
                self._down_left[number] = left - 1
                await asyncio.sleep(self.slow_s)
                return web.json_response({"message": "lost"}, status=500)
        key = request.headers.get("X-NC-API-IDEMPOTENCY-KEY")
        if key is not None:
            if key in self._keys:
                return web.json_response({"header": self._header(
                    False, -1005,
                    "The same 'X-NC-API-IDEMPOTENCY-KEY' was used within the last 10 minute.",
                )})  # fmt: skip
            self._keys.add(key)
        if plan == "blocked_sender":
            return web.json_response(
                {"header": self._header(False, -1027, "The sender is blocked status.")}
            )
        code = body["templateCode"]
        params = {str(k): str(v) for k, v in (recipient.get("templateParameter") or {}).items()}
        needed = self.templates.get(code)
        if needed is None or not needed <= set(params):
            final, result = "FAILED", "3016"
        elif plan == "no_kakao":
            final, result = "FAILED", "3018"
        else:
            final, result = "COMPLETED", "1000"
        msg = FakeMessage(
            request_id=f"{ulid()[:18]}", recipient_seq=1, recipient_no=number,
            template_code=code, parameters=params,
            grouping_key=recipient.get("recipientGroupingKey"),
            buttons=list(recipient.get("buttons") or []),
            final_status=final, result_code=result,
        )  # fmt: skip
        self.messages.append(msg)
        if plan == "slow_accept":
            await asyncio.sleep(self.slow_s)
        return web.json_response({
            "header": self._header(True, 0, "SUCCESS"),
            "message": {
                "requestId": msg.request_id,
                "senderGroupingKey": None,
                "sendResults": [{
                    "recipientSeq": msg.recipient_seq, "recipientNo": number,
                    "resultCode": 0, "resultMessage": "SUCCESS",
                    "recipientGroupingKey": msg.grouping_key,
                }],
            },
        })  # fmt: skip

    def _status(self, msg: FakeMessage) -> tuple[str, str | None]:
        msg.polls += 1
        if msg.polls <= self.ready_polls:
            return "READY", None
        return msg.final_status, msg.result_code

    def _view(self, msg: FakeMessage, status: str, code: str | None) -> dict[str, Any]:
        return {
            "requestId": msg.request_id, "recipientSeq": msg.recipient_seq,
            "plusFriendId": "@fake", "senderKey": SENDER_KEY,
            "templateCode": msg.template_code, "recipientNo": msg.recipient_no,
            "messageStatus": status, "resultCode": code,
            "resultCodeName": {"1000": "성공", "3016": "메시지 내용이 템플릿과 일치하지 않음",
                               "3018": "메시지를 전송할 수 없음"}.get(code or ""),
            "resendStatus": "RSC01", "resendStatusName": "재발송 미대상",
            "recipientGroupingKey": msg.grouping_key,
        }  # fmt: skip

    async def _one(self, request: web.Request) -> web.Response:
        if (denied := self._auth(request)) is not None:
            return denied
        rid, seq = request.match_info["request_id"], int(request.match_info["seq"])
        for msg in self.messages:
            if msg.request_id == rid and msg.recipient_seq == seq:
                status, code = self._status(msg)
                return web.json_response({"header": self._header(True, 0, "SUCCESS"),
                                          "message": self._view(msg, status, code)})  # fmt: skip
        return web.json_response({"header": self._header(False, -1016, "Message is not found")})

    async def _list(self, request: web.Request) -> web.Response:
        self.lookups += 1
        if (denied := self._auth(request)) is not None:
            return denied
        q = request.query
        if "requestId" not in q and not ("startRequestDate" in q and "endRequestDate" in q):
            return web.json_response({"header": self._header(False, 4, "requestId or dates")})
        found = [
            self._view(m, "READY", None)
            for m in self.messages
            if (q.get("requestId") in (None, m.request_id))
            and (q.get("recipientGroupingKey") in (None, m.grouping_key))
        ]
        return web.json_response({
            "header": self._header(True, 0, "SUCCESS"),
            "messageSearchResultResponse": {"messages": found, "totalCount": len(found)},
        })  # fmt: skip
