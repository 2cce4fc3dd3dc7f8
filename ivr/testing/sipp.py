"""Place real SIP calls with real DTMF through SIPp, from tests and benchmarks.

One ``sipp`` process per call (SIPp 3.6.1, Debian package ``sip-tester``)::

    script = (
        CallScript()
        .wait(500)
        .wait_for("pan-prompt", timeout_ms=10_000)   # held until the test releases it
        .dtmf("4111111111111111#", "rfc4733")
        .expect_hangup(timeout_ms=30_000)
    )
    call = SippCall(did="05051234567", caller_id="01012345678", script=script,
                    headers={"X-Arspay-Endpoint": "sipp-info"})

    async with start_call(call, workdir=tmp_path, timeout_s=60) as handle:
        await engine_says_prompt_is_playing("pan")
        await handle.release("pan-prompt")
        result = await handle.wait()
    assert result.ok, result.errors

    results = await run_calls([call] * 20, workdir=tmp_path, timeout_s=60)

What a script does, step by step, once the call is answered (200 OK, then our ACK):

``wait(ms)``
    ``<pause>``. A BYE from the far end during a pause fails the call (SIPp counts an
    "unexpected BYE"); use ``expect_hangup`` where the far end is meant to hang up.
``dtmf(digits, "info")``
    One SIP INFO per digit, ``application/dtmf-relay`` with ``Signal=<d>`` and
    ``Duration=160``, each waiting for its 200 OK; ``gap_ms`` (default 100) between INFOs.
``dtmf(digits, "rfc4733")``
    ``<exec play_dtmf="digits,tone_ms"/>``: SIPp builds RFC 4733 events in memory and sends
    them from the offered media port through a raw socket (root or CAP_NET_RAW needed),
    payload type 96, which the SDP offer maps to ``telephone-event/8000``. Every digit is
    its own event (own RTP timestamp), so repeated digits such as ``11220`` survive. The
    playback runs in a SIPp thread, so the step then pauses for the whole playback: about
    400 ms of warm-up packets, then ``2 * tone_ms`` per digit (tone, then silence), then the
    last tone (``rfc4733_playback_ms``). Never use SIPp's packaged
    ``dtmf_2833_*.pcap`` files: they drop repeated digits.
``hangup()``
    We send BYE and expect 200 OK.
``expect_hangup(timeout_ms)``
    ``<recv request="BYE">`` then 200 OK; the call fails if no BYE comes in time.
``wait_for(signal, timeout_ms)``
    The call blocks until the test calls ``handle.release(signal)``; see below. If it is
    not released within ``timeout_ms`` of reaching that point, the driver aborts the call
    (SIPp sends BYE) and the result says so.

A script that does not end with ``hangup()`` or ``expect_hangup()`` gets a ``hangup()``
added, so no call is left open on the far end.

Every call keeps a control link to the driver through SIPp's 3PCC twin-command socket
(``-3pcc``). Framing, read from SIPp's source (``SIPpSocket::check_for_message``,
``call::sendCmdMessage``, ``call::process_twinSippCom``) and checked by experiment: a
twin command is SIP-header-like text (CRLF-terminated lines, at least ``Call-ID:`` naming
the call) followed by one ESC byte (``0x1b``); the rest of the text is free. The scenario
announces the answer and each ``wait_for``::

    <sendCmd>Call-ID: [call_id] / X-Arspay-Answered: 1</sendCmd>          (after our ACK)
    <sendCmd>Call-ID: [call_id] / X-Arspay-Reached: <signal></sendCmd>    (SIPp -> driver)
    <recvCmd/>                                                             (driver -> SIPp)

and the driver releases with ``Call-ID: <id>\\r\\nX-Arspay-Release: <signal>\\r\\n\\r\\n\\x1b``.
To abort a call it sends ``internal-cmd: abort_call`` instead (SIPp's own abort command;
SIPp sends it to us when it aborts a call on an unexpected message). SIPp hangs up an
aborted call properly (BYE, or CANCEL/ACK before the answer). Signals cannot do that:
``SIGUSR1`` is meant to abort calls but with ``-m 1`` SIPp resets its quit counter on
every loop, and ``SIGTERM``/``SIGINT`` exit without a BYE.

Because the first twin command in the scenario is a ``<sendCmd>``, SIPp runs as
"3PCC controller A": it *connects* to ``-3pcc 127.0.0.1:<port>`` where the driver listens
(an ephemeral port on 127.0.0.1), rather than listening itself ("controller B", what a
scenario whose first twin command is ``<recvCmd>`` gets). Measured reasons:

* In listening mode SIPp binds the twin port on 0.0.0.0 whatever address ``-3pcc`` names,
  and treats a command for an unknown Call-ID as a request to place a new call.
* A twin command that arrives while the call is not yet at its ``<recvCmd>`` (still in a
  pause, or sending DTMF) makes SIPp reject the call (exit 1). With the ``<sendCmd>``
  announcement the driver knows the call is blocked at that exact point, so
  ``release()`` waits for it and never sends too early.
* SIPp connects during start-up, before it places the call, so no announcement can be
  lost and the driver can abort at any time; in listening mode the test would race SIPp
  to connect.

SIPp 3.6.1 parses no ``timeout`` on ``<recvCmd>``, so the ``wait_for`` timeout is kept by
the driver.

Safety: the driver never logs or prints DTMF digits, the ``repr`` of a script hides them,
and the generated scenario file (which has to contain them) is written ``0600`` and
deleted when the call ends; error text is scrubbed of ``Signal=`` values and of the
script's digit strings. Every SIPp gets an explicit local SIP port and media ports from
the ranges given (without ``-p``, SIPp tries 5060-5119 and could take Asterisk's port),
binds them on ``local_ip`` only, runs with ``-timeout … -timeout_error`` so it cannot
outlive a lost test, and is stopped (abort with BYE, then SIGKILL) when its ``start_call``
block exits or is cancelled; anything left is killed at interpreter exit.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import math
import os
import re
import secrets
import shutil
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

from ivr.testing.sip_account import SipAccount

__all__ = [
    "DEFAULT_MEDIA_PORTS",
    "DEFAULT_SIP_PORTS",
    "DEFAULT_TARGET",
    "CallEndedError",
    "CallHandle",
    "CallResult",
    "CallScript",
    "DtmfMethod",
    "ExpectHangup",
    "Hangup",
    "SendDtmf",
    "SippCall",
    "Wait",
    "WaitFor",
    "rfc4733_playback_ms",
    "run_calls",
    "start_call",
]

DtmfMethod: TypeAlias = Literal["info", "rfc4733"]

DEFAULT_TARGET: tuple[str, int] = ("127.0.0.1", 5070)
#: Local SIP ports, one per call, always passed with ``-p``: without it SIPp scans
#: 5060-5119 and could take Asterisk's 5070 (or a test peer's port).
DEFAULT_SIP_PORTS: range = range(5100, 5200)
#: Local media ports; each call takes a block of 4 (SIPp binds port and port + 2).
#: Clear of Asterisk's RTP range 10000-10999.
DEFAULT_MEDIA_PORTS: range = range(16000, 18000)

DTMF_CHARS = frozenset("0123456789*#")
INFO_DURATION_MS = 160
DEFAULT_INFO_GAP_MS = 100
DEFAULT_TONE_MS = 200
TELEPHONE_EVENT_PT = 96  # hard-coded in SIPp's prepare_pcap.c
_RFC4733_WARMUP_MS = 400  # 20 "noop" RTP packets SIPp sends before the first event
_RFC4733_MARGIN_MS = 40  # after the last end packet, before the next step may run
_DEFAULT_BYE_TIMEOUT_MS = 5_000
_IN_DIALOG_RESPONSE_TIMEOUT_MS = 5_000
_ESC = b"\x1b"
_STOP_GRACE_S = 2.0

_SIGNAL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_USER_RE = re.compile(r"[A-Za-z0-9+._-]{1,64}")
_HEADER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_RESERVED_HEADERS = frozenset(
    {
        "via",
        "v",
        "from",
        "f",
        "to",
        "t",
        "call-id",
        "i",
        "cseq",
        "contact",
        "m",
        "max-forwards",
        "content-type",
        "c",
        "content-length",
        "l",
        "route",
        "record-route",
    }
)


# --------------------------------------------------------------------------- script steps


@dataclass(frozen=True)
class Wait:
    """Pause for ``ms`` milliseconds."""

    ms: int

    def __post_init__(self) -> None:
        _check_ms("wait", self.ms)


@dataclass(frozen=True)
class SendDtmf:
    """Send ``digits`` by ``method``. ``repr`` hides the digits (they can be card numbers)."""

    digits: str = field(repr=False)
    method: DtmfMethod
    gap_ms: int = DEFAULT_INFO_GAP_MS
    tone_ms: int = DEFAULT_TONE_MS

    def __post_init__(self) -> None:
        if not isinstance(self.digits, str) or not self.digits:
            raise ValueError("dtmf() needs at least one digit")
        if not set(self.digits) <= DTMF_CHARS:
            # Do not echo the input: it may be a card number with a typo in it.
            raise ValueError("DTMF digits must be from 0-9, * and #")
        if self.method not in ("info", "rfc4733"):
            raise ValueError(f"DTMF method must be 'info' or 'rfc4733', got {self.method!r}")
        _check_ms("gap_ms", self.gap_ms)
        if not 50 <= _check_ms("tone_ms", self.tone_ms) <= 2000:
            raise ValueError("tone_ms must be within 50-2000")  # SIPp would use 200 instead

    def __repr__(self) -> str:
        timing = f"gap_ms={self.gap_ms}" if self.method == "info" else f"tone_ms={self.tone_ms}"
        return f"SendDtmf(<{len(self.digits)} digits>, method={self.method!r}, {timing})"

    @property
    def duration_ms(self) -> int:
        """How long the step takes (without network round trips)."""
        if self.method == "info":
            return self.gap_ms * (len(self.digits) - 1)
        return rfc4733_playback_ms(len(self.digits), self.tone_ms) + _RFC4733_MARGIN_MS


@dataclass(frozen=True)
class Hangup:
    """Send BYE, expect 200 OK within ``timeout_ms``."""

    timeout_ms: int = _DEFAULT_BYE_TIMEOUT_MS

    def __post_init__(self) -> None:
        _check_ms("timeout_ms", self.timeout_ms, minimum=1)


@dataclass(frozen=True)
class ExpectHangup:
    """Wait up to ``timeout_ms`` for the far end's BYE and answer 200 OK."""

    timeout_ms: int

    def __post_init__(self) -> None:
        _check_ms("timeout_ms", self.timeout_ms, minimum=1)


