"""The SMS adapter interface: :class:`SmsSender` sends one message (all its parts);
an adapter that hears delivery receipts (SMPP) is also a :class:`ReceiptSource`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class SendResult:
    """``provider_ref``: the provider's id(s) for the message, comma-separated when
    an SMSC answers each part with its own id; ``parts``: SMS segments sent."""

    provider_ref: str | None
    parts: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery report: ``provider_ref`` is one id as the provider returned it at
    submission; ``state`` the provider's word (``DELIVRD``, ``UNDELIV``, ``EXPIRED`` …)."""

    provider_ref: str
    delivered: bool
    state: str
    error: str | None = None
    at: datetime | None = None


ReceiptHandler = Callable[[Receipt], None]


class SmsSender(Protocol):
    async def send(self, to: str, sender: str, body: str, *, ref: str) -> SendResult:
        """Send ``body`` to ``to`` from ``sender``; ``ref`` is our message id. Raises
        :class:`~ivr.notify.sms.errors.SmsSendError` when it was not accepted."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class ReceiptSource(Protocol):
    def on_receipt(self, handler: ReceiptHandler) -> None:
        """Install the handler; it is called on the event loop for each receipt."""
        ...


def digits(number: str) -> str:
    """``1588-0000`` -> ``15880000`` (addresses go on the wire as digits)."""
    return "".join(ch for ch in number if ch.isdigit() or ch == "+")
