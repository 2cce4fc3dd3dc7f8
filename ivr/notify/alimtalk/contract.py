"""What the Alimtalk dispatcher asks of a provider, and the answers, as dataclasses.

A send ends in exactly one of:

- :class:`Accepted` — the provider took it; its ids are kept and its result polled;
- :class:`Refused` — it will never go as 알림톡 (no KakaoTalk user, template
  mismatch, sender blocked, bad request): the SMS/LMS fallback goes now;
- :class:`RetryLater` — the provider is down and did *not* take it (connection refused,
  5xx, 429): send again after a backoff, then fall back;
- :class:`Unknown` — the request may have reached the provider (timeout after sending,
  connection cut mid-answer, a duplicate idempotency key): look it up by our id before
  anything else, never send blind and never fall back blind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AlimtalkRequest:
    """``ref``: our message id — the idempotency key and the recipient grouping key
    of the send, saved before it goes out."""

    ref: str
    to: str
    template_code: str
    parameters: dict[str, str] = field(repr=False)
    button_url: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.ref or not self.to or not self.template_code:
            raise ValueError("ref, to and template_code are required")


@dataclass(frozen=True, slots=True)
class Accepted:
    request_id: str
    recipient_seq: int


@dataclass(frozen=True, slots=True)
class Refused:
    code: str
    why: str


@dataclass(frozen=True, slots=True)
class RetryLater:
    why: str


@dataclass(frozen=True, slots=True)
class Unknown:
    why: str


SendOutcome = Accepted | Refused | RetryLater | Unknown


@dataclass(frozen=True, slots=True)
class Result:
    """One accepted message's delivery result: ``final`` False while the provider is
    still working on it; then ``delivered`` or not, with the provider's result code."""

    final: bool
    delivered: bool = False
    code: str | None = None


class AlimtalkProvider(Protocol):
    async def send(self, req: AlimtalkRequest) -> SendOutcome: ...

    async def result(self, request_id: str, recipient_seq: int) -> Result | None:
        """The result, or None when the provider could not be asked now."""
        ...

    async def find(
        self, ref: str, since: datetime, until: datetime
    ) -> Accepted | RetryLater | None:
        """The message sent with ``ref`` between ``since`` and ``until``: Accepted with
        its ids, None when the provider has no such message, RetryLater when it could
        not be asked now."""
        ...

    async def close(self) -> None: ...
