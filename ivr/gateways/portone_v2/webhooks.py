"""PortOne V2 webhooks, verified (docs/portone.md §6).

PortOne signs its V2 webhooks per Standard Webhooks (``webhook-id``,
``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256>`` over
``id.timestamp.body`` with the console's webhook secret): the same scheme arspay signs
its own webhooks with, so :func:`ivr.webhooks.signing.verify` checks them (signature,
and a timestamp within the tolerance). On top of it a message id already handled is a
replay (:meth:`PortOneWebhooks.seen`), for as long as a timestamp can still pass.

The body (webhook version 2024-04-25) is ``{type, timestamp, data}``; ``data`` holds ids
only (``paymentId``, ``transactionId``, ``cancellationId``, ``billingKey``, ``storeId``).
Nothing in it is trusted beyond naming what to look up: the receiver asks the PG
(:meth:`~ivr.gateways.contract.Gateway.find`). Unknown types and fields are ignored, as
PortOne's guide asks.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ivr.webhooks.signing import TOLERANCE_S, InvalidSignature, verify

__all__ = ["InvalidSignature", "PgNotice", "PortOneWebhooks"]


@dataclass(frozen=True)
class PgNotice:
    message_id: str  # webhook-id
    type: str  # e.g. "Transaction.Paid", "BillingKey.Deleted"
    payment_id: str | None  # data.paymentId (Transaction.*)
    billing_key: str | None  # data.billingKey (BillingKey.*)

    @property
    def about_a_payment(self) -> bool:
        return self.type.startswith("Transaction.") and self.payment_id is not None


class PortOneWebhooks:
    def __init__(
        self,
        secret: str,
        *,
        tolerance_s: int = TOLERANCE_S,
        clock: Callable[[], float] = time.time,
        remember: int = 100_000,
    ) -> None:
        if not secret:
            raise ValueError("a PortOne V2 webhook secret is required")
        self._secret, self._tolerance_s, self._clock = secret, tolerance_s, clock
        self._remember = remember
        self._handled: OrderedDict[str, float] = OrderedDict()  # message id -> when

    def verify(self, headers: Mapping[str, str], body: bytes) -> PgNotice:
        """The notice, if signed with the secret within the tolerance; else
        :class:`InvalidSignature`. A signed body that is not a notice is refused too."""
        verify(self._secret, headers, body, now=self._clock(), tolerance_s=self._tolerance_s)
        msg_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidSignature("the webhook body is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise InvalidSignature("the webhook body has no type")
        inner = data.get("data") if isinstance(data.get("data"), dict) else {}
        assert isinstance(inner, dict)
        payment_id, billing_key = inner.get("paymentId"), inner.get("billingKey")
        return PgNotice(
            message_id=msg_id,
            type=data["type"],
            payment_id=payment_id if isinstance(payment_id, str) and payment_id else None,
            billing_key=billing_key if isinstance(billing_key, str) and billing_key else None,
        )

    def seen(self, notice: PgNotice) -> bool:
        """Whether this message id was handled already (a replay or a redelivery)."""
        self._forget_old()
        return notice.message_id in self._handled

    def handled(self, notice: PgNotice) -> None:
        """Remember a message once it was handled (not before: a delivery that failed
        here is PortOne's to retry)."""
        self._handled[notice.message_id] = self._clock()
        self._handled.move_to_end(notice.message_id)
        while len(self._handled) > self._remember:
            self._handled.popitem(last=False)

    def _forget_old(self) -> None:
        """An id older than twice the tolerance cannot pass the timestamp check again."""
        cutoff = self._clock() - 2 * self._tolerance_s
        while self._handled and next(iter(self._handled.values())) < cutoff:
            self._handled.popitem(last=False)
