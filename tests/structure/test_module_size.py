"""No Python module of the project is over 500 lines (issue #33's goal).

A module that long has stopped having one role: split it by what its parts do. The
exceptions are the ones the goal names: database migrations (history, written once),
``bench/`` (one script per benchmark, read top to bottom) and ``ivr/testing/`` (drivers
for the real Asterisk and SIPp, each one whole). Tests count like the code they test.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 500
EXEMPT = ("ivr/store/migrations/", "bench/", "ivr/testing/")


def _python_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [p for p in out.stdout.splitlines() if not p.startswith(EXEMPT)]


def test_no_module_is_over_500_lines() -> None:
    files = _python_files()
    assert len(files) > 100  # the listing worked
    long = {
        path: n
        for path in files
        if (ROOT / path).exists()
        and (n := len((ROOT / path).read_text(encoding="utf-8").splitlines())) > LIMIT
    }
    assert not long, f"modules over {LIMIT} lines (split them by role): {long}"
