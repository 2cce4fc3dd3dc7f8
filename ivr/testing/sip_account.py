"""A SIP account with a password (the softphone account of ``asterisk.softphone``), as
SIPp uses it: :class:`SipAccount` makes a :class:`~ivr.testing.sipp.SippCall`
authenticate its INVITE (digest, answering Asterisk's 401), and :func:`register`
REGISTERs it once, as a softphone does when it starts.

    account = SipAccount("softphone", password)
    assert (await register(account, target=("127.0.0.1", 5080), workdir=tmp)).ok
    call = SippCall(did="05050000001", account=account, script=...)

The password is in SIPp's scenario file only (written 0600, deleted after the run);
``repr`` and error text hide it.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

_USER = re.compile(r"[A-Za-z0-9._-]{1,64}")
_PASSWORD = re.compile(r"[A-Za-z0-9._~+/=-]{1,128}")  # no ' ', '"', ']' (SIPp keyword syntax)


@dataclass(frozen=True)
class SipAccount:
    user: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _USER.fullmatch(self.user):
            raise ValueError(f"bad SIP user {self.user!r}: use [A-Za-z0-9._-], max 64")
        if not _PASSWORD.fullmatch(self.password):
            raise ValueError("the password must be 1-128 of [A-Za-z0-9._~+/=-]")

    def authentication(self) -> str:
        """SIPp's keyword answering the last challenge (``auth="true"`` on its recv)."""
        return f"[authentication username={self.user} password={self.password}]"


@dataclass(frozen=True)
class RegisterResult:
    ok: bool
    errors: str


def register_scenario(account: SipAccount, expires_s: int = 300) -> str:
    def request(auth: bool) -> str:
        lines = [
            "REGISTER sip:[remote_ip]:[remote_port] SIP/2.0",
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
            f"From: <sip:{account.user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]",
            f"To: <sip:{account.user}@[remote_ip]>",
            "Call-ID: [call_id]",
            "CSeq: [cseq] REGISTER",
            f"Contact: <sip:{account.user}@[local_ip]:[local_port]>",
            f"Expires: {expires_s}",
            "Max-Forwards: 70",
            *([account.authentication()] if auth else []),
            "Content-Length: 0",
            "",
            "",
        ]
        return "\n".join(lines)

    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<scenario name="arspay register">\n'
        f"  <send><![CDATA[\n{request(False)}]]></send>\n"
        '  <recv response="401" auth="true" timeout="5000"/>\n'
        f"  <send><![CDATA[\n{request(True)}]]></send>\n"
        '  <recv response="200" timeout="5000"/>\n'
        "</scenario>\n"
    )


async def register(
    account: SipAccount,
    *,
    target: tuple[str, int],
    workdir: Path,
    local_ip: str = "127.0.0.1",
    sip_port: int = 0,
    timeout_s: float = 15,
) -> RegisterResult:
    """REGISTER ``account`` at ``target`` once (answering the digest challenge); ok when
    the registrar said 200. ``sip_port`` 0: a free one of SIPp's choosing is found."""
    exe = shutil.which("sipp")
    if exe is None:
        raise FileNotFoundError("sipp not found (Debian/Ubuntu package: sip-tester)")
    os.makedirs(workdir, exist_ok=True)
    token = secrets.token_hex(6)
    scenario, errors = workdir / f"register-{token}.xml", workdir / f"register-{token}.log"
    fd = os.open(scenario, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(register_scenario(account))
    argv = [exe, f"{target[0]}:{target[1]}", "-sf", str(scenario), "-t", "u1", "-i", local_ip,
            "-bind_local", "-p", str(sip_port or _free_udp_port(local_ip)), "-m", "1",
            "-nostdin", "-trace_err", "-error_file", str(errors),
            "-timeout", f"{int(timeout_s)}s", "-timeout_error"]  # fmt: skip
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(), timeout_s + 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return RegisterResult(False, "sipp did not finish")
        log = errors.read_text(errors="replace") if errors.exists() else ""
        text = (log + stderr.decode(errors="replace")).replace(account.password, "<redacted>")
        return RegisterResult(proc.returncode == 0, text[-4000:])
    finally:
        scenario.unlink(missing_ok=True)
        errors.unlink(missing_ok=True)


def _free_udp_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port
