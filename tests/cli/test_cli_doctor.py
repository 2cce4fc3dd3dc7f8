"""``arspay doctor`` as an operator runs it: one line per check, exit 0 on a healthy
deployment (warnings allowed), exit 1 with the fix on a broken one, and --json."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.test_cli import arspay
from tests.doctor.support import build, fake_ari, free_port

LINE = re.compile(r"^(ok|warn|fail|skip)  +[a-z-]+ +\S")


def test_doctor_passes_a_healthy_deployment_and_fails_a_broken_one(
    tmp_path: Path, sqlite_template: Path
) -> None:
    port = free_port()
    d = build(tmp_path, sqlite_template, port)
    args = ("doctor", "--asterisk-dir", str(d.asterisk_dir), "--ari-timeout", "1")
    with fake_ari(d.settings, port):
        good = arspay(*args, env=d.env)
        assert good.returncode == 0, good.stdout + good.stderr
        lines = good.stdout.splitlines()
        assert all(LINE.match(line) for line in lines[:-1]), good.stdout
        assert not any(line.startswith("fail") for line in lines)
        assert re.fullmatch(r"\d+ checks: 0 failed, \d+ warnings", lines[-1]), lines[-1]
        for check in ("key-files", "migrations", "asterisk-config", "ari", "sms-sender"):
            assert any(re.match(rf"^ok +{check} ", line) for line in lines), check

        (d.var / "consent" / "evidence.key").chmod(0o644)
        bad = arspay(*args, env=d.env)
    assert bad.returncode == 1
    failing = [line for line in bad.stdout.splitlines() if line.startswith("fail")]
    assert len(failing) == 1, bad.stdout
    assert "evidence.key" in failing[0]
    assert f"(fix: chmod 600 {d.var / 'consent' / 'evidence.key'})" in failing[0]
    assert "Traceback" not in bad.stderr


def test_doctor_json_an_unreachable_ari_and_no_sender(
    tmp_path: Path, sqlite_template: Path
) -> None:
    d = build(tmp_path, sqlite_template, free_port())  # nothing listens on its ARI port
    env = {**d.env, "ARSPAY_SMS_SENDER": ""}
    out = arspay("--json", "doctor", "--asterisk-dir", str(d.asterisk_dir), env=env)
    assert out.returncode == 1
    rows = {r["check"]: r for r in json.loads(out.stdout) if r["status"] == "fail"}
    assert rows.keys() == {"ari", "sms-sender"}
    assert "does not answer" in rows["ari"]["message"]
    assert rows["sms-sender"]["message"] == "sms.sender is empty"
    assert rows["sms-sender"]["fix"]
