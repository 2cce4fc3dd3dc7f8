"""V2 webhooks from the sandbox, as PortOne sends them (webhook version 2024-04-25):
``{type, timestamp, data}`` signed per Standard Webhooks (``webhook-id``,
``webhook-timestamp``, ``webhook-signature``) with ``v2_webhook_secret``, posted to
``v2_webhook_url`` in the background (three tries), only when both are configured.
They carry ids only; the receiver looks the payment up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from typing import Any

import aiohttp

from ivr.gateways.sandbox.state import SandboxState
from ivr.gateways.sandbox.v2.answers import rfc3339
from ivr.webhooks.signing import headers_for

TRIES = 3


def message(event: str, timestamp: int, data: dict[str, Any]) -> bytes:
    return json.dumps({"type": event, "timestamp": rfc3339(timestamp), "data": data}).encode()


async def _post(url: str, secret: str, body: bytes) -> None:
    msg_id = f"msg_{secrets.token_hex(12)}"
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for attempt in range(TRIES):
            sent_at = int(time.time())  # each try is signed anew
            headers = {
                "content-type": "application/json",
                **headers_for([secret], msg_id, sent_at, body),
            }
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.post(url, data=body, headers=headers) as resp:
                    if resp.status < 300:
                        return
            await asyncio.sleep(0.2 * 2**attempt)


def send(st: SandboxState, event: str, data: dict[str, Any]) -> None:
    """Post ``event`` (``Transaction.Paid``, ``BillingKey.Issued``…) when configured."""
    url, secret = st.config.v2_webhook_url, st.config.v2_webhook_secret
    if not (url and secret):
        return
    body = message(event, st.now(), {**data, "storeId": st.config.v2_store_id})
    task = asyncio.ensure_future(_post(url, secret, body))
    st.background.add(task)
    task.add_done_callback(st.background.discard)
