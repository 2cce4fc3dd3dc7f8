"""Making WAVs: espeak-ng for generated speech, sox for the telephone format.

Every file written is 8000 Hz, mono, 16-bit signed PCM WAV — what Asterisk's ``wav``
format reads — and appears atomically (temp file in the same directory, then rename), so
Asterisk never plays half a file. Text goes to espeak-ng through a file, never argv.
sox runs in repeatable mode (-R: fixed dither seed), so the same source always gives
the same bytes and the same sha256.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from ivr.prompts.errors import AudioError

SAMPLE_RATE: Final = 8000
# repeatable (fixed dither seed), guard against clipping, errors only
_SOX_FLAGS: Final = ("-R", "-G", "-V1")
_TELEPHONE: Final = ("-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer")
# drop espeak-ng's leading and trailing silence (anything under 0.5 % for 20 ms)
_TRIM_START: Final = ("silence", "1", "0.02", "0.5%")
_TRIM: Final = (*_TRIM_START, "reverse", *_TRIM_START, "reverse")
FILE_MODE: Final = 0o644  # Asterisk may run as another user; mkstemp's 0600 would hide it
_INSTALL_HINT: Final = "install the packages in scripts/debian-packages (scripts/bootstrap)"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AudioError(f"{name} not found: {_INSTALL_HINT}")
    return path


@contextmanager
def _temp(directory: Path, stem: str, suffix: str) -> Iterator[Path]:
    """A temp file path in ``directory`` (hidden, not ending in .wav), removed afterwards."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=f".{stem}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


class AudioTools:
    """espeak-ng with one voice and speed, and sox. Subprocesses, never a shell."""

    def __init__(self, voice: str, speed_wpm: int, *, timeout_s: float = 60.0) -> None:
        self.voice = voice
        self.speed_wpm = speed_wpm
        self.timeout_s = timeout_s

    async def synthesize(self, text: str, dest: Path, *, pause_s: float = 0.0) -> None:
        """Speak ``text`` into ``dest``: trimmed, then ``pause_s`` of silence appended."""
        espeak, sox = _tool("espeak-ng"), _tool("sox")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with (
            _temp(dest.parent, dest.name, ".txt") as text_file,
            _temp(dest.parent, dest.name, ".raw") as raw,
            _temp(dest.parent, dest.name, ".tmp") as out,
        ):
            text_file.write_text(text + "\n", encoding="utf-8")
            await self._run(
                [espeak, "-v", self.voice, "-s", str(self.speed_wpm), "-b", "1",
                 "-w", str(raw), "-f", str(text_file)],
                what="espeak-ng",
            )  # fmt: skip
            effects = [*_TRIM, "pad", "0", f"{pause_s:.3f}"] if pause_s else list(_TRIM)
            await self._run(
                [sox, *_SOX_FLAGS, "-t", "wav", str(raw), *_TELEPHONE, "-t", "wav", str(out),
                 *effects],
                what="sox",
            )  # fmt: skip
            _check(out, what="speech")
            out.chmod(FILE_MODE)
            out.replace(dest)

    async def convert(self, source: Path, dest: Path) -> None:
        """Convert an operator's recording (any WAV sox reads) into ``dest``."""
        sox = _tool("sox")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _temp(dest.parent, dest.name, ".tmp") as out:
            await self._run(
                [sox, *_SOX_FLAGS, "-t", "wav", str(source), *_TELEPHONE, "-t", "wav", str(out)],
                what=f"sox (recording {source})",
                show_stderr=True,
            )
            _check(out, what=f"recording {source}")
            out.chmod(FILE_MODE)
            out.replace(dest)

    async def _run(self, argv: list[str], *, what: str, show_stderr: bool = False) -> None:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                _, stderr = await proc.communicate()
        except TimeoutError:
            raise AudioError(f"{what} took longer than {self.timeout_s:g} s") from None
        finally:
            if proc.returncode is None:
                proc.kill()
                # Bounded: once in CI a child's exit was never reported to the loop and
                # this wait hung the caller for good; an error is better than a hang.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await proc.wait()
        if proc.returncode != 0:
            detail = ""
            if show_stderr and stderr.strip():
                detail = ": " + stderr.decode(errors="replace").strip().splitlines()[-1]
            raise AudioError(f"{what} failed (exit {proc.returncode}){detail}")


def _check(path: Path, *, what: str) -> None:
    """The file is a telephone WAV with some audio in it."""
    try:
        with wave.open(str(path), "rb") as w:
            ok = (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE, 1, 2)
            frames = w.getnframes()
    except (wave.Error, EOFError):
        raise AudioError(f"{what}: sox wrote an unreadable WAV") from None
    if not ok:
        raise AudioError(f"{what}: sox did not write 8 kHz mono 16-bit")
    if frames == 0:
        raise AudioError(f"{what}: no audio (silence only)")
