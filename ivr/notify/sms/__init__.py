"""SMS delivery (docs/product.md §9): an :class:`SmsSender` interface with three
adapters — SMPP (:mod:`.smpp`), a generic HTTP provider (:mod:`.http`) and the
development outbox (:mod:`.outbox`, the default) — UCS-2 segmentation for Korean
(:mod:`.segments`), and the dispatcher that drains the ``sms_messages`` outbox
(:mod:`.dispatch`)."""

from __future__ import annotations

from ivr.notify.sms.base import Receipt, ReceiptSource, SendResult, SmsSender
from ivr.notify.sms.errors import SmsError, SmsSendError, SmsTooLong
from ivr.notify.sms.factory import build_sender
from ivr.notify.sms.segments import encode, part_count, segments

__all__ = [
    "Receipt",
    "ReceiptSource",
    "SendResult",
    "SmsError",
    "SmsSendError",
    "SmsSender",
    "SmsTooLong",
    "build_sender",
    "encode",
    "part_count",
    "segments",
]