@dataclass(frozen=True)
class WaitFor:
    """Block until the test releases ``signal``; abort the call after ``timeout_ms``."""

    signal: str
    timeout_ms: int

    def __post_init__(self) -> None:
        if not isinstance(self.signal, str) or not _SIGNAL_RE.fullmatch(self.signal):
            raise ValueError(f"bad signal name {self.signal!r}: use [A-Za-z0-9_.-], max 64")
        _check_ms("timeout_ms", self.timeout_ms, minimum=1)


Step: TypeAlias = Wait | SendDtmf | Hangup | ExpectHangup | WaitFor


def rfc4733_playback_ms(n_digits: int, tone_ms: int = DEFAULT_TONE_MS) -> int:
    """Milliseconds from ``play_dtmf`` to SIPp's last end-of-event packet.

    From SIPp 3.6.1's ``prepare_dtmf``: 400 ms of warm-up packets, digit *k* (0-based)
    starts ``400 + 2 * tone_ms * (k + 1)`` ms in and lasts ``tone_ms``; three end packets
    follow 1-3 ms later.
    """
    if n_digits <= 0:
        return 0
    return _RFC4733_WARMUP_MS + 2 * tone_ms * n_digits + tone_ms + 3


def _check_ms(name: str, value: int, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (milliseconds), got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum} ms, got {value}")
    return value


