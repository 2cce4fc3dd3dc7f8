"""Delivery receipts in the SMPP 3.4 Appendix B text form:
``id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm
stat:DDDDDDD err:E text: …`` — or the ``receipted_message_id`` / ``message_state``
TLVs, which win when present."""

from __future__ import annotations

import re

from ivr.notify.sms.base import Receipt

_FIELD = re.compile(r"(id|stat|err):(\S*)", re.IGNORECASE)
# SMPP 3.4 section 5.2.28 message_state -> the receipt's stat word
_STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV",
           6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}  # fmt: skip
FINAL_FAILURES = frozenset({"EXPIRED", "DELETED", "UNDELIV", "REJECTD", "UNKNOWN"})


def parse_receipt(
    text: bytes | str, *, message_id: str | None = None, message_state: int | None = None
) -> Receipt | None:
    """A :class:`Receipt`, or None when this is not a final receipt we can match."""
    raw = text.decode("latin-1") if isinstance(text, bytes) else text
    fields: dict[str, str] = {}
    for key, value in _FIELD.findall(raw):
        fields.setdefault(key.lower(), value)
    ref = message_id or fields.get("id")
    state = _STATES.get(message_state or 0) or fields.get("stat", "").upper()
    if not ref or not state:
        return None
    if state == "DELIVRD":
        return Receipt(provider_ref=ref, delivered=True, state=state)
    if state in FINAL_FAILURES:
        return Receipt(provider_ref=ref, delivered=False, state=state, error=fields.get("err"))
    return None  # ENROUTE / ACCEPTD: not final
