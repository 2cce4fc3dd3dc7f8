"""How the CLI prints records (ivr/cli/output.py): one record as a key–value block,
several as a table only when every row fits the width on one line, else blocks; widths
in terminal cells (Hangul is two); ``--json`` unchanged."""

from __future__ import annotations

import json

import pytest
from rich.cells import cell_len

from ivr.cli import output
from ivr.cli.output import layout, render

from .tables import problems, tables

CARDS = [
    {"id": f"card_{n:02d}abcdef", "issuer": "신한카드", "card": "411111******1111", "status": None}
    for n in range(3)
]
SMS = {
    "id": "sms_0123456789",
    "body": "[행복치과] 자동결제 카드 등록\n0505-000-0001로 전화해 주세요",
    "status": "sent",
}


def test_one_record_is_a_key_value_block_however_wide() -> None:
    text = render("Call request", [SMS], 200)
    assert tables(text) == []
    assert text.splitlines() == [
        "Call request",
        "  id      sms_0123456789",
        "  body    [행복치과] 자동결제 카드 등록",
        "          0505-000-0001로 전화해 주세요",
        "  status  sent",
    ]


def test_many_rows_are_a_table_when_they_fit() -> None:
    text = render("cards", CARDS, 100)
    [table] = tables(text)
    assert len(table) == 3 + 4  # top, header, rule, rows, bottom
    assert problems(text) == []
    # 신한카드 is 4 characters but 8 cells: the borders stay in line
    assert {cell_len(line) for line in table} == {output.table_width(CARDS)}


def test_many_rows_that_do_not_fit_become_blocks_never_a_wrapped_table() -> None:
    width = output.table_width(CARDS)
    assert layout(CARDS, width) == "table"
    assert layout(CARDS, width - 1) == "blocks"
    text = render("cards", CARDS, width - 1)
    assert tables(text) == []
    assert "cards: 3" in text
    assert text.count("issuer  신한카드") == 3
    assert max(cell_len(line) for line in text.splitlines()) < width


def test_korean_text_is_measured_in_cells() -> None:
    rows = [{"name": "행복치과" * 5}, {"name": "x"}]
    assert output.table_width(rows) == 40 + 4
    assert layout(rows, 43) == "blocks"
    assert layout(rows, 44) == "table"


def test_a_value_on_several_lines_is_never_a_table_cell() -> None:
    assert layout([SMS, SMS], 500) == "blocks"


def test_no_rows() -> None:
    assert render("cards", [], 80) == "cards: none\n"


@pytest.mark.parametrize(("env", "tty", "want"), [
    ({"COLUMNS": "61"}, False, 61),
    ({}, False, output.DEFAULT_WIDTH),
])  # fmt: skip
def test_width(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tty: bool, want: int) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr("sys.stdout.isatty", lambda: tty)
    assert output.output_width() == want


def test_the_checker_sees_a_wrapped_table() -> None:
    """What issue #35 saw: rich folding cells into an 80-column table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(box=output.BOX)
    for key in CARDS[0]:
        table.add_column(key, overflow="fold")
    for r in CARDS:
        table.add_row(*(str(v) for v in r.values()))
    console = Console(width=30)
    with console.capture() as cap:
        console.print(table)
    assert problems(cap.get())


def test_cli_json_is_unchanged_and_text_is_blocks(tmp_path: pytest.TempPathFactory) -> None:
    from .test_cli import arspay

    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    assert arspay("migrate", url=url).returncode == 0
    out = arspay("--json", "merchants", "create", "행복치과", url=url)
    [row] = json.loads(out.stdout)
    assert set(row) == {"id", "name", "status"}
    shown = arspay("merchants", "list", url=url, env={"COLUMNS": "40"}).stdout
    assert shown.splitlines()[:2] == ["Merchants", f"  id      {row['id']}"]


def test_what_issue_35_saw_prints_whole_at_80_columns(tmp_path: pytest.TempPathFactory) -> None:
    """The SMS outbox, DID leases and requests of a merchant, as a newcomer prints them
    after the demo on an 80-column terminal: no table has a wrapped or cut cell (the old
    tables folded the SMS body one syllable per line)."""
    from .test_cli import arspay

    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    assert arspay("migrate", url=url).returncode == 0
    assert arspay("dids", "import", "0505-000-0000..0505-000-0009", url=url).returncode == 0

    def j(*args: str) -> list[dict[str, object]]:
        out = arspay("--json", *args, url=url)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    merchant = str(j("merchants", "create", "행복치과")[0]["id"])
    for mobile in ("010-1234-5678", "010-9876-5432"):
        customer = str(j("customers", "create", merchant, "--mobile", mobile)[0]["id"])
        j("requests", "create", merchant, customer, "--product", "임플란트 치료")
    j("sms", "outbox", "--deliver")
    narrow = {"COLUMNS": "80"}
    for args in (("sms", "outbox"), ("dids", "leases"), ("merchants", "list")):
        shown = arspay(*args, url=url, env=narrow)
        assert shown.returncode == 0, shown.stderr
        assert problems(shown.stdout) == [], shown.stdout
        assert max(cell_len(line) for line in shown.stdout.splitlines()) <= 80 or not tables(
            shown.stdout
        )
    sms = arspay("sms", "outbox", url=url, env=narrow).stdout
    assert tables(sms) == []  # the bodies do not fit a row: one block per message
    assert sms.count("자동결제 카드 등록 안내입니다") == 2