@dataclass(frozen=True)
class CallScript:
    """Immutable builder of what the caller does once the call is answered.

    Every method returns a new script; ``repr`` never shows DTMF digits.
    """

    steps: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        steps = tuple(self.steps)
        object.__setattr__(self, "steps", steps)
        signals: set[str] = set()
        for i, step in enumerate(steps):
            if not isinstance(step, Wait | SendDtmf | Hangup | ExpectHangup | WaitFor):
                raise TypeError(f"not a script step: {type(step).__name__}")
            if isinstance(step, Hangup | ExpectHangup) and i != len(steps) - 1:
                raise ValueError("the call has ended: nothing can follow hangup()/expect_hangup()")
            if isinstance(step, WaitFor):
                if step.signal in signals:
                    raise ValueError(f"signal {step.signal!r} is already used in this script")
                signals.add(step.signal)

    def _add(self, step: Step) -> CallScript:
        return CallScript((*self.steps, step))

    def wait(self, ms: int) -> CallScript:
        """Pause ``ms`` milliseconds (a far-end BYE during the pause fails the call)."""
        return self._add(Wait(ms))

    def dtmf(
        self,
        digits: str,
        method: DtmfMethod,
        *,
        gap_ms: int | None = None,
        tone_ms: int | None = None,
    ) -> CallScript:
        """Send ``digits`` (``0-9*#``) as SIP INFO (``gap_ms`` apart) or RFC 4733 events.

        ``tone_ms`` (RFC 4733 only, 50-2000, default 200) is each tone's length and the
        silence after it; ``gap_ms`` (INFO only, default 100) the pause between INFOs.
        """
        if method == "info" and tone_ms is not None:
            raise ValueError("tone_ms applies to rfc4733 only")
        if method == "rfc4733" and gap_ms is not None:
            raise ValueError("gap_ms applies to info only (rfc4733 uses tone_ms)")
        return self._add(
            SendDtmf(
                digits,
                method,
                gap_ms=DEFAULT_INFO_GAP_MS if gap_ms is None else gap_ms,
                tone_ms=DEFAULT_TONE_MS if tone_ms is None else tone_ms,
            )
        )

    def hangup(self, *, timeout_ms: int = _DEFAULT_BYE_TIMEOUT_MS) -> CallScript:
        """Send BYE and expect 200 OK within ``timeout_ms``."""
        return self._add(Hangup(timeout_ms))

    def expect_hangup(self, timeout_ms: int) -> CallScript:
        """Wait up to ``timeout_ms`` for the far end to send BYE; answer it 200 OK."""
        return self._add(ExpectHangup(timeout_ms))

    def wait_for(self, signal: str, timeout_ms: int) -> CallScript:
        """Hold the call here until the test calls ``handle.release(signal)``.

        Signals are names (letters, digits, ``_.-``, max 64), unique within a script, and
        are released in script order. Unreleased after ``timeout_ms`` → the call is aborted.
        """
        return self._add(WaitFor(signal, timeout_ms))

    @property
    def signals(self) -> tuple[str, ...]:
        """The ``wait_for`` signal names, in script order."""
        return tuple(s.signal for s in self.steps if isinstance(s, WaitFor))

    @property
    def ends_call(self) -> bool:
        return bool(self.steps) and isinstance(self.steps[-1], Hangup | ExpectHangup)

    def completed(self) -> CallScript:
        """This script, with a ``hangup()`` appended unless it already ends the call."""
        return self if self.ends_call else self.hangup()

    def min_duration_ms(self) -> int:
        """Lower bound of the script's run time after the answer (waits and DTMF only)."""
        total = 0
        for step in self.steps:
            if isinstance(step, Wait):
                total += step.ms
            elif isinstance(step, SendDtmf):
                total += step.duration_ms
        return total

    def _secrets(self) -> tuple[str, ...]:
        return tuple(s.digits for s in self.steps if isinstance(s, SendDtmf))


# --------------------------------------------------------------------------- the call


