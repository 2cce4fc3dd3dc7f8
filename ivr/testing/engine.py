"""Run ``arspay engine run`` as a child process that tests and benchmarks can SIGKILL,
and play Asterisk's side of a FastAGI call against it.

    engine = EngineProcess(env, log_path)
    await engine.start()         # returns once it printed "engine ready"
    await engine.kill()          # SIGKILL: no clean-up of any kind runs

:class:`AgiPayer` connects to the engine's FastAGI port as Asterisk would for a call
from ``caller`` to ``did`` and answers its commands: ``STREAM FILE`` of a prompt it has a
key for is barged into with that key, ``WAIT FOR DIGIT`` gets the next queued key or a
timeout. It records the prompts it was played (sound names only). No digit is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class EngineProcess:
    """``arspay engine run`` as a child process; its log goes to ``log_path``."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ARSPAY_")}
        self.env |= dict(env)
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout_s: float = 30) -> float:
        """Start it; returns once it printed ``engine ready`` (seconds it took)."""
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ivr.cli", "engine", "run", "--no-build-prompts",
                cwd=REPO, env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=log,
            )  # fmt: skip
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    line = await self.proc.stdout.readline()
                    if not line:
                        raise RuntimeError(f"engine exited: {self.log_tail()}")
                    if line.startswith(b"engine ready"):
                        break
        except BaseException:
            await self.kill()
            raise
        return time.monotonic() - started

    async def kill(self) -> None:
        """SIGKILL: no clean-up of any kind runs."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 15 s; the exit code."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                await self.kill()
        return self.proc.returncode

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


_ids = itertools.count(1)
_STREAM = re.compile(r'^STREAM FILE (\S+) "([^"]*)"')


@dataclass
class AgiPayer:
    """One call over FastAGI; ``keys`` maps a prompt id (``pay.card_choice``) to the
    keys to press while it plays."""

    port: int
    did: str
    caller: str
    keys: Mapping[str, str]
    env: Mapping[str, str] = field(default_factory=dict)  # more agi_* headers
    played: list[str] = field(default_factory=list)  # prompt ids, in order
    _queue: list[str] = field(default_factory=list)

    async def call(self, timeout_s: float = 60) -> list[str]:
        """Run the call until the engine hangs up (or its process dies); the prompt ids
        played."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        uid = f"{int(time.time())}.{next(_ids)}"
        headers = {
            "agi_network": "yes", "agi_network_script": "arspay",
            "agi_request": f"agi://127.0.0.1:{self.port}/arspay",
            "agi_channel": f"PJSIP/payer-{uid}", "agi_uniqueid": uid,
            "agi_callerid": self.caller, "agi_extension": self.did, "agi_context": "arspay-agi",
            **self.env,
        }  # fmt: skip
        writer.write("".join(f"{k}: {v}\n" for k, v in headers.items()).encode() + b"\n")
        try:
            async with asyncio.timeout(timeout_s):
                while line := await reader.readline():
                    writer.write(self._answer(line.decode().strip()).encode() + b"\n")
                    await writer.drain()
        except (ConnectionError, OSError):
            pass  # the engine's process died mid-call
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        return self.played

    def _answer(self, command: str) -> str:
        stream = _STREAM.match(command)
        if stream:
            prompt = _prompt_id(stream.group(1))
            if prompt and (not self.played or self.played[-1] != prompt):
                self.played.append(prompt)
                self._queue.extend(self.keys.get(prompt, ""))
            if stream.group(2) and self._queue:  # barge-in allowed: press the first key
                return f"200 result={ord(self._queue.pop(0))} endpos=0"
            return "200 result=0 endpos=8000"
        if command.startswith("WAIT FOR DIGIT"):
            return f"200 result={ord(self._queue.pop(0))}" if self._queue else "200 result=0"
        if command.startswith("CHANNEL STATUS"):
            return "200 result=6"
        return "200 result=1" if command.startswith(("HANGUP", "SET ")) else "200 result=0"


def _prompt_id(sound: str) -> str | None:
    """``arspay/s/pay.card_choice.0`` -> ``pay.card_choice`` (static segments only)."""
    found = re.fullmatch(r"arspay/s/(.+)\.\d+", sound)
    return found.group(1) if found else None
