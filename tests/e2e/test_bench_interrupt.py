"""``bench/ivr_load.py`` stopped by SIGTERM mid-call leaves nothing behind.

It starts its own Asterisk, the engine, a sandbox PG, SIPp and dumpcap, and keeps the
test cards' DTMF in the captures of its work directory. Killed without cleaning up,
those processes outlived it, kept the bench's fixed ports (the next bench or the soak
smoke test then failed) and the captures stayed in /tmp.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ivr.testing.asterisk import Asterisk

REPO = Path(__file__).resolve().parents[2]


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, of every process now."""
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def _descendants(pid: int) -> dict[int, str]:
    """pid -> start time (field 22 of /proc/pid/stat, so a reused pid is not mistaken)."""
    tree, found, todo = _children(), {}, [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            start = _start_time(child)
            if start is not None:
                found[child] = start
                todo.append(child)
    return found


def _name(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/exe").resolve().name
    return "?"


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else fields[19]


@pytest.mark.timeout(300)
def test_sigterm_stops_the_whole_bench_stack(asterisk: Asterisk, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSPAY_")}
    env["TMPDIR"] = str(tmp_path)  # the bench's work directory goes here
    out_dir = tmp_path / "results"
    bench = subprocess.Popen(
        [sys.executable, "bench/ivr_load.py", "--paths", "ari", "--concurrency", "2",
         "--min-calls", "2", "--no-baseline", "--out", str(out_dir)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert bench.stdout is not None
    seen: list[str] = []
    started: dict[int, str] = {}
    try:
        for line in bench.stdout:  # until the calls are under way
            seen.append(line)
            if line.startswith("-- engine-ari"):
                break
        else:
            pytest.fail("the bench ended before its first run:\n" + "".join(seen[-40:]))
        time.sleep(4)  # SIPp and both captures running, a call in progress
        started = _descendants(bench.pid)
        names = {_name(p) for p in started}
        assert {"sipp", "dumpcap", "asterisk"} <= names, names  # what is to be stopped
        assert any(p.name.startswith("arspay-bench-ivr-") for p in tmp_path.iterdir())

        bench.send_signal(signal.SIGTERM)
        rest = bench.communicate(timeout=120)[0]
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        deadline = time.monotonic() + 10  # an orphan is re-parented, then reaped
        while time.monotonic() < deadline:
            alive = {p for p, start in started.items() if _start_time(p) == start}
            if not alive:
                break
            time.sleep(0.2)
        left_running = [_name(p) for p in alive]
        for pid in alive:  # a failure here must not leave the bench ports taken
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    assert bench.returncode == 128 + signal.SIGTERM, "".join(seen) + rest
    assert not alive, left_running
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith("arspay-bench-ivr-")]
    assert left == [], "the work directory (with the test cards' DTMF captures) was left"
    assert not (out_dir / "ivr_load.json").exists()  # an interrupted run writes no results