@dataclass(frozen=True)
class SippCall:
    """One call: whom to call, as whom, what to do once answered.

    ``caller_id`` is the user part of the SIP From header (``anonymous`` gives
    ``"Anonymous" <sip:anonymous@anonymous.invalid>`` as RFC 3323 suggests). ``headers``
    are extra INVITE headers (e.g. ``X-Arspay-Endpoint: sipp-info`` to pick an Asterisk
    endpoint). ``answer_timeout_ms`` bounds the wait for each response before the answer
    (a provisional response restarts it, like SIP's Timer C). With ``expect_status`` set
    to a final error code (e.g. 404) the call succeeds only if the far end rejects it with
    exactly that code; the script must then be empty. With ``account`` the call comes from
    that SIP user (From and Contact) and answers the far end's digest challenge (401) to
    its INVITE with the account's password, as a softphone does.
    """

    did: str
    caller_id: str = "01012345678"
    script: CallScript = field(default_factory=CallScript)
    headers: dict[str, str] = field(default_factory=dict, hash=False)
    answer_timeout_ms: int = 10_000
    expect_status: int = 200
    account: SipAccount | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.did, str) or not _USER_RE.fullmatch(self.did):
            raise ValueError(f"bad DID {self.did!r}: use [A-Za-z0-9+._-], max 64")
        if not isinstance(self.caller_id, str) or not _USER_RE.fullmatch(self.caller_id):
            raise ValueError(f"bad caller_id {self.caller_id!r}: use [A-Za-z0-9+._-], max 64")
        if not isinstance(self.script, CallScript):
            raise TypeError("script must be a CallScript")
        headers = dict(self.headers)
        for name, value in headers.items():
            if not isinstance(name, str) or not _HEADER_NAME_RE.fullmatch(name):
                raise ValueError(f"bad header name {name!r}")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the driver")
            if (
                not isinstance(value, str)
                or not value.isprintable()
                or "[" in value
                or "]" in value
            ):
                # [ ] would be read as SIPp keywords; line breaks would inject headers.
                raise ValueError(f"bad value for header {name!r}: printable, no [ ]")
        object.__setattr__(self, "headers", headers)
        _check_ms("answer_timeout_ms", self.answer_timeout_ms, minimum=1)
        if self.expect_status != 200:
            if not 300 <= self.expect_status <= 699:
                raise ValueError("expect_status must be 200 or a final error code 300-699")
            if self.script.steps:
                raise ValueError("a call expected to be rejected cannot have script steps")
            if self.account:
                raise ValueError("a call with an account expects to be answered")

    # -- SIP pieces

    @property
    def anonymous(self) -> bool:
        return self.caller_id.lower() == "anonymous"

    @property
    def _user(self) -> str:
        return self.account.user if self.account else self.caller_id

    def _from(self) -> str:
        if self.anonymous and not self.account:
            return '"Anonymous" <sip:anonymous@anonymous.invalid>;tag=[pid]SIPpTag00[call_number]'
        return f"<sip:{self._user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]"

    def _to(self) -> str:
        return f"<sip:{self.did}@[remote_ip]:[remote_port]>"

    def _contact(self) -> str:
        return f"<sip:{self._user}@[local_ip]:[local_port]>"

    def _request(self, method: str, *, body: str = "", content_type: str = "") -> str:
        """An in-dialog request (after the 200 OK, whose Contact and route set we use)."""
        lines = [
            f"{method} [next_url] SIP/2.0",
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
            f"From: {self._from()}",
            f"To: {self._to()}[peer_tag_param]",
            "Call-ID: [call_id]",
            f"CSeq: [cseq] {method}",
            "[routes]",
            f"Contact: {self._contact()}",
            "Max-Forwards: 70",
        ]
        if body:
            lines += [f"Content-Type: {content_type}", "Content-Length: [len]", "", body]
        else:
            lines += ["Content-Length: 0", "", ""]
        return "\n".join(lines)

    def _invite(self, *, authenticated: bool = False) -> str:
        sdp = "\n".join(
            [
                "v=0",
                "o=arspay 1 1 IN IP[local_ip_type] [local_ip]",
                "s=arspay",
                "c=IN IP[media_ip_type] [media_ip]",
                "t=0 0",
                f"m=audio [media_port] RTP/AVP 0 8 {TELEPHONE_EVENT_PT}",
                "a=rtpmap:0 PCMU/8000",
                "a=rtpmap:8 PCMA/8000",
                f"a=rtpmap:{TELEPHONE_EVENT_PT} telephone-event/8000",
                f"a=fmtp:{TELEPHONE_EVENT_PT} 0-16",
                "a=ptime:20",
                "a=sendrecv",
            ]
        )
        lines = [
            f"INVITE sip:{self.did}@[remote_ip]:[remote_port] SIP/2.0",
            # [branch] of message 0 is z9hG4bK-[pid]-[call_number]-0, reused by a non-2xx ACK
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
            f"From: {self._from()}",
            f"To: {self._to()}",
            "Call-ID: [call_id]",
            "CSeq: [cseq] INVITE",
            f"Contact: {self._contact()}",
            "Max-Forwards: 70",
        ]
        if self.anonymous:
            lines.append("Privacy: id")
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        if authenticated and self.account:
            lines.append(self.account.authentication())
        lines += ["Content-Type: application/sdp", "Content-Length: [len]", "", sdp]
        return "\n".join(lines)

    def _ack_2xx(self) -> str:
        lines = [
            "ACK [next_url] SIP/2.0",
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
            f"From: {self._from()}",
            f"To: {self._to()}[peer_tag_param]",
            "Call-ID: [call_id]",
            "CSeq: [cseq] ACK",
            "[routes]",
            f"Contact: {self._contact()}",
            "Max-Forwards: 70",
            "Content-Length: 0",
            "",
            "",
        ]
        return "\n".join(lines)

    def _ack_non_2xx(self) -> str:
        # Same transaction as the INVITE: same Request-URI, branch and CSeq number.
        lines = [
            f"ACK sip:{self.did}@[remote_ip]:[remote_port] SIP/2.0",
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-0",
            f"From: {self._from()}",
            f"To: {self._to()}[peer_tag_param]",
            "Call-ID: [call_id]",
            "CSeq: [cseq] ACK",
            "Max-Forwards: 70",
            "Content-Length: 0",
            "",
            "",
        ]
        return "\n".join(lines)

    def scenario_xml(self) -> str:
        """The SIPp scenario for this call. It contains the DTMF digits: keep it private."""
        body = "\n".join(xml for xml, _ in self._messages())
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<scenario name="arspay call">\n{body}\n</scenario>\n'
        )

    def step_descriptions(self) -> list[str]:
        """What the call is doing at each SIPp message index (for error messages)."""
        return [desc for _, desc in self._messages()]

    def _messages(self) -> list[tuple[str, str]]:
        """(XML element, description) per SIPp message, in scenario order (= SIPp index)."""
        t = self.answer_timeout_ms
        waiting = "waiting for the answer"
        out = [(_send(self._invite()), "sending INVITE")]
        if self.account:  # the digest challenge, then the INVITE again with credentials
            challenged = "waiting for the digest challenge"
            out += [
                (f'  <recv response="100" optional="true" timeout="{t}"/>', challenged),
                (f'  <recv response="401" auth="true" timeout="{t}"/>', challenged),
                (_send(self._ack_non_2xx()), "acknowledging the challenge"),
                (_send(self._invite(authenticated=True)), "sending INVITE with credentials"),
            ]
        out += [
            (f'  <recv response="100" optional="true" timeout="{t}"/>', waiting),
            (f'  <recv response="180" optional="true" timeout="{t}"/>', waiting),
            (f'  <recv response="183" optional="true" timeout="{t}"/>', waiting),
        ]
        if self.expect_status != 200:
            return [
                *out,
                (
                    f'  <recv response="{self.expect_status}" timeout="{t}"/>',
                    f"waiting for the expected {self.expect_status}",
                ),
                (_send(self._ack_non_2xx()), f"acknowledging {self.expect_status}"),
                (_send_cmd("X-Arspay-Rejected", str(self.expect_status)), "announcing the end"),
            ]
        out.append((f'  <recv response="200" rrs="true" timeout="{t}"/>', waiting))
        out.append((_send(self._ack_2xx()), "sending ACK"))
        out.append((_send_cmd("X-Arspay-Answered", "1"), "announcing the answer"))
        steps = self.script.completed().steps
        for number, step in enumerate(steps, 1):
            where = f"step {number}/{len(steps)} {_describe(step)}"
            out.extend((xml, where) for xml in self._step_xml(step))
        return out

    def _step_xml(self, step: Step) -> list[str]:
        response = f'  <recv response="200" timeout="{_IN_DIALOG_RESPONSE_TIMEOUT_MS}"/>'
        if isinstance(step, Wait):
            return [f'  <pause milliseconds="{step.ms}"/>'] if step.ms else []
        if isinstance(step, SendDtmf):
            if step.method == "rfc4733":
                return [
                    f'  <nop><action><exec play_dtmf="{step.digits},{step.tone_ms}"/>'
                    "</action></nop>",
                    f'  <pause milliseconds="{step.duration_ms}"/>',
                ]
            xml: list[str] = []
            for i, digit in enumerate(step.digits):
                if i and step.gap_ms:
                    xml.append(f'  <pause milliseconds="{step.gap_ms}"/>')
                body = f"Signal={digit}\nDuration={INFO_DURATION_MS}\n"
                xml.append(_send(self._request("INFO", body=body, content_type=_DTMF_RELAY)))
                xml.append(response)
            return xml
        if isinstance(step, Hangup):
            return [
                _send(self._request("BYE")),
                f'  <recv response="200" timeout="{step.timeout_ms}"/>',
            ]
        if isinstance(step, ExpectHangup):
            return [f'  <recv request="BYE" timeout="{step.timeout_ms}"/>', _send(_OK_TO_REQUEST)]
        # WaitFor: announce, then block on the twin socket until released.
        return [_send_cmd("X-Arspay-Reached", step.signal), "  <recvCmd/>"]

    def command_line(
        self,
        *,
        sipp: str,
        scenario: Path,
        error_file: Path,
        target: tuple[str, int],
        local_ip: str,
        sip_port: int,
        media_port: int,
        call_id_prefix: str,
        control_port: int,
        timeout_s: float,
    ) -> list[str]:
        """The ``sipp`` argv for this call (the Call-ID becomes ``<prefix>-1``)."""
        host, port = target
        argv = [
            sipp,
            f"{host}:{port}",
            "-sf",
            str(scenario),
            "-t",
            "u1",
            "-i",
            local_ip,
            "-mi",
            local_ip,
            "-bind_local",
            "-p",
            str(sip_port),
            "-mp",
            str(media_port),
            "-m",
            "1",
            "-nostdin",
            "-cid_str",
            f"{call_id_prefix}-%u",
            "-trace_err",
            "-error_file",
            str(error_file),
            "-timeout",
            f"{max(1, math.ceil(timeout_s))}s",
            "-timeout_error",
            "-3pcc",
            f"127.0.0.1:{control_port}",
        ]
        return argv


