"""Segments: the unit of audio. One WAV per segment, played in sequence.

=================  ====================================================
``s/<id>.<n>``     static piece ``n`` of prompt ``id`` (from the manifest)
``n/<word>``       number words: ``n/0`` 영, ``n/1``..``n/9`` 일..구, ``n/sip`` 십,
                   ``n/baek`` 백, ``n/cheon`` 천, ``n/man`` 만, ``n/eok`` 억, ``n/jo`` 조
``d/<digit>``      digits ``d/0`` 공 .. ``d/9`` 구
``g/<hex16>``      a free-text value, named by sha256 of (voice, speed, text)
=================  ====================================================

Asterisk plays segment ``NAME`` as the sound ``arspay/NAME`` (file
``<sounds_dir>/NAME.wav``); names are ASCII ``[A-Za-z0-9_./-]``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Final

from ivr.prompts import korean
from ivr.prompts.manifest import Prompt

SOUND_PREFIX: Final = "arspay/"
NAME_RE: Final = re.compile(r"(?:[A-Za-z0-9_-][A-Za-z0-9_.-]*/)*[A-Za-z0-9_-][A-Za-z0-9_.-]*")

# Silence (seconds) after a generated segment: a short breath after a static phrase or
# a number group (만, 억, 조), none inside a number so "오만 삼천" flows.
_PAUSE_STATIC: Final = 0.15
_PAUSE_GROUP: Final = 0.08
_PAUSE_FREE_TEXT: Final = 0.05


@dataclass(frozen=True, slots=True)
class Segment:
    name: str  # e.g. "s/pay.details.0"
    text: str  # what the TTS says when no recording overrides it
    pause_s: float = 0.0

    @property
    def sound(self) -> str:
        """The Asterisk sound name."""
        return SOUND_PREFIX + self.name


def is_segment_name(name: str) -> bool:
    return bool(NAME_RE.fullmatch(name)) and ".." not in name


def static_segments(prompt: Prompt) -> list[Segment]:
    return [
        Segment(f"s/{prompt.id}.{piece.index}", piece.text.strip(), _PAUSE_STATIC)
        for piece in prompt.spoken
    ]


def free_text_segment(text: str, *, voice: str, speed_wpm: int) -> Segment:
    key = json.dumps([voice, speed_wpm, text], ensure_ascii=False).encode()
    return Segment(f"g/{hashlib.sha256(key).hexdigest()[:16]}", text, _PAUSE_FREE_TEXT)


def _pause(name: str) -> float:
    return _PAUSE_GROUP if name in ("n/man", "n/eok", "n/jo") else 0.0


NUMBER_SEGMENTS: Final = {
    name: Segment(name, word, _pause(name)) for name, word in korean.NUMBER_WORDS.items()
}
DIGIT_SEGMENTS: Final = {name: Segment(name, word) for name, word in korean.DIGIT_WORDS.items()}
FIXED_SEGMENTS: Final = {**NUMBER_SEGMENTS, **DIGIT_SEGMENTS}
"""Every number and digit segment: any reading plays from these."""
