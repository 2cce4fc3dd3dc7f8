"""A real SIP peer for the SIPp driver's tests: a second SIPp acting as the called side.

No Asterisk here. The peer (UAS) is a SIPp scenario generated below; it answers (or
rejects), logs every SIP message it gets (``-trace_msg``) so the INFO bodies can be
checked in order, and either waits for our BYE (answering every INFO meanwhile) or hangs
up itself. RFC 4733 digits are decoded from a loopback capture with tshark (skipped when
tshark is missing or cannot capture).

Ports: our calls use 5100-5199 and media 16000-17799; the peer 5090-5099 and media
17800-17999 (Asterisk uses 5070, 8088 and 10000-10999).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ivr.testing.sipp import (
    CallHandle,
    CallResult,
    CallScript,
    SippCall,
    run_calls,
    start_call,
)

SIP_PORTS = range(5100, 5200)
MEDIA_PORTS = range(16000, 17800)
PEER_PORTS = range(5090, 5100)
PEER_MEDIA_PORTS = range(17800, 18000, 4)
EVENT_CHARS = "0123456789*#"


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is not installed (Debian package sip-tester)")
        pytest.skip(f"{tool} not installed")
    return path


# --------------------------------------------------------------------------- the peer (UAS)

_UAS_OK = """  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>"""


def uas_scenario(mode: str, *, hangup_after_ms: int = 0, reject: int = 0) -> str:
    """The called side. ``mode``: ``wait_bye`` (answer INFOs until BYE), ``hangup``
    (BYE after ``hangup_after_ms``), ``reject`` (answer ``reject`` and expect ACK)."""
    # SIPp refuses variables that are set but never used: capture only when hanging up.
    keep = """
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="caller"/>
      <ereg regexp="sip:[^@>]*" search_in="hdr" header="To:" check_it="true" assign_to="callee"/>
    </action>
  """
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<scenario name="test peer">\n'
        f'  <recv request="INVITE" rrs="true">{keep if mode == "hangup" else ""}</recv>\n'
    )

    def answer(code: str, sdp: bool) -> str:
        body = (
            "Content-Type: application/sdp\nContent-Length: [len]\n\nv=0\n"
            "o=peer 1 1 IN IP[local_ip_type] [local_ip]\ns=-\nc=IN IP[media_ip_type] [media_ip]\n"
            "t=0 0\nm=audio [media_port] RTP/AVP 0 96\na=rtpmap:0 PCMU/8000\n"
            "a=rtpmap:96 telephone-event/8000\na=fmtp:96 0-16\n"
            if sdp
            else "Content-Length: 0\n\n"
        )
        return f"""  <send><![CDATA[
SIP/2.0 {code}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
{body}]]></send>
"""

    if mode == "reject":
        return head + answer(f"{reject} Rejected", False) + '  <recv request="ACK"/>\n</scenario>\n'
    out = head + answer("180 Ringing", False) + answer("200 OK", True) + '  <recv request="ACK"/>\n'
    if mode == "hangup":
        out += f"""  <pause milliseconds="{hangup_after_ms}"/>
  <send><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <[$callee]>;tag=[pid]SIPpTag01[call_number]
To:[$caller]
Call-ID: [call_id]
CSeq: 1 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""
        return out
    return (
        out
        + """  <label id="loop"/>
  <recv request="INFO" optional="true" next="info"/>
  <recv request="BYE"/>
"""
        + _UAS_OK
        + """
  <nop next="end"/>
  <label id="info"/>
"""
        + _UAS_OK.replace("<send>", '<send next="loop">', 1)
        + """
  <label id="end"/>
</scenario>
"""
    )


@dataclass
class SipMessage:
    at: float  # seconds since the epoch, from SIPp's message log
    direction: str  # "received" or "sent"
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0]

    def header(self, name: str) -> str:
        m = re.search(rf"^{re.escape(name)}:\s*(.*)$", self.text, re.M | re.I)
        return m.group(1).strip() if m else ""

    @property
    def body(self) -> str:
        return self.text.split("\n\n", 1)[1] if "\n\n" in self.text else ""


def parse_message_log(text: str) -> list[SipMessage]:
    out: list[SipMessage] = []
    blocks = re.split(r"^-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\s*$", text, flags=re.M)
    for stamp, block in zip(blocks[1::2], blocks[2::2], strict=True):
        m = re.search(r"message (received|sent)[^\n]*:\n\n?(.*)", block, re.S)
        if not m:
            continue
        at = time.mktime(time.strptime(stamp.split(".")[0], "%Y-%m-%d %H:%M:%S"))
        at += float("0." + stamp.split(".")[1])
        out.append(SipMessage(at, m.group(1), m.group(2).replace("\r\n", "\n").strip()))
    return out


@dataclass
class Peer:
    port: int
    media_port: int
    proc: asyncio.subprocess.Process
    log: Path
    exit_code: int | None = None

    def messages(self) -> list[SipMessage]:
        return parse_message_log(self.log.read_text(errors="replace")) if self.log.exists() else []

    def received(self, method: str, call_id: str | None = None) -> list[SipMessage]:
        return [
            m
            for m in self.messages()
            if m.direction == "received"
            and m.first_line.startswith(f"{method} ")
            and (call_id is None or m.header("Call-ID") == call_id)
        ]

    def info_digits(self, call_id: str | None = None) -> str:
        digits = []
        for m in self.received("INFO", call_id):
            assert m.header("Content-Type") == "application/dtmf-relay"
            fields = dict(line.split("=", 1) for line in m.body.splitlines() if "=" in line)
            assert fields["Duration"] == "160"
            digits.append(fields["Signal"])
        return "".join(digits)