_DTMF_RELAY = "application/dtmf-relay"
_OK_TO_REQUEST = "\n".join(
    [
        "SIP/2.0 200 OK",
        "[last_Via:]",
        "[last_From:]",
        "[last_To:]",
        "[last_Call-ID:]",
        "[last_CSeq:]",
        "Content-Length: 0",
        "",
        "",
    ]
)


def _describe(step: Step) -> str:
    """A step, for error messages: never the digits."""
    if isinstance(step, Wait):
        return f"wait({step.ms})"
    if isinstance(step, SendDtmf):
        return f"dtmf(<{len(step.digits)} digits>, {step.method!r})"
    if isinstance(step, Hangup):
        return "hangup()"
    if isinstance(step, ExpectHangup):
        return f"expect_hangup({step.timeout_ms})"
    return f"wait_for({step.signal!r})"


def _send_cmd(header: str, value: str) -> str:
    """A twin command to the driver (SIPp adds the ESC terminator)."""
    return f"  <sendCmd><![CDATA[\nCall-ID: [call_id]\n{header}: {value}\n\n]]></sendCmd>"


def _send(message: str) -> str:
    if "]]>" in message:  # pragma: no cover - inputs are validated
        raise ValueError("message would break the CDATA section")
    return f"  <send><![CDATA[\n{message}]]></send>"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CallResult:
    """How one call went. ``errors`` is scrubbed of DTMF digits; ``repr`` hides them too."""

    call: SippCall
    ok: bool
    exit_code: int | None
    errors: str
    duration_s: float
    call_id: str = ""


_EXIT_MEANING = {
    0: "all calls succeeded",
    1: "the call failed",
    97: "SIPp exited on an internal command",
    98: "SIPp was stopped by a signal",
    99: "SIPp exited without processing the call",
    254: "SIPp could not bind a socket (port in use?)",
    255: "SIPp fatal error",
}


class CallEndedError(RuntimeError):
    """The SIPp call ended (or was aborted) before it reached a ``wait_for`` point."""


