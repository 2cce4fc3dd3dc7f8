"""Every prompt id a flow can play has text in prompts/manifest and audio after a build.

The ids are read from the flow sources (string literals given to ``say``/``Say``/
``voice.say``/``_last_words``, and the error prompts validators return) plus every
decline prompt; a new prompt id in a flow without a manifest line fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ivr.gateways.declines import all_prompt_ids
from ivr.prompts import PromptBook
from ivr.settings import load_settings

FLOWS = Path(__file__).resolve().parents[2] / "ivr" / "flows"
PROMPT_ID = re.compile(r"(common|auth|err|reg|card|pay)\.[a-z0-9_.]+")
SAMPLE = {"merchant": "행복치과", "product": "임플란트", "issuer": "신한", "amount": 60_000,
          "last4": "1111", "approval": "12345678", "months": 3, "min_months": 2,
          "max_months": 3}  # fmt: skip


def used_prompt_ids() -> set[str]:
    found: set[str] = set()
    for path in FLOWS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and PROMPT_ID.fullmatch(node.value)
            ):
                found.add(node.value)
    return found | set(all_prompt_ids())


def test_the_scan_finds_the_flows_prompts() -> None:
    ids = used_prompt_ids()
    assert {"reg.consent", "card.number", "pay.confirm.installment", "err.too_many"} <= ids
    assert len(ids) > 40


def test_every_prompt_a_flow_uses_has_text() -> None:
    book = PromptBook.from_settings(load_settings(env={"ARSPAY_CONFIG": "/x.toml"}).prompts)
    missing = sorted(used_prompt_ids() - book.ids)
    assert missing == [], f"prompt ids used by flows but not in prompts/manifest: {missing}"


@pytest.mark.anyio
async def test_every_prompt_a_flow_uses_has_audio(tmp_path: Path) -> None:
    env = {"ARSPAY_CONFIG": "/x.toml", "ARSPAY_PROMPTS_SOUNDS_DIR": str(tmp_path / "sounds")}
    book = PromptBook.from_settings(load_settings(env=env).prompts)
    ids = sorted(used_prompt_ids())
    await book.build(ids)
    for pid in ids:
        values = {k: v for k, v in SAMPLE.items() if k in book.slots(pid)}
        sounds = await book.render(pid, **values)
        assert sounds, pid
        for sound in sounds:
            path = tmp_path / "sounds" / (sound.removeprefix("arspay/") + ".wav")
            assert path.is_file(), (pid, sound)
            assert path.stat().st_size > 1000, (pid, sound)
