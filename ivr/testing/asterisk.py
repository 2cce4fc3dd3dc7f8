"""Drive the local Asterisk from tests and benchmarks through ``scripts/asterisk``.

    ast = Asterisk(repo)
    ast.setup()          # seconds spent provisioning; 0.0 when already done
    ast.start()
    ast.cli("core show channels")
    ast.stop()

Every method runs the script with the current environment (``ARSPAY_*`` settings pass
through) unless ``env`` is given, and raises :class:`RuntimeError` carrying the script's
stderr when it fails.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).parents[2]


@dataclass(frozen=True)
class Asterisk:
    repo: Path = REPO
    env: Mapping[str, str] | None = None

    @property
    def script(self) -> Path:
        return self.repo / "scripts" / "asterisk"

    def _run(self, *args: str, timeout: float = 60, check: bool = True) -> str:
        env = dict(os.environ if self.env is None else self.env)
        try:
            proc = subprocess.run(  # noqa: S603 - our own script, fixed arguments
                [str(self.script), *args],
                cwd=self.repo,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"scripts/asterisk {' '.join(args)}: timed out") from exc
        if check and proc.returncode != 0:
            detail = proc.stderr.strip() or proc.stdout.strip()
            raise RuntimeError(
                f"scripts/asterisk {' '.join(args)} failed (exit {proc.returncode}): {detail}"
            )
        return proc.stdout

    def setup(self) -> float:
        """Provision Asterisk if needed; seconds it took (0.0 if it was already there)."""
        started = time.monotonic()
        out = self._run("setup", timeout=1800)
        return time.monotonic() - started if "provisioned in" in out else 0.0

    def start(self) -> None:
        """Render the config and start Asterisk; returns once ARI answers."""
        self._run("start", timeout=90)

    def stop(self) -> None:
        self._run("stop", timeout=60)

    def restart(self) -> None:
        self.stop()
        self.start()

    def is_running(self) -> bool:
        return self._run("status", check=False).startswith("running:")

    def cli(self, cmd: str) -> str:
        """Output of one Asterisk CLI command (``asterisk -rx CMD``)."""
        out = self._run("cli", cmd)
        if out.startswith("No such command"):  # asterisk -rx exits 0 for these
            raise RuntimeError(f"asterisk cli {cmd!r}: {out.strip()}")
        return out

    @property
    def log_dir(self) -> Path:
        return Path(self._run("logdir").strip())

    @property
    def sounds_dir(self) -> Path:
        """Where prompts go; play them as ``sound:arspay/NAME`` (no extension)."""
        return Path(self._run("soundsdir").strip())