def _redact(text: str, secrets_: Iterable[str]) -> str:
    text = re.sub(r"(?im)^(\s*Signal\s*=\s*)\S+", r"\1<redacted>", text)
    text = re.sub(r'play_dtmf="[^"]*"', 'play_dtmf="<redacted>"', text)
    for digits in sorted(set(secrets_), key=len, reverse=True):
        if len(digits) >= 4:
            text = text.replace(digits, "<redacted>")
    return text


# --------------------------------------------------------------------------- ports


class _PortPool:
    """Hands out local ports this process is not using and nobody has bound right now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: set[int] = set()
        self._cursor: dict[tuple[int, int, int], int] = {}

    def take(self, ports: range, *, width: int, host: str) -> int:
        """First free block ``[p, p + width)`` in ``ports`` (p aligned to ``width``)."""
        key = (ports.start, ports.stop, width)
        first = ports.start + (-ports.start) % width
        candidates = list(range(first, ports.stop - width + 1, width))
        if not candidates:
            raise ValueError(f"port range {ports} has no room for a block of {width}")
        with self._lock:
            # A random start per process keeps parallel test processes off each other's ports.
            start = self._cursor.get(key, secrets.randbelow(len(candidates)))
            for i in range(len(candidates)):
                port = candidates[(start + i) % len(candidates)]
                block = set(range(port, port + width))
                if block & self._used:
                    continue
                # SIPp binds the first port (SIP) or the first and third (audio, video).
                if not all(_udp_free(host, p) for p in range(port, port + width, 2)):
                    continue
                self._used |= block
                self._cursor[key] = (start + i + 1) % len(candidates)
                return port
        raise RuntimeError(f"no free local UDP port block of {width} in {ports}")

    def give_back(self, port: int, width: int) -> None:
        with self._lock:
            self._used -= set(range(port, port + width))


def _udp_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


_PORTS = _PortPool()


# --------------------------------------------------------------------------- live processes

_LIVE: dict[int, asyncio.subprocess.Process] = {}


@atexit.register
def _kill_leftovers() -> None:  # pragma: no cover - only when a test run is torn down hard
    for pid, proc in list(_LIVE.items()):
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- 3PCC control


class _Controller:
    """The twin-command peer of one SIPp process: SIPp connects here at start-up."""

    def __init__(self, call_id: str, waits: Sequence[WaitFor]) -> None:
        self.call_id = call_id
        self.waits = {w.signal: w for w in waits}
        self.order = [w.signal for w in waits]
        self.reached = {s: asyncio.Event() for s in self.order}
        self.released: set[str] = set()
        self.requested = 0  # index of the next signal a release() may name
        self.failures: list[str] = []
        self.aborted = asyncio.Event()
        self.answered = asyncio.Event()
        self.connected = asyncio.Event()
        self.closed = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._server: asyncio.Server | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[bool]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None:  # only our SIPp may talk to us
            await _close(writer)
            return
        self._writer = writer
        self.connected.set()
        try:
            while True:
                try:
                    raw = await reader.readuntil(_ESC)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                self._on_message(raw[:-1].decode("utf-8", "replace"))
        finally:
            self.closed.set()
            for timer in self._timers.values():
                timer.cancel()
            await _close(writer)

    def _on_message(self, text: str) -> None:
        headers: dict[str, str] = {}
        for line in text.replace("\r\n", "\n").split("\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if headers.get("call-id") != self.call_id:
            return
        if headers.get("internal-cmd") == "abort_call":
            self.failures.append("SIPp aborted the call (unexpected message)")
            self.aborted.set()
            return
        if "x-arspay-answered" in headers:
            self.answered.set()
            return
        signal_ = headers.get("x-arspay-reached", "")
        if signal_ in self.reached and not self.reached[signal_].is_set():
            self.reached[signal_].set()
            timeout_s = self.waits[signal_].timeout_ms / 1000
            loop = asyncio.get_running_loop()
            self._timers[signal_] = loop.call_later(timeout_s, self._expire, signal_)

    def _expire(self, signal_: str) -> None:
        if signal_ in self.released or self.closed.is_set():
            return
        ms = self.waits[signal_].timeout_ms
        self.failures.append(f"wait_for({signal_!r}) was not released within {ms} ms")
        self.aborted.set()
        task = asyncio.get_running_loop().create_task(self.send_abort())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, lines: Sequence[str]) -> bool:
        writer = self._writer
        if writer is None or writer.is_closing() or self.closed.is_set():
            return False
        payload = "".join(f"{line}\r\n" for line in (f"Call-ID: {self.call_id}", *lines))
        try:
            writer.write(payload.encode() + b"\r\n" + _ESC)
            await writer.drain()
        except ConnectionError:
            return False
        return True

    async def send_release(self, signal_: str) -> bool:
        timer = self._timers.pop(signal_, None)
        if timer is not None:
            timer.cancel()
        self.released.add(signal_)
        return await self._send([f"X-Arspay-Release: {signal_}"])

    async def send_abort(self) -> bool:
        return await self._send(["internal-cmd: abort_call"])

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        if self._writer is not None:
            await _close(self._writer)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 1)


# --------------------------------------------------------------------------- one running call


class CallHandle:
    """A running SIPp call, from :func:`start_call`."""

    def __init__(
        self,
        call: SippCall,
        *,
        call_id: str,
        proc: asyncio.subprocess.Process,
        controller: _Controller,
        error_file: Path,
        timeout_s: float,
        started: float,
    ) -> None:
        self.call = call
        self.call_id = call_id
        self._proc = proc
        self._ctl = controller
        self._error_file = error_file
        self._started = started
        self._ended = asyncio.Event()
        self._result: CallResult | None = None
        self._stderr = b""
        self._watch = asyncio.create_task(self._watch_process(timeout_s))

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def done(self) -> bool:
        return self._ended.is_set()

    async def _watch_process(self, timeout_s: float) -> None:
        assert self._proc.stderr is not None
        reader = asyncio.create_task(self._proc.stderr.read())
        try:
            # SIPp enforces -timeout itself; this is the backstop if it hangs.
            await asyncio.wait_for(self._proc.wait(), timeout_s + 5)
        except TimeoutError:
            self._ctl.failures.append(f"SIPp still running after {timeout_s + 5:.0f} s: killed")
            await self._stop()
        finally:
            with contextlib.suppress(Exception):
                self._stderr = await asyncio.wait_for(reader, 1)
            reader.cancel()
            self._ended.set()

    async def _stop(self) -> None:
        """Abort gracefully (BYE), then SIGKILL after a grace period."""
        proc = self._proc
        try:
            if proc.returncode is None:
                # SIGUSR1 ("smooth exit") cannot abort a call here: with -m 1 SIPp resets
                # its quit counter on every loop. The twin command aborts it with a BYE.
                if not await self._ctl.send_abort():
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()  # not connected yet: no call to hang up
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), _STOP_GRACE_S)
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), _STOP_GRACE_S)

    def _check_signal(self, signal_: str) -> _Controller:
        ctl = self._ctl
        if signal_ not in ctl.reached:
            raise ValueError(f"the script has no wait_for({signal_!r})")
        return ctl

    async def _until(self, event: asyncio.Event, what: str, timeout_s: float | None) -> None:
        if event.is_set():
            return
        waiters = [
            asyncio.create_task(event.wait()),
            asyncio.create_task(self._ended.wait()),
            asyncio.create_task(self._ctl.closed.wait()),
        ]
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for w in waiters:
                w.cancel()
        if not done:
            raise TimeoutError(f"the call did not reach {what} within {timeout_s} s")
        if not event.is_set():
            raise CallEndedError(f"the call ended before {what}")

    async def answered(self, *, timeout_s: float | None = None) -> None:
        """Return once the call is answered (200 OK received, ACK sent).

        Raises :class:`CallEndedError` if the call ends first, ``TimeoutError`` after
        ``timeout_s``.
        """
        await self._until(self._ctl.answered, "the answer", timeout_s)

    async def reached(self, signal_: str, *, timeout_s: float | None = None) -> None:
        """Return once the call is blocked at ``wait_for(signal_)``.

        Raises :class:`CallEndedError` if the call ends first, ``TimeoutError`` after
        ``timeout_s``.
        """
        ctl = self._check_signal(signal_)
        await self._until(ctl.reached[signal_], f"wait_for({signal_!r})", timeout_s)

    async def release(self, signal_: str, *, timeout_s: float | None = None) -> None:
        """Let the call continue past ``wait_for(signal_)``.

        Waits until the call is blocked there (SIPp rejects a twin command that comes
        early), then sends the release. Signals must be released in script order.
        """
        ctl = self._check_signal(signal_)
        index = ctl.order.index(signal_)
        if index < ctl.requested:
            raise ValueError(f"wait_for({signal_!r}) was already released")
        if index > ctl.requested:
            raise ValueError(
                f"wait_for({signal_!r}) cannot be reached before "
                f"wait_for({ctl.order[ctl.requested]!r}) is released"
            )
        ctl.requested += 1
        try:
            await self.reached(signal_, timeout_s=timeout_s)
        except TimeoutError:
            ctl.requested -= 1  # the test may try again
            raise
        if ctl.aborted.is_set():
            raise CallEndedError(f"the call was aborted at wait_for({signal_!r})")
        if not await ctl.send_release(signal_):
            raise CallEndedError(f"the call ended while held at wait_for({signal_!r})")

    async def abort(self) -> None:
        """Abort the call now (SIPp sends BYE/CANCEL); the result will not be ``ok``."""
        self._ctl.failures.append("aborted by the test")
        await self._stop()

    async def wait(self) -> CallResult:
        """Wait for SIPp to finish; the result (computed once)."""
        await asyncio.shield(self._watch)
        if self._result is None:
            self._result = self._build_result()
        return self._result

    def _account_secret(self) -> tuple[str, ...]:
        return (self.call.account.password,) if self.call.account else ()

    def _build_result(self) -> CallResult:
        code = self._proc.returncode
        try:
            log = self._error_file.read_text(errors="replace")
        except FileNotFoundError:
            log = ""
        stderr = self._stderr.decode(errors="replace")
        failures = list(self._ctl.failures)
        summary = failures + _summarize(log + "\n" + stderr, self.call.step_descriptions())
        if code != 0 and not summary:
            if code is not None and code < 0:
                summary.append(f"sipp was killed by signal {-code}")
            else:
                summary.append(f"sipp exit {code}: {_EXIT_MEANING.get(code or 0, 'unknown')}")
        details = _sipp_output(log, stderr if code != 0 else "")
        parts = summary + (["--- sipp ---", details] if details else [])
        return CallResult(
            call=self.call,
            ok=code == 0 and not failures,
            exit_code=code,
            errors=_redact(
                "\n".join(parts),
                (*self.call.script._secrets(), *self._account_secret()),
            ),
            duration_s=time.monotonic() - self._started,
            call_id=self.call_id,
        )


_SIPP_NOISE = re.compile(
    r"^(The following events occurred:|Resolving remote host .*|There were more errors.*)$"
)


def _sipp_output(log: str, stderr: str) -> str:
    """SIPp's error log plus the lines of its stderr that are not copies of the log."""
    log_lines = log.replace("\r\n", "\n").splitlines()
    known = set(log_lines)
    lines = [line for line in log_lines if line.strip() and not _SIPP_NOISE.match(line.strip())]
    for line in stderr.replace("\r\n", "\n").splitlines():
        if line.strip() and line not in known and not _SIPP_NOISE.match(line.strip()):
            lines.append(line)
    return "\n".join(lines)[-8000:]


