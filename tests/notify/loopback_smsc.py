"""A loopback SMSC for tests on smpp34's server: accepts binds and ``submit_sm``,
answers each with a message id, sends a ``deliver_sm`` delivery receipt per part when
asked for one, and joins concatenated parts back into texts."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from dataclasses import dataclass

import smpp34


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Submitted:
    source: str
    destination: str
    esm_class: int
    data_coding: int
    registered_delivery: int
    short_message: bytes
    message_id: str


class LoopbackSmsc:
    def __init__(self, *, receipt_state: str | None = "DELIVRD") -> None:
        self.port = free_port()
        self.receipt_state = receipt_state
        self.reject_status: int | None = None
        self.receipts_gate = asyncio.Event()  # receipts wait until this is set
        self.receipts_gate.set()
        self.submitted: list[Submitted] = []
        self.binds = 0
        self._server = smpp34.Server("127.0.0.1", self.port, system_id="LOOPBACK")
        self._sessions: dict[str, smpp34.Esme] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._serve: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopbackSmsc:
        await self._server.start()
        self._serve = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in [*self._tasks, self._serve]:
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        await self._server.stop()

    async def _loop(self) -> None:
        while True:
            ev = await self._server.next()
            if isinstance(ev, smpp34.Esme):
                self.binds += 1
                self._sessions[ev.session_id] = ev
            elif isinstance(ev, smpp34.SubmitSmEvent):
                if self.reject_status is not None:
                    ev.reject(self.reject_status)
                    continue
                mid = f"M{next(self._ids):06d}"
                self.submitted.append(
                    Submitted(
                        ev.source_addr,
                        ev.destination_addr,
                        ev.esm_class,
                        ev.data_coding,
                        ev.registered_delivery,
                        ev.short_message,
                        mid,
                    )
                )
                ev.accept(mid)
                esme = self._sessions.get(ev.session_id)
                if esme is not None and ev.registered_delivery & 1 and self.receipt_state:
                    task = asyncio.create_task(self._receipt(esme, ev.destination_addr, mid))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def _receipt(self, esme: smpp34.Esme, handset: str, mid: str) -> None:
        await self.receipts_gate.wait()
        text = (
            f"id:{mid} sub:001 dlvrd:001 submit date:2611281200 done date:2611281201 "
            f"stat:{self.receipt_state} err:000 text:"
        )
        await esme.deliver_sm(
            destination_addr="15880000",
            source_addr=handset,
            esm_class=0x04,
            short_message=text.encode("ascii"),
        )

    def texts(self) -> list[str]:
        """Every message as the handset would show it: parts joined by UDH ref."""
        out: list[str] = []
        groups: dict[tuple[str, int], dict[int, bytes]] = {}
        totals: dict[tuple[str, int], int] = {}
        codings: dict[tuple[str, int], int] = {}
        for sm in self.submitted:
            data = sm.short_message
            if sm.esm_class & 0x40:
                udh_len = data[0]
                udh = data[1 : 1 + udh_len]
                assert udh[:2] == b"\x00\x03", "8-bit concatenation IE expected"
                ref, total, seq = udh[2], udh[3], udh[4]
                key = (sm.destination, ref)
                groups.setdefault(key, {})[seq] = data[1 + udh_len :]
                totals[key] = total
                codings[key] = sm.data_coding
                if len(groups[key]) == total:
                    body = b"".join(groups[key][i] for i in range(1, total + 1))
                    out.append(decode(body, sm.data_coding))
            else:
                out.append(decode(data, sm.data_coding))
        return out


def decode(data: bytes, data_coding: int) -> str:
    if data_coding == 0x08:
        return data.decode("utf-16-be")
    from ivr.notify.sms.segments import _BASIC, _GSM_EXT

    ext = {v: k for k, v in _GSM_EXT.items()}
    chars, escape = [], False
    for b in data:
        if escape:
            chars.append(ext[b])
            escape = False
        elif b == 0x1B:
            escape = True
        else:
            chars.append(_BASIC[b])
    return "".join(chars)
