"""Errors of the SMS adapters.

    ArspayError
    └── SmsError                 anything the SMS package raises on purpose
        ├── SmsTooLong           more than 255 parts
        └── SmsSendError         one send failed; ``permanent`` = do not retry

Messages name the adapter and the cause (status code, connection error), never the
message body or the recipient.
"""

from __future__ import annotations

from ivr.errors import ArspayError


class SmsError(ArspayError, error_id="sms-error"): ...


class SmsTooLong(SmsError, error_id="sms-too-long", http_status=422): ...


class SmsSendError(SmsError, error_id="sms-send-failed", http_status=502):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
