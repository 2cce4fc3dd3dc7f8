"""The whole stack on one machine, started and stopped as one (``arspay up``).

:meth:`OneBox.start`, in order: Asterisk provisioned if needed (``scripts/asterisk
setup``), the schema migrated, the vault's keys made where missing, Asterisk started with
the configuration rendered from the settings (the softphone account included), the
sandbox PG process unless a real PG is configured, and the engine (``arspay engine
run``: calls over ARI and FastAGI, the REST API and the console). :meth:`OneBox.stop`
stops what was started, newest first — engine, sandbox PG, Asterisk — each politely
(SIGTERM) and then for good (SIGKILL) if it does not end in time; it is safe to call at
any point, and twice.

The engine writes the voice prompts where this Asterisk plays them from
(``prompts.sounds_dir`` is set to ``scripts/asterisk soundsdir``). Children run in their
own session, so a Ctrl-C in the terminal reaches ``arspay up`` only, and it stops them in
order. Their output goes to ``<var_dir>/engine.log`` and ``<var_dir>/sandbox-pg.log``.
Settings pass to every child through the environment the caller gives (``ARSPAY_*``):
nothing here is global.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ivr.errors import ArspayError

REPO = Path(__file__).resolve().parents[1]
ASTERISK_SCRIPT = REPO / "scripts" / "asterisk"
# The sandbox PG takes any key it is given; these are the one box's when none is set.
SANDBOX_KEY = "arspay-sandbox"
SANDBOX_SECRET = "arspay-sandbox-secret"  # noqa: S105 - a local fake PG's, published
STOP_GRACE_S = 20.0


class OneBoxError(ArspayError, error_id="onebox-start-failed"):
    """A part of the stack could not be started."""


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class OneBox:
    """``env`` is the whole environment of every child (``ARSPAY_*`` settings in it);
    ``say`` prints one progress line."""

    env: Mapping[str, str]
    var_dir: Path
    say: Callable[[str], None]
    gateway_sandbox: bool = True
    vault_local: bool = True
    transcript: bool = False
    children: list[Child] = field(default_factory=list)
    asterisk_started: bool = False

    # -- helpers

    def _asterisk(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        """``scripts/asterisk ARGS``' output; with ``check`` a failure raises."""
        try:
            proc = subprocess.run(  # noqa: S603 - our own script, fixed arguments
                [str(ASTERISK_SCRIPT), *args],
                cwd=REPO,
                env=dict(self.env),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise OneBoxError(f"scripts/asterisk {args[0]}: timed out") from None
        if check and proc.returncode != 0:
            detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
            raise OneBoxError(f"scripts/asterisk {args[0]} failed: {' / '.join(detail)}")
        return proc.stdout.strip()

    def _arspay(self, *args: str) -> None:
        """One ``arspay`` command to its end (its output only when it fails)."""
        proc = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
            [sys.executable, "-m", "ivr.cli", *args],
            env=dict(self.env),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            raise OneBoxError(f"arspay {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")

    def _spawn(self, name: str, args: list[str], ready: str, timeout_s: float) -> Child:
        log = self.var_dir / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        out: IO[bytes] = log.open("wb")
        try:
            proc = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
                [sys.executable, "-m", "ivr.cli", *args],
                env=dict(self.env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches `up`, which stops us
            )
        finally:
            out.close()
        child = Child(name, proc, log)
        self.children.append(child)
        deadline = time.monotonic() + timeout_s
        while ready not in log.read_text(errors="replace"):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                raise OneBoxError(f"{name} exited during start: {' / '.join(tail)} (see {log})")
            if time.monotonic() > deadline:
                raise OneBoxError(f"{name} not ready after {timeout_s:.0f} s (see {log})")
            time.sleep(0.2)
        return child

    # -- the stack

    def start(self) -> dict[str, str]:
        """Start everything; what ``scripts/asterisk`` reports (version, log dir)."""
        self.say("asterisk: setup (provisions Asterisk on first use, about a minute)")
        self._asterisk("setup", timeout=1800)
        if self._asterisk("status", check=False).startswith("running"):
            raise OneBoxError(
                "Asterisk is already running here: `scripts/asterisk stop` it first "
                "(arspay up starts its own and stops it on Ctrl-C)"
            )
        # The prompts go where this Asterisk plays them from (inside its root).
        self.env = {**self.env, "ARSPAY_PROMPTS_SOUNDS_DIR": self._asterisk("soundsdir")}
        self.say("schema: migrate")
        self._arspay("migrate")
        if self.vault_local:
            self.say("vault: keys")
            self._arspay("vault", "init")
        self.say("asterisk: start")
        self.asterisk_started = True
        self._asterisk("start", timeout=120)
        if self.gateway_sandbox:
            self.say("sandbox PG: start")
            self._spawn("sandbox-pg", ["sandbox-pg"], "listening on", 30)
        self.say("engine: start (builds the voice prompts on first use)")
        engine = ["engine", "run"] + (["--transcript"] if self.transcript else [])
        self._spawn("engine", engine, "engine ready", 900)
        return {
            "version": self._asterisk("cli", "core show version").split(" built ")[0],
            "logdir": self._asterisk("logdir"),
        }

    def dead(self) -> Child | None:
        """A child that has exited on its own (the stack is no longer whole)."""
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def stop(self) -> None:
        """Stop what was started, newest first; never raises for a part that is gone."""
        while self.children:
            child = self.children.pop()
            _end(child.proc)
            self.say(f"{child.name}: stopped")
        if self.asterisk_started:
            self.asterisk_started = False
            try:
                self._asterisk("stop", timeout=60)
            except OneBoxError as exc:
                self.say(str(exc))
            else:
                self.say("asterisk: stopped")


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def lan_address() -> str:
    """This machine's address on its default route (no packet is sent)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
            address: str = s.getsockname()[0]
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        raise OneBoxError(
            "no LAN address found: set asterisk.softphone_bind (ARSPAY_ASTERISK_SOFTPHONE_BIND)"
        )
    return address


def child_env(base: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    env = dict(base)
    env.update(overrides)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
