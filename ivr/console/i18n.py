"""Page text in Korean (default) and English.

The texts are data, not code: ``messages/ko.toml`` and ``messages/en.toml``, each with
a ``[text]`` table (page texts by key) and a ``[status]`` table (status words), read
once at import into ``CATALOG[key] = (korean, english)`` and :data:`STATUS`. The two
files must name the same keys (TOML itself refuses a key written twice), else the
import fails: a text missing in one language is a bug found at start, not on a page.
Templates call ``t("key")``; a key missing from the catalog is a bug too, so
:func:`text` raises (tests check every key the pages use and render every page in
both languages). Status words come from :data:`STATUS`; unknown ones are shown as
they are.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

Lang = Literal["ko", "en"]
LANGS: tuple[Lang, ...] = ("ko", "en")
MESSAGES = Path(__file__).parent / "messages"
TABLES = ("text", "status")

Pairs = dict[str, tuple[str, str]]


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:  # a key written twice, say
        raise ValueError(f"console texts: {path}: {exc}") from None


def _texts(found: dict[str, Any], where: str) -> dict[str, str]:
    if not all(isinstance(v, str) for v in found.values()):
        raise ValueError(f"console texts: {where} holds a value that is no text")
    return found


def load(folder: Path = MESSAGES) -> dict[str, Pairs]:
    """Each table of the message files as ``key → (korean, english)``; a key that one
    language has and the other lacks is an error."""
    files = {lang: _read(folder / f"{lang}.toml") for lang in LANGS}
    out: dict[str, Pairs] = {}
    for table in TABLES:
        ko, en = (_texts(files[lang].get(table, {}), f"{lang}.toml [{table}]") for lang in LANGS)
        odd = ko.keys() ^ en.keys()
        if odd:
            raise ValueError(f"console texts in one language only ([{table}]): {sorted(odd)}")
        out[table] = {key: (ko[key], en[key]) for key in ko}
    return out


_LOADED = load()
CATALOG: Pairs = _LOADED["text"]
STATUS: Pairs = _LOADED["status"]


def text(lang: Lang, key: str, **values: object) -> str:
    try:
        pair = CATALOG[key]
    except KeyError:
        raise KeyError(f"console text {key!r} is not in the catalog") from None
    template = pair[0] if lang == "ko" else pair[1]
    return template.format(**values) if values else template


def status(lang: Lang, value: str | None) -> str:
    if value is None:
        return "—"
    pair = STATUS.get(value)
    if pair is None:
        return value
    return pair[0] if lang == "ko" else pair[1]


def pick(value: str | None, default: Lang) -> Lang:
    for lang in LANGS:
        if value == lang:
            return lang
    return default
