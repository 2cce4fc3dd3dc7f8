"""``arspay engine run`` freezes its start-up heap once ready (issue #10: a full garbage
collection walking ~130,000 start-up objects stopped every call for ~55 ms)."""

from __future__ import annotations

import gc

from ivr.cli.engine_cmd import settle_heap


def test_the_start_up_objects_leave_the_collectors_reach() -> None:
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        settle_heap()
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # everything imported so far
        assert sum(gc.get_count()) < frozen  # the collector has little left to walk
    finally:
        gc.unfreeze()
