"""The SMPP 3.4 adapter: smpplib (synchronous) in one dedicated thread holding one
bound transceiver session.

The event loop hands each message to the thread through a queue and awaits a
future. The thread binds (and re-binds after any failure, waiting ``reconnect_s``),
sends every part as ``submit_sm`` (``registered_delivery`` 1, ``data_coding`` 0x08
for UCS-2, ``esm_class`` 0x40 with the concatenation UDH for multi-part) and waits
for every ``submit_sm_resp``. Between messages it answers ``enquire_link``, sends
its own when idle, and turns ``deliver_sm`` delivery receipts into :class:`Receipt`
objects handed to the event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import queue
import random
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import smpplib.client  # type: ignore[import-untyped]
import smpplib.exceptions  # type: ignore[import-untyped]
import smpplib.smpp  # type: ignore[import-untyped]

from ivr.notify.sms.base import Receipt, ReceiptHandler, SendResult, digits
from ivr.notify.sms.errors import SmsSendError
from ivr.notify.sms.receipts import parse_receipt
from ivr.notify.sms.segments import Encoded, encode
from ivr.settings import SmsSettings

log = logging.getLogger(__name__)

# submit_sm_resp statuses worth another try later (throttled, queue full, system error)
RETRYABLE_STATUS = frozenset({0x08, 0x14, 0x58, 0x64})
_MAX_REF_LEN = 100  # SmsMessage.provider_ref


@dataclass
class _Job:
    to: str
    sender: str
    encoded: Encoded
    future: concurrent.futures.Future[list[str]]
    queued: float = field(default_factory=time.monotonic)


class SmppSender:
    def __init__(
        self, settings: SmsSettings, *, reconnect_s: float = 2.0, enquire_link_s: float = 30.0
    ) -> None:
        self.settings = settings
        self.reconnect_s = reconnect_s
        self.enquire_link_s = enquire_link_s
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handler: ReceiptHandler | None = None
        self._refs = itertools.count(random.randrange(256))
        self.bound = threading.Event()  # set while a session is bound

    # ------------------------------------------------------------------ event-loop side

    def on_receipt(self, handler: ReceiptHandler) -> None:
        self._handler = handler
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()

    def start(self) -> None:
        """Start the session thread (also done by the first :meth:`send`)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="smpp-session", daemon=True)
            self._thread.start()

    async def send(self, to: str, sender: str, body: str, *, ref: str) -> SendResult:
        self.start()
        encoded = encode(body, concat_ref=next(self._refs))
        job = _Job(digits(to), digits(sender), encoded, concurrent.futures.Future())
        self._jobs.put(job)
        budget = self.settings.timeout_s * (len(encoded.parts) + 1)
        try:
            ids = await asyncio.wait_for(asyncio.wrap_future(job.future), budget)
        except TimeoutError:
            raise SmsSendError("smpp: no answer from the SMSC in time") from None
        return SendResult(provider_ref=_join_refs(ids), parts=len(encoded.parts))

    async def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, self.settings.timeout_s + 5)
            self._thread = None

    def _deliver(self, receipt: Receipt) -> None:
        loop, handler = self._loop, self._handler
        if loop is None or handler is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(handler, receipt)

    # ------------------------------------------------------------------ session thread

    def _run(self) -> None:
        client: Any = None
        while not self._stop.is_set():
            if client is None:
                attempt = time.monotonic()
                try:
                    client = self._bind()
                except Exception as exc:
                    self._fail_queued(f"smpp: cannot bind ({_why(exc)})", before=attempt)
                    self._stop.wait(self.reconnect_s)
                    continue
            try:
                job = self._jobs.get(timeout=0.05)
            except queue.Empty:
                job = None
            try:
                if job is not None:
                    self._submit(client, job)
                else:
                    self._idle(client)
            except Exception as exc:
                log.warning("smpp session lost: %s", _why(exc))
                if job is not None and not job.future.done():
                    job.future.set_exception(SmsSendError(f"smpp: {_why(exc)}"))
                self._drop(client, unbind=False)
                client = None
        if client is not None:
            self._drop(client, unbind=True)
        self._fail_queued("smpp: sender closed")

    def _bind(self) -> Any:
        s = self.settings
        client = smpplib.client.Client(
            s.smpp_host, s.smpp_port, timeout=s.timeout_s, allow_unknown_opt_params=True
        )
        try:
            client.connect()
            resp = client.bind_transceiver(
                system_id=s.smpp_system_id, password=s.smpp_password.get_secret_value()
            )
            if resp.is_error():
                raise SmsSendError(f"bind refused, status 0x{int(resp.status):08x}")
        except BaseException:
            self._drop(client, unbind=False)
            raise
        client.last_io = time.monotonic()
        self.bound.set()
        log.info("smpp bound to %s:%s", s.smpp_host, s.smpp_port)
        return client

    def _drop(self, client: Any, *, unbind: bool) -> None:
        self.bound.clear()
        if unbind:
            try:
                client.unbind()
            except Exception as exc:  # the SMSC may close without unbind_resp
                log.debug("smpp unbind: %s", _why(exc))
        with contextlib.suppress(Exception):
            client.disconnect()

    def _fail_queued(self, why: str, *, before: float | None = None) -> None:
        """Fail the waiting jobs (those queued before ``before``, when given): a
        message should not wait out its whole timeout for an SMSC that is down."""
        keep: list[_Job] = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if before is not None and job.queued >= before:
                keep.append(job)
            elif job.future.set_running_or_notify_cancel():
                job.future.set_exception(SmsSendError(why))
        for job in keep:
            self._jobs.put(job)

    def _submit(self, client: Any, job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return  # the caller gave up before we started
        enc = job.encoded
        order: dict[int, int] = {}
        for i, part in enumerate(enc.parts):
            pdu = client.send_message(
                source_addr_ton=0,
                source_addr_npi=0,
                source_addr=job.sender,
                dest_addr_ton=0,
                dest_addr_npi=1,
                destination_addr=job.to,
                short_message=part,
                data_coding=enc.data_coding,
                esm_class=enc.esm_class,
                registered_delivery=1,
            )
            order[int(pdu.sequence)] = i
        ids: list[str | None] = [None] * len(enc.parts)
        failure: SmsSendError | None = None
        deadline = time.monotonic() + self.settings.timeout_s
        while order:
            if time.monotonic() > deadline:
                raise SmsSendError("smpp: submit_sm_resp timed out")
            pdu = client.read_pdu()
            client.last_io = time.monotonic()
            if pdu.command == "submit_sm_resp" and int(pdu.sequence) in order:
                index = order.pop(int(pdu.sequence))
                if pdu.is_error():
                    status = int(pdu.status)
                    failure = SmsSendError(
                        f"smpp: submit_sm refused, status 0x{status:08x}",
                        permanent=status not in RETRYABLE_STATUS,
                    )
                else:
                    ids[index] = _text(pdu.message_id)
            elif pdu.command == "generic_nack":
                raise SmsSendError(f"smpp: generic_nack 0x{int(pdu.status):08x}")
            else:
                self._handle(client, pdu)
        if failure is not None:
            job.future.set_exception(failure)
        else:
            job.future.set_result([i for i in ids if i])

    def _idle(self, client: Any) -> None:
        sock = client._socket
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            pdu = client.read_pdu()
            client.last_io = time.monotonic()
            self._handle(client, pdu)
        elif time.monotonic() - client.last_io > self.enquire_link_s:
            client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=client))
            client.last_io = time.monotonic()

    def _handle(self, client: Any, pdu: Any) -> None:
        """A PDU that is not the answer to our submit: receipts, keep-alives, unbind."""
        if pdu.command == "deliver_sm":
            resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=client)
            resp.sequence = pdu.sequence
            client.send_pdu(resp)
            if int(pdu.esm_class or 0) & 0x3C == 0x04:  # a delivery receipt
                receipt = parse_receipt(
                    pdu.short_message or b"",
                    message_id=_text(getattr(pdu, "receipted_message_id", None)) or None,
                    message_state=getattr(pdu, "message_state", None),
                )
                if receipt is not None:
                    self._deliver(receipt)
        elif pdu.command == "enquire_link":
            resp = smpplib.smpp.make_pdu("enquire_link_resp", client=client)
            resp.sequence = pdu.sequence
            client.send_pdu(resp)
        elif pdu.command == "unbind":
            resp = smpplib.smpp.make_pdu("unbind_resp", client=client)
            resp.sequence = pdu.sequence
            client.send_pdu(resp)
            raise smpplib.exceptions.ConnectionError("SMSC unbound")
        # enquire_link_resp, late submit_sm_resp: nothing to do


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").rstrip("\x00")
    return str(value)


def _why(exc: BaseException) -> str:
    if isinstance(exc, SmsSendError):
        return exc.message
    if isinstance(exc, socket.timeout):
        return "timed out"
    return type(exc).__name__


def _join_refs(ids: list[str]) -> str | None:
    """Every part's id, comma-separated, as many whole ids as fit the column."""
    out = ""
    for i in ids:
        candidate = f"{out},{i}" if out else i
        if len(candidate) > _MAX_REF_LEN:
            break
        out = candidate
    return out or None
