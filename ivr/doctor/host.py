"""The machine and the messages: the business time zone (schedules, business hours and
every time shown to a person are computed in Asia/Seoul, :data:`ivr.clock.SEOUL`,
whatever the system's zone), the system's own zone (log timestamps), NTP
synchronisation (``timedatectl``; skipped where there is none), and the SMS sender number
(발신번호) every message goes out from."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ivr.clock import SEOUL
from ivr.doctor.report import Finding, fail, ok, skip, warn
from ivr.settings import Settings, SmsSettings

USER_CHECK = "user"
TZ_CHECK = "time-zone"
NTP_CHECK = "clock"
SMS_CHECK = "sms-sender"
BUSINESS_ZONE = "Asia/Seoul"
_SENDER = re.compile(r"\d[\d-]{6,14}\d")
_PLACEHOLDER_SENDER = SmsSettings.model_fields["sender"].default


def system_zone() -> str | None:
    """The system's time zone name: ``TZ``, else where /etc/localtime points."""
    if tz := os.environ.get("TZ"):
        return tz.lstrip(":")
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        try:
            return Path("/etc/timezone").read_text(encoding="utf-8").strip() or None
        except OSError:
            return None
    return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else None


def ntp_synchronized() -> bool | None:
    """``timedatectl``'s NTPSynchronized, or None where it cannot tell (no systemd)."""
    try:
        done = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = done.stdout.strip()
    if done.returncode != 0 or value not in ("yes", "no"):
        return None
    return value == "yes"


def check_time_zone(zone: Callable[[], str | None] = system_zone) -> list[Finding]:
    out: list[Finding] = []
    offset = SEOUL.utcoffset(datetime.now(UTC).replace(tzinfo=None))
    if SEOUL.key == BUSINESS_ZONE and offset == timedelta(hours=9):
        out.append(ok(TZ_CHECK, f"business hours and schedules use {BUSINESS_ZONE} (UTC+9)"))
    else:
        out.append(
            fail(TZ_CHECK, f"the time zone data for {BUSINESS_ZONE} is wrong", "install tzdata")
        )
    name = zone()
    if name == BUSINESS_ZONE:
        out.append(ok(TZ_CHECK, f"the system time zone is {name}"))
    else:
        out.append(
            warn(
                TZ_CHECK,
                f"the system time zone is {name or 'unknown'}: log timestamps are not in "
                f"{BUSINESS_ZONE} (business hours are, regardless)",
                f"timedatectl set-timezone {BUSINESS_ZONE}",
            )
        )
    return out


def check_ntp(synced: Callable[[], bool | None] = ntp_synchronized) -> Finding:
    state = synced()
    if state is None:
        return skip(NTP_CHECK, "cannot tell whether the clock is NTP-synchronised (no timedatectl)")
    if state:
        return ok(NTP_CHECK, "the system clock is NTP-synchronised")
    return warn(
        NTP_CHECK,
        "the system clock is not NTP-synchronised (expiries, OTPs and schedules drift)",
        "timedatectl set-ntp true (systemd-timesyncd or chrony)",
    )


def check_sms_sender(settings: Settings) -> Finding:
    sms = settings.sms
    sender = sms.sender.strip()
    if not sender:
        return fail(SMS_CHECK, "sms.sender is empty", "set sms.sender to your registered 발신번호")
    if not _SENDER.fullmatch(sender):
        return fail(
            SMS_CHECK,
            f"sms.sender {sender!r} is not a phone number",
            "digits and hyphens, e.g. 1588-1234 (your registered 발신번호)",
        )
    if sender == _PLACEHOLDER_SENDER and sms.adapter != "outbox":
        return warn(
            SMS_CHECK,
            f"sms.sender is the sample number {sender} while messages really go out "
            f"(sms.adapter = {sms.adapter})",
            "set sms.sender to your registered 발신번호",
        )
    return ok(SMS_CHECK, f"SMS go out from {sender} (adapter {sms.adapter})")


def check_user(euid: int) -> Finding:
    """Root would read everything, and could leave root-owned files (a SQLite database's
    -wal and -shm) the service cannot open: run as the service's user."""
    if euid == 0:
        return warn(
            USER_CHECK,
            "running as root: files opened now may be left owned by root",
            "run as the service's user: sudo -u arspay arspay doctor",
        )
    return ok(USER_CHECK, f"running as uid {euid}")
