"""The free-text guard at the CLI: a card number in an argument is refused (exit 2, one
line naming the option's field, never the value) and stored nowhere."""

from __future__ import annotations

import asyncio
import json

import pytest

from ivr.store.db import Database
from tests.cli.test_cli import arspay
from tests.stored import stored

pytestmark = pytest.mark.slow  # many CLI processes

FORMS = ["4000.0566.5566.5556", "4000 0566 5566 5556", "４０００－０５６６－５５６６－５５５６"]


# The CLI's wiring, on SQLite: the store under it is tested on both databases
# (tests/store, tests/pg_accounts), and each CLI process costs a second or more.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_arguments_refuse_card_numbers_and_store_nothing(db_url: str) -> None:
    out = arspay("--json", "merchants", "create", "행복치과", url=db_url)
    assert out.returncode == 0, out.stderr
    merchant_id = json.loads(out.stdout)[0]["id"]
    attempts = []
    for bad in [*FORMS, "a\x1b[31mred"]:
        attempts += [
            ("merchants", "create", bad),
            ("customers", "create", merchant_id, "--mobile", "010-1234-5678", "--name", bad),
            ("customers", "create", merchant_id, "--mobile", "010-1234-5679", "--ref", bad),
            ("keys", "create", merchant_id, "--name", bad),
        ]
    for args in attempts:
        out = arspay(*args, url=db_url)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        said = " ".join(out.stderr.split())  # (wrapped to the terminal's width)
        assert said.startswith("error: "), said
        assert " must not contain " in said, said
        assert "Traceback" not in out.stderr
        assert args[-1] not in out.stderr + out.stdout

    async def search() -> list[str]:
        db = Database(db_url)
        try:
            return await stored(db, [*FORMS, "4000056655665556", "\x1b[31m"])
        finally:
            await db.close()

    assert asyncio.run(search()) == []
