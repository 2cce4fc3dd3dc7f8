"""The console's texts (ivr/console/messages/*.toml): every key a template or a page
module names is in both languages, a key one language lacks stops the import, and a
key the catalog lacks fails loudly rather than showing nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ivr.bulk.jobs import KINDS as BULK_KINDS
from ivr.consent.ledger import KINDS as CONSENT_KINDS
from ivr.console import i18n
from ivr.console.pages import settings
from ivr.console.pages.sms import KINDS as SMS_KINDS
from ivr.domain.states import CallRequestKind, DeliveryStatus, EndpointStatus

CONSOLE = Path(i18n.__file__).parent
TEMPLATES = sorted((CONSOLE / "templates").rglob("*.html"))
MODULES = sorted(CONSOLE.rglob("*.py"))
# what looks like a text key: ``word.word[.word…]``
KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
FILES = (".html", ".key")  # names like ``audit.html`` are no keys
QUOTED = re.compile(r"""["']([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)["']""")
# ``t("prefix." ~ value)`` in a template, or a prefix handed to a macro that builds the
# key (``choice(..., prefix="sms.kind.")``): each such family and the values it takes
DYNAMIC = re.compile(r"""(?:\bt\(\s*|\bprefix=)["']([a-z0-9_.]+\.)["']\s*(?:~|[,)])""")
FAMILIES: dict[str, list[str]] = {
    "bulk.kind.": list(BULK_KINDS),
    "consent.kind.": sorted(CONSENT_KINDS),
    "creq.kind.": [k.value for k in CallRequestKind],
    "role.": ["operator", "merchant"],
    "settings.": [*settings.CHECKBOXES, *settings.TRISTATE, *settings.TEXTS],
    "settings.notice.": list(settings.NOTICE_SWITCHES),
    "sms.kind.": SMS_KINDS,
    "wh.delivery.": [s.value for s in DeliveryStatus],
    "wh.state.": [s.value for s in EndpointStatus],
}
PREFIXES = {key.split(".", 1)[0] for key in i18n.CATALOG}


def _keys(found: set[str]) -> set[str]:
    return {v for v in found if KEY.match(v) and v.split(".", 1)[0] in PREFIXES
            and not v.endswith(FILES)}  # fmt: skip


def _python_keys(path: Path) -> set[str]:
    """String constants in ``path`` shaped like a key under a prefix the catalog uses
    (``"cus.ref_taken"``), but for the prefix handed to ``word`` (pages/payments.py),
    which shows the value itself where the catalog has no word for it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    prefixes = {a.value for n in ast.walk(tree) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Name) and n.func.id == "word"
                for a in n.args if isinstance(a, ast.Constant)}  # fmt: skip
    return _keys({v for v in found - prefixes if isinstance(v, str)})


def _template_keys(path: Path) -> set[str]:
    return _keys(set(QUOTED.findall(path.read_text(encoding="utf-8"))))


def test_every_key_the_pages_name_is_in_both_languages() -> None:
    named = {(str(p.relative_to(CONSOLE)), k) for p in MODULES for k in _python_keys(p)}
    named |= {(str(p.relative_to(CONSOLE)), k) for p in TEMPLATES for k in _template_keys(p)}
    assert len(named) > 300  # the scan finds them (it is not looking at nothing)
    missing = sorted((where, k) for where, k in named if k not in i18n.CATALOG)
    assert not missing
    for key in {k for _, k in named}:
        assert all(i18n.text(lang, key, **_blanks(key)) for lang in i18n.LANGS), key


def test_every_key_a_template_builds_is_in_both_languages() -> None:
    used = {m for p in TEMPLATES for m in DYNAMIC.findall(p.read_text(encoding="utf-8"))}
    assert used == FAMILIES.keys()  # a new family needs its values listed here
    for prefix, values in FAMILIES.items():
        for value in values:
            assert prefix + value in i18n.CATALOG, prefix + value


def _blanks(key: str) -> dict[str, str]:
    """A value for each ``{name}`` the text of ``key`` takes, in either language."""
    names = set()
    for template in i18n.CATALOG[key]:
        names |= set(re.findall(r"\{(\w+)\}", template))
    return dict.fromkeys(names, "x")


def test_both_languages_take_the_same_values() -> None:
    for key, (ko, en) in i18n.CATALOG.items():
        assert set(re.findall(r"\{(\w*)\}", ko)) == set(re.findall(r"\{(\w*)\}", en)), key
    for key, pair in [*i18n.CATALOG.items(), *i18n.STATUS.items()]:
        assert all(s.strip() for s in pair), key


def test_a_key_not_in_the_catalog_fails_loudly() -> None:
    with pytest.raises(KeyError, match=r"nav\.nowhere"):
        i18n.text("ko", "nav.nowhere")
    assert i18n.status("en", "no_such_status") == "no_such_status"  # shown as it is


def _write(folder: Path, ko: str, en: str) -> Path:
    (folder / "ko.toml").write_text(ko, encoding="utf-8")
    (folder / "en.toml").write_text(en, encoding="utf-8")
    return folder


def test_the_shipped_files_are_what_the_console_reads(tmp_path: Path) -> None:
    assert i18n.load() == {"text": i18n.CATALOG, "status": i18n.STATUS}
    ok = _write(tmp_path, '[text]\n"a.b" = "가"\n[status]\nx = "엑스"\n',
                '[text]\n"a.b" = "A"\n[status]\nx = "ex"\n')  # fmt: skip
    assert i18n.load(ok) == {"text": {"a.b": ("가", "A")}, "status": {"x": ("엑스", "ex")}}


@pytest.mark.parametrize(
    ("ko", "en", "error"),
    [
        ('[text]\n"a.b" = "가"\n"a.c" = "나"\n', '[text]\n"a.b" = "A"\n', r"\['a\.c'\]"),
        ('[text]\n"a.b" = "가"\n', '[text]\n"a.b" = "A"\n[status]\nx = "ex"\n', "'x'"),
        ('[text]\n"a.b" = "가"\n"a.b" = "나"\n', '[text]\n"a.b" = "A"\n', r"ko\.toml"),
        ('[text]\n"a.b" = 1\n', '[text]\n"a.b" = "A"\n', "no text"),
    ],
    ids=["text-in-one-language", "status-in-one-language", "key-twice", "not-text"],
)
def test_message_files_that_disagree_are_refused(
    tmp_path: Path, ko: str, en: str, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        i18n.load(_write(tmp_path, ko, en))
