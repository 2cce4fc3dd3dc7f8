"""Fixtures of the SIPp driver's tests: the sipp binary (skipped when missing, except
with ``CI=true``) and a check that no test leaves a sipp process behind."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.testing.sipp_peer import _require, _sipp_pids


@pytest.fixture
def sipp_bin() -> str:
    return _require("sipp")


@pytest.fixture(autouse=True)
def _no_stray_sipp() -> Iterator[None]:
    before = _sipp_pids()
    yield
    deadline = time.monotonic() + 5
    while (_sipp_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (_sipp_pids() - before), "sipp processes left behind"
