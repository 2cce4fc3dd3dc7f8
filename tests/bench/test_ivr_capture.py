"""bench/ivr_load.py's reading of the ARI WebSocket capture: frames split over packets
or packed into one, masked (the engine's) or not (Asterisk's), a live capture that
starts without the HTTP upgrade."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ivr_load.py"


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ivr_load_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def frame(message: dict[str, Any], *, masked: bool) -> bytes:
    payload = json.dumps(message).encode()
    size = len(payload)
    head = bytes([0x81])
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([mask_bit | size])
    else:
        head += bytes([mask_bit | 126]) + struct.pack(">H", size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def test_frames_are_read_across_and_within_packets() -> None:
    ivr = bench()
    big = {"type": "ChannelDtmfReceived", "digit": "5", "pad": "x" * 300}
    one, two, three = (
        frame(big, masked=False),
        frame({"type": "A"}, masked=False),
        frame({"type": "B"}, masked=False),
    )
    packets = [(1.0, one[:100]), (2.0, one[100:] + two), (3.0, three)]
    got = ivr.ws_messages(packets)
    assert [(t, m["type"]) for t, m in got] == [
        (2.0, "ChannelDtmfReceived"),
        (2.0, "A"),
        (3.0, "B"),
    ]
    assert got[0][1]["pad"] == "x" * 300


def test_the_engines_masked_frames_and_the_upgrade_are_handled() -> None:
    ivr = bench()
    upgrade = b"GET /ari/events?app=x HTTP/1.1\r\nHost: a\r\n\r\n"
    request = {"type": "RESTRequest", "method": "POST", "uri": "channels/c1/play/p1"}
    packets = [(1.0, upgrade), (1.5, frame(request, masked=True))]
    assert ivr.ws_messages(packets) == [(1.5, request)]
    # a capture started on a live connection: frames from the first byte
    assert ivr.ws_messages([(4.0, frame(request, masked=True))]) == [(4.0, request)]


def run_row(ivr: ModuleType, system: str, p99: float, **extra: Any) -> Any:
    return ivr.Run(
        system=system, concurrency=10, calls=40, ok=40, sipp_failed=0, peak_calls=10,
        turnarounds=240, late=0, barged_in=0, calls_measured=40, p50_ms=p99 / 2, p99_ms=p99,
        max_ms=p99, asterisk_cpu_s_per_call=0.2, engine_cpu_s_per_call=0.05,
        sipp_cpu_s_per_call=0.1, machine_busy_pct=2.0, wall_s=300.0, **extra,
    )  # fmt: skip


def test_the_ari_floor_is_compared_with_the_baseline_when_split(capsys: Any) -> None:
    ivr = bench()
    split = {"asterisk in": (0.3, 0.7), "engine": (0.4, 1.0), "asterisk out": (0.3, 2.0),
             "asterisk in+out": (0.7, 2.7)}  # fmt: skip
    runs = [
        run_row(ivr, "engine-ari", 3.0, split_ms=split),
        run_row(ivr, "engine-agi", 2.2),
        run_row(ivr, "baseline", 1.35),
    ]
    ari, agi = ivr.comparisons(runs)
    assert ari["ari_floor_p99_ms"] == 2.7
    assert ari["ari_floor_p99_vs_baseline"] == 2.0
    assert ari["goals"]["p99_le_2x_baseline"] is False  # 3.0 / 1.35
    assert "ari_floor_p99_ms" not in agi  # no split on that path
    ivr.print_comparisons([ari, agi])
    out = capsys.readouterr().out
    assert "ARI floor" in out
    assert "engine-ari    10  p99 2.7 ms = 2.00x the baseline's p99" in out