def _summarize(log: str, steps: Sequence[str]) -> list[str]:
    """One readable line per failure SIPp reported, naming the script step."""

    def step(index: str) -> str:
        i = int(index)
        return steps[i] if 0 <= i < len(steps) else f"scenario message {i}"

    out: list[str] = []
    for m in re.finditer(
        r"while expecting '[^']*' \(index (\d+)\), received 'SIP/2\.0 (\d{3}) ([^\r\n']*)", log
    ):
        what = "rejected" if int(m.group(2)) >= 300 else "unexpected response"
        out.append(f"{what}: {m.group(2)} {m.group(3).strip()} while {step(m.group(1))}")
    for m in re.finditer(r"while expecting '[^']*' \(index (\d+)\), received '(\w+) ", log):
        out.append(f"unexpected {m.group(2)} request while {step(m.group(1))}")
    if "Aborting call on an unexpected BYE" in log:
        out.append("the far end hung up (BYE) where the script did not expect_hangup()")
    for m in re.finditer(r"receive timeout on message [^:\n]*:(\d+)", log):
        out.append(f"timed out {step(m.group(1))}")
    for m in re.finditer(r"(Unable to bind[^\n]*|Can't create raw[^\n]*)", log):
        out.append(m.group(1).strip())
    if re.search(r"timed out after '[\d.]+' seconds", log):
        out.append("the whole call hit its timeout_s")
    return list(dict.fromkeys(out))


