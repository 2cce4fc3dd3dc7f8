"""Telephony errors.

TelephonyError
├── CallHungUp        the caller (or Asterisk) ended the call; flows unwind on it
├── AriError          an ARI REST call failed (status, never a body with digits)
│   └── ChannelGone   the channel no longer exists (404)
└── AgiError          the FastAGI peer broke protocol or the socket closed
"""

from __future__ import annotations

from ivr.errors import ArspayError


class TelephonyError(ArspayError, error_id="telephony-error"): ...


class CallHungUp(TelephonyError, error_id="call-hung-up"):
    def __init__(self, message: str = "the call has ended") -> None:
        super().__init__(message)


class AriError(TelephonyError, error_id="ari-error"):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ChannelGone(AriError, error_id="channel-gone"): ...


class AgiError(TelephonyError, error_id="agi-error"): ...
