"""``prompts/manifest``: prompt id → Korean text, parsed and validated.

Format: UTF-8 lines ``prompt.id = 한국어 텍스트``; blank lines and lines starting with
``#`` are ignored. Ids are dot-separated ``[a-z0-9_]`` words. The text may hold
placeholders from :data:`ivr.prompts.slots.SLOTS` (``{amount}``); a duplicate id, an
empty text, an unknown placeholder or an unbalanced brace is a :class:`ManifestError`
naming the line.

A prompt's text is split into :class:`Static` pieces and :class:`Slot` placeholders.
Static pieces that say something are numbered 0, 1, … in order (``Static.index``): piece
``n`` of ``pay.details`` plays as segment ``s/pay.details.<n>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ivr.prompts.errors import ManifestError
from ivr.prompts.slots import SLOTS

ID_RE: Final = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")


@dataclass(frozen=True, slots=True)
class Static:
    text: str
    index: int | None  # None: only spaces or punctuation, nothing to say


@dataclass(frozen=True, slots=True)
class Slot:
    name: str


Part = Static | Slot


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str
    text: str
    parts: tuple[Part, ...]
    line: int

    @property
    def slots(self) -> frozenset[str]:
        return frozenset(p.name for p in self.parts if isinstance(p, Slot))

    @property
    def spoken(self) -> tuple[Static, ...]:
        """The static pieces that have a segment, in order."""
        return tuple(p for p in self.parts if isinstance(p, Static) and p.index is not None)


@dataclass(frozen=True, slots=True)
class Manifest:
    source: str
    prompts: Mapping[str, Prompt]


def _says_something(text: str) -> bool:
    return any(c.isalnum() for c in text)


def parse_template(text: str) -> tuple[Part, ...]:
    """Split ``text`` into static pieces and placeholders; ValueError says what is wrong."""
    parts: list[Part] = []
    spoken = 0

    def static(piece: str) -> None:
        nonlocal spoken
        if piece:
            index = spoken if _says_something(piece) else None
            spoken += index is not None
            parts.append(Static(piece, index))

    pos = 0
    while pos < len(text):
        opening, closing = text.find("{", pos), text.find("}", pos)
        if opening < 0 and closing < 0:
            break
        if closing >= 0 and (opening < 0 or closing < opening):
            raise ValueError("unbalanced braces: '}' without '{'")
        end = text.find("}", opening + 1)
        nested = text.find("{", opening + 1)
        if end < 0 or 0 <= nested < end:
            raise ValueError("unbalanced braces: '{' without '}'")
        name = text[opening + 1 : end]
        if name not in SLOTS:
            raise ValueError(f"unknown placeholder {{{name}}} (known: {', '.join(SLOTS)})")
        static(text[pos:opening])
        parts.append(Slot(name))
        pos = end + 1
    static(text[pos:])
    return tuple(parts)


def parse_manifest(content: str, *, source: str = "manifest") -> Manifest:
    """Parse manifest text; errors name ``source:line``."""
    prompts: dict[str, Prompt] = {}
    for number, raw in enumerate(content.removeprefix("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue

        def fail(why: str, number: int = number) -> ManifestError:
            return ManifestError(f"{source}:{number}: {why}")

        key, sep, text = line.partition("=")
        prompt_id, text = key.strip(), text.strip()
        if not sep:
            raise fail("expected 'prompt.id = text'")
        if not ID_RE.fullmatch(prompt_id):
            raise fail("prompt ids are dot-separated words of a-z, 0-9 and _")
        if prompt_id in prompts:
            raise fail(f"duplicate prompt id {prompt_id} (first on line {prompts[prompt_id].line})")
        if not text:
            raise fail(f"prompt {prompt_id} has no text")
        try:
            parts = parse_template(text)
        except ValueError as exc:
            raise fail(f"prompt {prompt_id}: {exc}") from None
        if not any(isinstance(p, Slot) or p.index is not None for p in parts):
            raise fail(f"prompt {prompt_id} has nothing to say")
        prompts[prompt_id] = Prompt(prompt_id, text, parts, number)
    if not prompts:
        raise ManifestError(f"{source}: no prompts")
    return Manifest(source, prompts)


def load_manifest(path: Path) -> Manifest:
    try:
        content = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: prompt manifest not found") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ManifestError(f"{path}:{line}: not UTF-8") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the prompt manifest ({exc.strerror})") from None
    return parse_manifest(content, source=str(path))