@contextlib.asynccontextmanager
async def start_call(
    call: SippCall,
    *,
    workdir: Path,
    timeout_s: float,
    target: tuple[str, int] = DEFAULT_TARGET,
    local_ip: str = "127.0.0.1",
    sip_ports: range = DEFAULT_SIP_PORTS,
    media_ports: range = DEFAULT_MEDIA_PORTS,
    sipp: str | None = None,
) -> AsyncIterator[CallHandle]:
    """Start one SIPp call; yields its :class:`CallHandle`.

    Leaving the block stops SIPp if it still runs (abort with BYE, then SIGKILL), frees
    its ports and deletes its files; ``await handle.wait()`` inside the block to let the
    call finish. ``timeout_s`` bounds the whole call (SIPp's ``-timeout``).
    """
    if timeout_s <= 0:
        raise ValueError("timeout_s must be > 0")
    exe = sipp or shutil.which("sipp")
    if exe is None:
        raise FileNotFoundError("sipp not found (Debian/Ubuntu package: sip-tester)")
    os.makedirs(workdir, exist_ok=True)
    token = secrets.token_hex(6)
    prefix = f"arspay-{token}"
    call_id = f"{prefix}-1"
    scenario = workdir / f"sipp-{token}.xml"
    error_file = workdir / f"sipp-{token}-errors.log"
    waits = [s for s in call.script.steps if isinstance(s, WaitFor)]
    controller = _Controller(call_id, waits)
    sip_port = media_port = None
    handle: CallHandle | None = None
    try:
        sip_port = _PORTS.take(sip_ports, width=1, host=local_ip)
        media_port = _PORTS.take(media_ports, width=4, host=local_ip)
        control_port = await controller.start()
        fd = os.open(scenario, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(call.scenario_xml())
        argv = call.command_line(
            sipp=exe,
            scenario=scenario,
            error_file=error_file,
            target=target,
            local_ip=local_ip,
            sip_port=sip_port,
            media_port=media_port,
            call_id_prefix=prefix,
            control_port=control_port,
            timeout_s=timeout_s,
        )
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            cwd=workdir,
        )
        _LIVE[proc.pid] = proc
        handle = CallHandle(
            call,
            call_id=call_id,
            proc=proc,
            controller=controller,
            error_file=error_file,
            timeout_s=timeout_s,
            started=started,
        )
        yield handle
    finally:

        async def cleanup() -> None:
            if handle is not None:
                if handle._proc.returncode is None:
                    handle._ctl.failures.append(
                        "aborted: the start_call block was left before the call ended"
                    )
                    await handle._stop()
                await handle.wait()  # collect the result before the files go
            await controller.close()

        try:
            await _uncancellable(cleanup())
        finally:
            if handle is not None:
                if handle._proc.returncode is None:  # cleanup failed: do not leave it running
                    with contextlib.suppress(ProcessLookupError):
                        handle._proc.kill()
                _LIVE.pop(handle.pid, None)
            if sip_port is not None:
                _PORTS.give_back(sip_port, 1)
            if media_port is not None:
                _PORTS.give_back(media_port, 4)
            for path in (scenario, error_file):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


async def _uncancellable(coro: Coroutine[Any, Any, None]) -> None:
    """Run a bounded clean-up to its end even if we are cancelled (again) meanwhile."""
    task = asyncio.ensure_future(coro)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done() and task.cancelled():
                raise
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError


async def run_calls(
    calls: Sequence[SippCall],
    *,
    target: tuple[str, int] = DEFAULT_TARGET,
    workdir: Path,
    timeout_s: float,
    local_ip: str = "127.0.0.1",
    sip_ports: range = DEFAULT_SIP_PORTS,
    media_ports: range = DEFAULT_MEDIA_PORTS,
    sipp: str | None = None,
) -> list[CallResult]:
    """Run every call at once (one SIPp each); results in the order of ``calls``.

    A ``wait_for`` in these scripts is never released, so it aborts its call after its
    timeout; use :func:`start_call` to release them.
    """

    async def one(call: SippCall) -> CallResult:
        async with start_call(
            call,
            workdir=workdir,
            timeout_s=timeout_s,
            target=target,
            local_ip=local_ip,
            sip_ports=sip_ports,
            media_ports=media_ports,
            sipp=sipp,
        ) as handle:
            return await handle.wait()

    tasks = [asyncio.create_task(one(call)) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        # One call raised (or we were cancelled): stop the others and wait for their clean-up.
        # Cancel each once only: a second cancel would interrupt its clean-up.
        for task in tasks:
            if not task.done() and not task.cancelling():
                task.cancel()
        await _uncancellable(_wait_all(tasks))


async def _wait_all(tasks: Sequence[asyncio.Task[CallResult]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)
