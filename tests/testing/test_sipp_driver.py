"""The SIPp call driver against a real SIP peer: a second SIPp acting as the called side.

No Asterisk here. The peer (UAS) is a SIPp scenario generated below; it answers (or
rejects), logs every SIP message it gets (``-trace_msg``) so the INFO bodies can be
checked in order, and either waits for our BYE (answering every INFO meanwhile) or hangs
up itself. RFC 4733 digits are decoded from a loopback capture with tshark (skipped when
tshark is missing or cannot capture).

Tests that run sipp are skipped when it is not installed, except with ``CI=true``, where
they fail. Ports: our calls use 5100-5199 and media 16000-17799; the peer 5090-5099 and
media 17800-17999 (Asterisk uses 5070, 8088 and 10000-10999).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivr.testing.sipp import (
    CallResult,
    CallScript,
    SendDtmf,
    SippCall,
    rfc4733_playback_ms,
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


@pytest.fixture
def sipp_bin() -> str:
    return _require("sipp")


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


async def run_one(
    sipp: str, p: Peer, c: SippCall, workdir: Path, *, timeout_s: float = 30
) -> CallResult:
    [result] = await run_calls(
        [c],
        target=("127.0.0.1", p.port),
        workdir=workdir / "calls",
        timeout_s=timeout_s,
        sip_ports=SIP_PORTS,
        media_ports=MEDIA_PORTS,
        sipp=sipp,
    )
    return result


def _no_sipp_left(workdir: Path) -> None:
    assert not list((workdir / "calls").glob("sipp-*.xml")), "scenario files must be deleted"


# --------------------------------------------------------------------------- unit: builder


def test_script_is_immutable_and_validates() -> None:
    base = CallScript().wait(100)
    longer = base.dtmf("123#", "info")
    assert len(base.steps) == 1
    assert len(longer.steps) == 2
    with pytest.raises(ValueError, match="0-9"):
        base.dtmf("12a4", "info")
    with pytest.raises(ValueError, match="at least one"):
        base.dtmf("", "rfc4733")
    with pytest.raises(ValueError, match=">= 0"):
        base.wait(-1)
    with pytest.raises(ValueError, match="method"):
        base.dtmf("1", "inband")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tone_ms"):
        base.dtmf("1", "rfc4733", tone_ms=20)
    with pytest.raises(ValueError, match="rfc4733 only"):
        base.dtmf("1", "info", tone_ms=100)
    with pytest.raises(ValueError, match="already used"):
        base.wait_for("a", 1000).wait_for("a", 1000)
    with pytest.raises(ValueError, match="signal name"):
        base.wait_for("bad name", 1000)
    with pytest.raises(ValueError, match="nothing can follow"):
        base.hangup().wait(10)
    with pytest.raises(ValueError, match=">= 1"):
        base.expect_hangup(0)


def test_call_validates_fields() -> None:
    with pytest.raises(ValueError, match="DID"):
        SippCall(did="05<0")
    with pytest.raises(ValueError, match="caller_id"):
        SippCall(did="0505", caller_id="a b")
    with pytest.raises(ValueError, match="set by the driver"):
        SippCall(did="0505", headers={"Call-ID": "x"})
    with pytest.raises(ValueError, match="bad value"):
        SippCall(did="0505", headers={"X-A": "a\r\nVia: evil"})
    with pytest.raises(ValueError, match="bad value"):
        SippCall(did="0505", headers={"X-A": "[call_id]"})
    with pytest.raises(ValueError, match="script steps"):
        SippCall(did="0505", expect_status=404, script=CallScript().wait(1))


def test_digits_never_show_in_reprs() -> None:
    card = "4111111111111111"
    script = CallScript().dtmf(card, "rfc4733").dtmf(card + "#", "info")
    c = SippCall(did="0505", script=script)
    result = CallResult(call=c, ok=False, exit_code=1, errors="", duration_s=1.0)
    for text in (repr(script), repr(c), repr(result), str(result), repr(script.steps[0])):
        assert card not in text
    assert "<16 digits>" in repr(script.steps[0])


def test_scenario_offers_telephone_event_and_sends_each_digit() -> None:
    script = CallScript().dtmf("11220", "rfc4733").dtmf("1*#", "info", gap_ms=50)
    xml = SippCall(
        did="0505550000", script=script, headers={"X-Arspay-Endpoint": "x"}
    ).scenario_xml()
    assert "m=audio [media_port] RTP/AVP 0 8 96" in xml
    assert "a=rtpmap:96 telephone-event/8000" in xml
    assert 'play_dtmf="11220,200"' in xml
    step = script.steps[0]
    assert isinstance(step, SendDtmf)
    assert f'<pause milliseconds="{step.duration_ms}"/>' in xml
    assert [m for m in re.findall(r"Signal=(.)", xml)] == ["1", "*", "#"]
    assert xml.count('<pause milliseconds="50"/>') == 2  # between INFOs only
    assert "X-Arspay-Endpoint: x" in xml
    assert xml.rstrip().endswith("</scenario>")
    assert "BYE [next_url]" in xml  # a hangup() was added


def test_anonymous_caller() -> None:
    xml = SippCall(did="0505", caller_id="anonymous").scenario_xml()
    assert '"Anonymous" <sip:anonymous@anonymous.invalid>' in xml
    assert "Privacy: id" in xml


def test_a_call_with_an_account_answers_the_digest_challenge() -> None:
    from ivr.testing.sip_account import SipAccount, register_scenario

    account = SipAccount("softphone", "s3cret-Passw0rd")
    assert "s3cret" not in repr(account)
    call = SippCall(did="0505", account=account)
    xml = call.scenario_xml()
    assert "From: <sip:softphone@[local_ip]:[local_port]>" in xml  # the account's user
    invites = [m for m in xml.split("<send>") if "INVITE sip:0505" in m]
    assert len(invites) == 2
    assert "[authentication" not in invites[0]
    assert "[authentication username=softphone password=s3cret-Passw0rd]" in invites[1]
    order = [xml.index(x) for x in ('response="401" auth="true"', "ACK sip:0505", invites[1])]
    assert order == sorted(order)
    result = CallResult(call=call, ok=False, exit_code=1, errors="", duration_s=1.0)
    assert "s3cret" not in repr(result)
    reg = register_scenario(account)
    assert reg.count("REGISTER sip:") == 2
    assert reg.index('response="401" auth="true"') < reg.index("[authentication")
    with pytest.raises(ValueError, match="answered"):
        SippCall(did="0505", account=account, expect_status=404)
    with pytest.raises(ValueError, match="password"):
        SipAccount("softphone", "a b")


def test_rfc4733_playback_time() -> None:
    assert rfc4733_playback_ms(0) == 0
    assert rfc4733_playback_ms(1) == 400 + 400 + 200 + 3
    assert rfc4733_playback_ms(5, 100) == 400 + 1000 + 100 + 3


# --------------------------------------------------------------------------- against a peer


@pytest.mark.anyio
async def test_info_digits_arrive_in_order(sipp_bin: str, tmp_path: Path) -> None:
    script = CallScript().wait(100).dtmf("1234567890*#", "info").dtmf("11220", "info").hangup()
    async with peer(sipp_bin, tmp_path, uas_scenario("wait_bye")) as p:
        c = call(script, headers={"X-Arspay-Endpoint": "sipp-info"})
        result = await run_one(sipp_bin, p, c, tmp_path)
    assert result.ok, result.errors
    assert p.exit_code == 0
    assert p.info_digits(result.call_id) == "1234567890*#11220"
    [invite] = p.received("INVITE")
    assert invite.header("X-Arspay-Endpoint") == "sipp-info"
    assert invite.header("Call-ID") == result.call_id
    assert "a=rtpmap:96 telephone-event/8000" in invite.body
    assert re.search(r"^m=audio 1\d{4} RTP/AVP 0 8 96$", invite.body, re.M)
    assert "<sip:01012345678@" in invite.header("From")
    infos = p.received("INFO")
    gaps = [b.at - a.at for a, b in itertools.pairwise(infos[:12])]
    print(f"\nINFO: mean {statistics.mean(gaps) * 1000:.1f} ms between digits (gap 100 ms)")
    assert 0.09 < statistics.mean(gaps) < 0.2
    assert p.received("BYE")  # hangup()
    _no_sipp_left(tmp_path)


@pytest.mark.anyio
@pytest.mark.slow
async def test_rfc4733_repeated_digits_survive(sipp_bin: str, tmp_path: Path) -> None:
    script = (
        CallScript().dtmf("11220", "rfc4733").dtmf("1234567890*#", "rfc4733").wait(200).hangup()
    )
    async with (
        peer(sipp_bin, tmp_path, uas_scenario("wait_bye")) as p,
        capture(tmp_path, p.media_port) as cap,
    ):
        started = time.monotonic()
        result = await run_one(sipp_bin, p, call(script), tmp_path)
        elapsed = time.monotonic() - started
    assert result.ok, result.errors
    events = cap.events(p.media_port)
    assert "".join(e.digit for e in events) == "11220" + "1234567890*#"
    first, second = events[:5], events[5:]
    assert len({e.ssrc for e in first}) == 1
    assert len({e.ssrc for e in second}) == 1
    assert first[0].ssrc != second[0].ssrc  # each play_dtmf is a new RTP stream
    assert len({e.timestamp for e in first}) == 5  # one event per digit, repeated ones too
    starts = [e.first_at for e in second]
    per_digit = statistics.mean(b - a for a, b in itertools.pairwise(starts))
    tone = statistics.mean(e.end_at - e.first_at for e in events)
    print(
        f"\nRFC 4733: {per_digit * 1000:.1f} ms per digit, tone {tone * 1000:.1f} ms;"
        f" whole call {elapsed:.2f} s (script minimum {script.min_duration_ms()} ms)"
    )
    assert 0.38 < per_digit < 0.42
    assert 0.18 < tone < 0.22
    assert not p.received("INFO")


@pytest.mark.anyio
async def test_expect_hangup_answers_the_far_end_bye(sipp_bin: str, tmp_path: Path) -> None:
    async with peer(sipp_bin, tmp_path, uas_scenario("hangup", hangup_after_ms=500)) as p:
        result = await run_one(sipp_bin, p, call(CallScript().expect_hangup(5000)), tmp_path)
    assert result.ok, result.errors
    assert p.exit_code == 0  # the peer got its 200 OK to BYE
    assert not p.received("BYE")


@pytest.mark.anyio
async def test_far_end_bye_during_a_pause_fails_the_call(sipp_bin: str, tmp_path: Path) -> None:
    async with peer(sipp_bin, tmp_path, uas_scenario("hangup", hangup_after_ms=300)) as p:
        result = await run_one(sipp_bin, p, call(CallScript().wait(3000).hangup()), tmp_path)
    assert not result.ok
    assert result.exit_code == 1
    assert "BYE" in result.errors


@pytest.mark.anyio
async def test_expect_hangup_times_out(sipp_bin: str, tmp_path: Path) -> None:
    async with peer(sipp_bin, tmp_path, uas_scenario("wait_bye")) as p:
        started = time.monotonic()
        result = await run_one(sipp_bin, p, call(CallScript().expect_hangup(700)), tmp_path)
    assert not result.ok
    assert "timeout" in result.errors.lower()
    assert time.monotonic() - started < 10


@pytest.mark.anyio
async def test_rejected_call(sipp_bin: str, tmp_path: Path) -> None:
    async with peer(sipp_bin, tmp_path, uas_scenario("reject", reject=486)) as p:
        result = await run_one(sipp_bin, p, call(CallScript().hangup()), tmp_path)
    assert not result.ok
    assert "486" in result.errors
    assert p.exit_code == 0  # we ACKed the 486
    async with peer(sipp_bin, tmp_path, uas_scenario("reject", reject=404)) as p:
        result = await run_one(sipp_bin, p, SippCall(did="0505", expect_status=404), tmp_path)
    assert result.ok, result.errors
    assert p.exit_code == 0


@pytest.mark.anyio
async def test_anonymous_caller_reaches_the_peer(sipp_bin: str, tmp_path: Path) -> None:
    async with peer(sipp_bin, tmp_path, uas_scenario("wait_bye")) as p:
        c = SippCall(did="0505550000", caller_id="anonymous", script=CallScript().hangup())
        result = await run_one(sipp_bin, p, c, tmp_path)
    assert result.ok, result.errors
    [invite] = p.received("INVITE")
    assert invite.header("From").startswith('"Anonymous" <sip:anonymous@anonymous.invalid>')


@pytest.mark.anyio
async def test_wait_for_holds_until_released(sipp_bin: str, tmp_path: Path) -> None:
    script = CallScript().wait_for("menu", 10_000).dtmf("7", "info").wait_for("pin", 10_000)
    script = script.dtmf("8", "info").hangup()
    async with (
        peer(sipp_bin, tmp_path, uas_scenario("wait_bye")) as p,
        start_call(
            call(script),
            target=("127.0.0.1", p.port),
            workdir=tmp_path / "calls",
            timeout_s=30,
            sip_ports=SIP_PORTS,
            media_ports=MEDIA_PORTS,
            sipp=sipp_bin,
        ) as handle,
    ):
        with pytest.raises(ValueError, match="no wait_for"):
            await handle.release("nope")
        with pytest.raises(ValueError, match="before"):
            await handle.release("pin")
        await handle.answered(timeout_s=10)
        await handle.reached("menu", timeout_s=10)
        reached_at = time.time()
        await asyncio.sleep(0.5)  # held: nothing may be sent meanwhile
        assert not p.received("INFO")
        released_at = time.time()
        await handle.release("menu")
        await handle.release("pin", timeout_s=10)
        with pytest.raises(ValueError, match="already released"):
            await handle.release("menu")
        result = await handle.wait()
    assert result.ok, result.errors
    assert p.info_digits() == "78"
    [ack] = p.received("ACK")
    first_info = p.received("INFO")[0]
    assert first_info.at >= released_at - 0.01
    assert first_info.at - ack.at >= 0.45
    print(f"\nwait_for: release → INFO {(first_info.at - released_at) * 1000:.1f} ms")
    assert reached_at - ack.at < 0.5


@pytest.mark.anyio
async def test_wait_for_not_released_aborts_the_call(sipp_bin: str, tmp_path: Path) -> None:
    script = CallScript().wait_for("never", 600).dtmf("5", "info").hangup()
    async with (
        peer(sipp_bin, tmp_path, uas_scenario("wait_bye")) as p,
        start_call(
            call(script),
            target=("127.0.0.1", p.port),
            workdir=tmp_path / "calls",
            timeout_s=30,
            sip_ports=SIP_PORTS,
            media_ports=MEDIA_PORTS,
            sipp=sipp_bin,
        ) as handle,
    ):
        result = await handle.wait()
        with pytest.raises(RuntimeError, match=r"aborted|ended"):
            await handle.release("never")
    assert not result.ok
    assert "wait_for('never') was not released within 600 ms" in result.errors
    assert 0.5 < result.duration_s < 5
    assert not p.received("INFO")
    assert p.received("BYE")  # SIPp hung up properly
    assert p.exit_code == 0


@pytest.mark.anyio
async def test_leaving_the_block_stops_sipp(sipp_bin: str, tmp_path: Path) -> None:
    script = CallScript().wait_for("held", 60_000).hangup()
    async with peer(sipp_bin, tmp_path, uas_scenario("wait_bye")) as p:
        async with start_call(
            call(script),
            target=("127.0.0.1", p.port),
            workdir=tmp_path / "calls",
            timeout_s=60,
            sip_ports=SIP_PORTS,
            media_ports=MEDIA_PORTS,
            sipp=sipp_bin,
        ) as handle:
            await handle.reached("held", timeout_s=10)
            pid = handle.pid
        result = await handle.wait()
    assert not result.ok
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert p.received("BYE")  # aborted with a BYE, not just killed


@pytest.mark.anyio
async def test_cancelling_run_calls_kills_sipp(sipp_bin: str, tmp_path: Path) -> None:
    before = _sipp_pids()
    async with peer(sipp_bin, tmp_path, uas_scenario("wait_bye"), calls=3) as p:
        task = asyncio.create_task(
            run_calls(
                [call(CallScript().wait(20_000).hangup())] * 3,
                target=("127.0.0.1", p.port),
                workdir=tmp_path / "calls",
                timeout_s=60,
                sip_ports=SIP_PORTS,
                media_ports=MEDIA_PORTS,
                sipp=sipp_bin,
            )
        )
        await asyncio.sleep(1.0)
        assert len(_sipp_pids() - before) >= 3
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 1.5  # aborted over the control link, not killed
        assert len(_sipp_pids() - before) <= 1  # only the peer is left
    assert len(p.received("BYE")) == 3  # every call was hung up properly
    assert p.exit_code == 0


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


@pytest.mark.anyio
async def test_twenty_parallel_calls(sipp_bin: str, tmp_path: Path) -> None:
    n = 20
    calls = [
        call(
            CallScript().dtmf(f"{i:02d}#", "info").dtmf(f"{i % 10}{i % 10}", "rfc4733").hangup(),
            headers={"X-Test-Call": str(i)},
        )
        for i in range(n)
    ]
    async with peer(sipp_bin, tmp_path, uas_scenario("wait_bye"), calls=n) as p:
        started = time.monotonic()
        results = await run_calls(
            calls,
            target=("127.0.0.1", p.port),
            workdir=tmp_path / "calls",
            timeout_s=60,
            sip_ports=SIP_PORTS,
            media_ports=MEDIA_PORTS,
            sipp=sipp_bin,
        )
        elapsed = time.monotonic() - started
    assert [r.ok for r in results] == [True] * n, [r.errors for r in results if not r.ok]
    assert len({r.call_id for r in results}) == n
    for i, r in enumerate(results):
        assert r.call is calls[i]
        [invite] = p.received("INVITE", r.call_id)
        assert invite.header("X-Test-Call") == str(i)
        assert p.info_digits(r.call_id) == f"{i:02d}#"
    print(f"\n{n} parallel calls: {elapsed:.2f} s")
    assert p.exit_code == 0
    _no_sipp_left(tmp_path)


@pytest.fixture(autouse=True)
def _no_stray_sipp() -> Iterator[None]:
    before = _sipp_pids()
    yield
    deadline = time.monotonic() + 5
    while (_sipp_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (_sipp_pids() - before), "sipp processes left behind"
