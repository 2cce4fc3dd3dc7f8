"""The engine's event loop (``engine.event_loop``): uvloop by default, asyncio's on request
or where uvloop is missing; ``run`` drives a coroutine on it and maps expected errors."""

from __future__ import annotations

import asyncio
import sys

import pytest
import typer

from ivr.cli.app import loop_factory, loop_name, run
from ivr.errors import ArspayError, ConfigError
from ivr.settings import load_settings

NO_FILE = {"ARSPAY_CONFIG": "/nonexistent.toml"}


async def _running() -> str:
    return loop_name(asyncio.get_running_loop())


def test_the_engine_runs_on_uvloop_by_default() -> None:
    settings = load_settings(env=NO_FILE)
    assert settings.engine.event_loop == "uvloop"
    assert run(_running(), event_loop=settings.engine.event_loop) == "uvloop"


def test_asyncio_loop_on_request() -> None:
    settings = load_settings(env=NO_FILE | {"ARSPAY_ENGINE_EVENT_LOOP": "asyncio"})
    assert settings.engine.event_loop == "asyncio"
    assert run(_running(), event_loop=settings.engine.event_loop) == "asyncio"


def test_unknown_loop_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"engine\.event_loop"):
        load_settings(env=NO_FILE | {"ARSPAY_ENGINE_EVENT_LOOP": "trio"})


def test_without_uvloop_installed_asyncio_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert loop_factory("uvloop") is None
    assert run(_running(), event_loop="uvloop") == "asyncio"


def test_expected_errors_exit_2_on_either_loop(capsys: pytest.CaptureFixture[str]) -> None:
    async def fail() -> None:
        raise ArspayError("the PG said no")

    for kind in ("uvloop", "asyncio"):
        with pytest.raises(typer.Exit) as exited:
            run(fail(), event_loop=kind)
        assert exited.value.exit_code == 2
        assert "the PG said no" in capsys.readouterr().err
