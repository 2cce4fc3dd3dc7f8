"""One finding of ``arspay doctor``: a check's name, its status, what it saw and how to
fix it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but not as it should be in production
    FAIL = "fail"  # the deployment is broken or unsafe: the command exits 1
    SKIP = "skip"  # does not apply here, or cannot be checked on this machine


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    message: str
    fix: str = ""

    def line(self) -> str:
        """``fail  key-files  /etc/arspay/kek.key is mode 0644 (fix: chmod 600 ...)``."""
        text = f"{self.status.value:<4}  {self.check:<15} {self.message}"
        return f"{text} (fix: {self.fix})" if self.fix and self.status != Status.OK else text


def ok(check: str, message: str) -> Finding:
    return Finding(check, Status.OK, message)


def warn(check: str, message: str, fix: str) -> Finding:
    return Finding(check, Status.WARN, message, fix)


def fail(check: str, message: str, fix: str) -> Finding:
    return Finding(check, Status.FAIL, message, fix)


def skip(check: str, message: str) -> Finding:
    return Finding(check, Status.SKIP, message)


def failed(findings: list[Finding]) -> bool:
    return any(f.status == Status.FAIL for f in findings)
