"""FastAGI: an asyncio TCP server and :class:`AgiCall`, the ``Call`` over AGI.

For operators who keep their own dialplan: ``AGI(agi://127.0.0.1:4573/arspay,SECRET)``
hands the call to the engine. Protocol: Asterisk sends ``agi_*: value`` lines and a blank
line; we send one command per line and read ``200 result=…`` answers. When the channel
hangs up Asterisk writes ``HANGUP`` on the socket (possibly between a command and its
answer) and later commands fail with ``511``. Answers to key-reading commands carry the
key as an ASCII code: they are parsed here and never logged.

Authentication: for ``AGI(agi://host:port/script,ARG1,…)`` Asterisk sends
``agi_request`` (the whole URL), ``agi_network_script`` (what follows the ``/``) and
``agi_arg_1``… (the arguments). The deployment's secret (``asterisk.agi_secret``) is
the first argument, ``agi_arg_1`` — not part of the URL, which Asterisk writes into its
WARNING lines when it cannot connect. A connection whose ``agi_arg_1`` is not the secret
(compared in constant time) is closed before any command is sent or any flow runs; the
refusal is logged without the value presented and counted in
:attr:`AgiServer.refused`. The secret is dropped from the call's ``env``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
from collections.abc import Sequence

from ivr.telephony.call import (
    DTMF_KEYS,
    BufferedCall,
    CallHandler,
    CollectResult,
    CollectSpec,
    collect_digits,
    parse_destination,
)
from ivr.telephony.errors import AgiError, CallHungUp

log = logging.getLogger(__name__)

MAX_LINE = 4096
MAX_HEADERS = 100
SECRET_HEADER = "agi_arg_1"  # noqa: S105 - the header name, not a secret
_RESULT = re.compile(r"^(\d{3})[ -]result=(-?\d+)")
ESCAPE_KEYS = "0123456789*#"
_CHANNEL = re.compile(r"[A-Za-z0-9/_.@:-]{1,80}")


class AgiCall(BufferedCall):
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: dict[str, str]
    ) -> None:
        super().__init__(
            env.get("agi_uniqueid", ""), env.get("agi_extension", ""), env.get("agi_callerid", "")
        )
        self._reader = reader
        self._writer = writer
        self.env = env
        self._lock = asyncio.Lock()
        self.transferred = False

    async def command(self, line: str) -> int:
        """Send one command, return its ``result=`` value; CallHungUp when dead."""
        self._check()
        async with self._lock:
            try:
                self._writer.write(line.encode() + b"\n")
                await self._writer.drain()
                while True:
                    raw = await self._reader.readline()
                    if not raw:
                        self.buffer.hang_up()
                        raise CallHungUp
                    text = raw.decode(errors="replace").strip()
                    if text.startswith("HANGUP"):
                        self.buffer.hang_up()
                        continue
                    match = _RESULT.match(text)
                    if match is None:
                        if text.startswith("520-"):  # multi-line usage text: skip to the end
                            continue
                        code = text[:3]
                        if code == "511":
                            self.buffer.hang_up()
                            raise CallHungUp
                        raise AgiError(f"AGI {line.split()[0]}: unexpected answer {code!r}")
                    status, result = int(match.group(1)), int(match.group(2))
                    if status == 511:
                        self.buffer.hang_up()
                        raise CallHungUp
                    if status != 200:
                        raise AgiError(f"AGI {line.split()[0]}: status {status}")
                    return result
            except (ConnectionError, OSError):
                self.buffer.hang_up()
                raise CallHungUp from None

    async def answer(self) -> None:
        await self.command("ANSWER")

    async def play(self, prompts: Sequence[str], *, barge_in: bool = True) -> bool:
        if barge_in and self.buffer.pending():
            return True
        escape = ESCAPE_KEYS if barge_in else ""
        for prompt in prompts:
            if not re.fullmatch(r"[A-Za-z0-9_./-]+", prompt):
                raise ValueError("prompt names are [A-Za-z0-9_./-]")
            result = await self.command(f'STREAM FILE {prompt} "{escape}"')
            if result < 0:
                # -1: the file failed or the channel hung up. Ask: on a dead channel
                # CHANNEL STATUS answers 511, which raises CallHungUp.
                await self.command("CHANNEL STATUS")
                continue
            if result > 0 and chr(result) in DTMF_KEYS:
                self.buffer.put(chr(result))
                return True
        return False

    async def _next_key(self, timeout_s: float) -> str | None:
        if self.buffer.pending():
            return await self.buffer.next_key(0)
        result = await self.command(f"WAIT FOR DIGIT {max(1, int(timeout_s * 1000))}")
        if result < 0:
            self.buffer.hang_up()
            raise CallHungUp
        if result == 0:
            return None
        key = chr(result)
        return key if key in DTMF_KEYS else None

    async def collect(self, spec: CollectSpec) -> CollectResult:
        """Keys read before a hang-up was noticed still count: the next AGI command
        raises :class:`CallHungUp`."""
        return await collect_digits(self._next_key, spec)

    async def transfer(self, destination: str) -> None:
        context, exten, priority = parse_destination(destination)
        await self.command(f"SET CONTEXT {context}")
        await self.command(f"SET EXTENSION {exten}")
        await self.command(f"SET PRIORITY {priority}")
        self.transferred = True  # the dialplan continues there when we close

    async def hangup(self) -> None:
        if not self.buffer.hung_up:
            with contextlib.suppress(CallHungUp, AgiError):
                await self.command("HANGUP")
            self.buffer.hang_up()

    async def wait_hangup(self, timeout_s: float | None = None) -> bool:
        if self.buffer.hung_up:
            return True

        # AGI only tells us about a hang-up in a command's answer or an idle HANGUP line
        async def watch() -> None:
            async with self._lock:
                raw = await self._reader.readline()
                if not raw or raw.startswith(b"HANGUP"):
                    self.buffer.hang_up()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watch(), timeout_s)
        return self.buffer.hung_up


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"


async def read_env(reader: asyncio.StreamReader) -> dict[str, str]:
    """The ``agi_*`` header block, up to the blank line."""
    env: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        raw = await reader.readline()
        if not raw:
            raise AgiError("AGI peer closed before the headers ended")
        if len(raw) > MAX_LINE:
            raise AgiError("AGI header line too long")
        line = raw.decode(errors="replace").rstrip("\r\n")
        if not line:
            return env
        key, sep, value = line.partition(":")
        if sep and key.startswith("agi_"):
            env[key.strip()] = value.strip()
    raise AgiError("too many AGI header lines")


class AgiServer:
    """FastAGI server: one handler task per connection, for connections that present
    ``secret`` as their first AGI argument."""

    def __init__(
        self, handler: CallHandler, host: str = "127.0.0.1", port: int = 4573, *, secret: str
    ) -> None:
        if not secret:
            raise ValueError("the FastAGI server needs a secret")
        self.handler = handler
        self.host = host
        self.port = port
        self._secret = secret.encode()
        self.refused = 0  # connections closed for a wrong or missing secret (metrics, tests)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _authentic(self, env: dict[str, str]) -> bool:
        presented = env.pop(SECRET_HEADER, "")
        # Constant time: how much of a guess matched must not show in the timing.
        return hmac.compare_digest(presented.encode(), self._secret)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self.port, limit=MAX_LINE
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                env = await asyncio.wait_for(read_env(reader), 10)
            except (AgiError, TimeoutError, ConnectionError, ValueError):
                return
            if not self._authentic(env):
                self.refused += 1
                # Never the value presented; the channel name only if it looks like one.
                channel = env.get("agi_channel", "")
                log.warning(
                    "FastAGI connection refused: wrong or missing secret (from %s, channel "
                    "%s; %d refused so far)",
                    _peer(writer),
                    channel if _CHANNEL.fullmatch(channel) else "?",
                    self.refused,
                )
                return
            call = AgiCall(reader, writer, env)
            try:
                await self.handler(call)
            except CallHungUp:
                pass
            except Exception:
                log.exception("AGI call handler failed", extra={"call_id": call.call_id})
            if not call.transferred:
                await call.hangup()
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
