"""Read systemd unit files as systemd does (keys may repeat; ``#`` and ``;`` start
comments; a trailing backslash continues a line) — no systemd needed."""

from __future__ import annotations

import shlex
from pathlib import Path

Unit = dict[str, list[tuple[str, str]]]


def parse(path: Path) -> Unit:
    sections: Unit = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path}: {line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path}: {line!r} is not key=value"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: Unit, key: str, section: str = "Service") -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def value(unit: Unit, key: str, section: str = "Service") -> str:
    found = values(unit, key, section)
    assert len(found) == 1, f"{key}: {found}"
    return found[0]


def command(line: str) -> list[str]:
    """An Exec line's argv, without systemd's prefixes (``-``, ``@``, ``+``, ``!``)."""
    return shlex.split(line.lstrip("-@+!:"))