def _free_udp(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@asynccontextmanager
async def peer(
    sipp: str, workdir: Path, scenario: str, *, calls: int = 1, timeout_s: int = 60
) -> AsyncIterator[Peer]:
    port = next(p for p in PEER_PORTS if _free_udp(p))
    media = next(p for p in PEER_MEDIA_PORTS if _free_udp(p) and _free_udp(p + 2))
    sf = workdir / f"peer-{port}.xml"
    _write(sf, scenario)
    log = workdir / f"peer-{port}-messages.log"
    proc = await asyncio.create_subprocess_exec(
        *[sipp, "-sf", str(sf), "-t", "u1", "-i", "127.0.0.1", "-mi", "127.0.0.1"],
        *["-bind_local", "-p", str(port), "-mp", str(media), "-m", str(calls), "-nostdin"],
        *["-trace_msg", "-message_file", str(log), "-trace_err"],
        *["-error_file", str(workdir / f"peer-{port}-errors.log")],
        *["-timeout", f"{timeout_s}s", "-timeout_error"],
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=workdir,
    )
    await asyncio.sleep(0.2)  # let it bind
    handle = Peer(port, media, proc, log)
    try:
        yield handle
        with suppress(TimeoutError):
            handle.exit_code = await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# --------------------------------------------------------------------------- capture (RFC 4733)


@dataclass
class RtpEvent:
    ssrc: str
    timestamp: int
    digit: str
    first_at: float  # capture-relative time of the event's first packet
    end_at: float  # ... and of its first end-of-event packet


@dataclass
class Capture:
    path: Path

    def events(self, port: int) -> list[RtpEvent]:
        out = subprocess.run(
            [
                *["tshark", "-r", str(self.path), "-d", f"udp.port=={port},rtp"],
                *["-d", "rtp.pt==96,rtpevent", "-Y", "rtpevent", "-T", "fields"],
                *["-e", "frame.time_relative", "-e", "rtp.ssrc", "-e", "rtp.timestamp"],
                *["-e", "rtpevent.event_id", "-e", "rtpevent.end_of_event"],
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        events: dict[tuple[str, int], RtpEvent] = {}
        for line in out.splitlines():
            at, ssrc, ts, event_id, end = line.split("\t")
            key = (ssrc, int(ts))
            if key not in events:
                events[key] = RtpEvent(ssrc, int(ts), EVENT_CHARS[int(event_id)], float(at), 0.0)
            if end in ("1", "True") and not events[key].end_at:
                events[key].end_at = float(at)
        return sorted(events.values(), key=lambda e: e.first_at)


@asynccontextmanager
async def capture(workdir: Path, port: int) -> AsyncIterator[Capture]:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark not installed: cannot decode RFC 4733 events")
    path = workdir / "rtp.pcap"
    proc = await asyncio.create_subprocess_exec(
        *[tshark, "-i", "lo", "-f", f"udp dst port {port}", "-w", str(path), "-q"],
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        try:  # tshark says "Capturing on 'Loopback: lo'" once it captures
            line = await asyncio.wait_for(proc.stderr.readline(), 15)
            while line and b"Capturing on" not in line:
                line = await asyncio.wait_for(proc.stderr.readline(), 15)
        except TimeoutError:
            line = b""
        if not line:
            pytest.skip("tshark cannot capture on lo here")
        drain = asyncio.create_task(proc.stderr.read())
        yield Capture(path)
        await asyncio.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 15)
        await drain
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# --------------------------------------------------------------------------- helpers


def call(script: CallScript, **kw: object) -> SippCall:
    return SippCall(did="0505550000", caller_id="01012345678", script=script, **kw)  # type: ignore[arg-type]


def against(sipp: str, p: Peer, workdir: Path, timeout_s: float = 30) -> dict[str, Any]:
    """How the driver's calls reach the peer: its address, the test's ports and files."""
    return {
        "target": ("127.0.0.1", p.port),
        "workdir": workdir / "calls",
        "timeout_s": timeout_s,
        "sip_ports": SIP_PORTS,
        "media_ports": MEDIA_PORTS,
        "sipp": sipp,
    }


async def run_one(
    sipp: str, p: Peer, c: SippCall, workdir: Path, *, timeout_s: float = 30
) -> CallResult:
    [result] = await run_calls([c], **against(sipp, p, workdir, timeout_s))
    return result


def start_one(
    sipp: str, p: Peer, c: SippCall, workdir: Path, *, timeout_s: float = 30
) -> AbstractAsyncContextManager[CallHandle]:
    """:func:`start_call` of ``c`` against the peer (:func:`run_one` to run it out)."""
    return start_call(c, **against(sipp, p, workdir, timeout_s))


def _no_sipp_left(workdir: Path) -> None:
    assert not list((workdir / "calls").glob("sipp-*.xml")), "scenario files must be deleted"


def _sipp_pids() -> set[int]:
    """Our own sipp children (other people may run sipp on this machine too)."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with suppress(OSError, IndexError, ValueError):
                stat = (proc / "stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
                if name == "sipp" and ppid == os.getpid():
                    pids.add(int(proc.name))
    return pids
