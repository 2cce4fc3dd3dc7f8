"""The ``arspay`` command, run as a real subprocess against real databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.store import migrate

ARSPAY = [sys.executable, "-m", "ivr.cli"]


def arspay(
    *args: str, url: str | None = None, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ARSPAY_")}
    full_env["ARSPAY_CONFIG"] = "/nonexistent/arspay.toml" if cwd is None else "arspay.toml"
    if url:
        full_env["ARSPAY_DATABASE_URL"] = url
    full_env.update(env or {})
    return subprocess.run(
        [*ARSPAY, *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_help_lists_every_command_group() -> None:
    out = arspay("--help")
    assert out.returncode == 0
    for cmd in (
        "migrate",
        "config",
        "db",
        "dids",
        "merchants",
        "keys",
        "customers",
        "requests",
        "sms",
        "consent",
        "pg-accounts",
        "version",
    ):
        assert cmd in out.stdout


def test_config_show_masks_secrets() -> None:
    secret = "hunter2-Very-Secret"
    out = arspay(
        "config",
        "show",
        env={"ARSPAY_ASTERISK_ARI_PASSWORD": secret, "ARSPAY_DIDS_LEASE_MINUTES": "45"},
    )
    assert out.returncode == 0
    assert secret not in out.stdout
    assert "lease_minutes = 45" in out.stdout
    assert 'ari_password = "**********"' in out.stdout


def test_bad_config_is_a_clean_error() -> None:
    out = arspay("config", "show", env={"ARSPAY_DIDS_LEASE_MINUTES": "soon"})
    assert out.returncode == 2
    assert "dids.lease_minutes" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_migrate_check_and_a_registration_request(empty_db_url: str) -> None:
    assert arspay("db", "current", url=empty_db_url).stdout.strip() == "(empty database)"
    out = arspay("migrate", url=empty_db_url)
    assert out.returncode == 0, out.stderr
    assert f"schema at revision {migrate.head()}" in out.stdout
    out = arspay("db", "check", url=empty_db_url)
    assert out.returncode == 0, out.stderr
    assert "matches" in out.stdout
    assert (
        "10 added"
        in arspay("dids", "import", "0505-000-0000..0505-000-0009", url=empty_db_url).stdout
    )
    assert "0 added" in arspay("dids", "import", "0505-000-0005", url=empty_db_url).stdout

    def j(*args: str) -> list[dict[str, object]]:
        res = arspay("--json", *args, url=empty_db_url)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)  # type: ignore[no-any-return]

    mid = str(j("merchants", "create", "행복치과")[0]["id"])
    cid = str(j("customers", "create", mid, "--mobile", "+82 10-1234-5678")[0]["id"])
    req = j("requests", "create", mid, cid, "--product", "정기권")[0]
    assert req["status"] == "created"
    assert str(req["did"]).startswith("0505-000-000")
    leases = j("dids", "leases")
    assert [(x["mobile"], x["request"]) for x in leases] == [("01012345678", req["id"])]
    sms = j("sms", "outbox", "--deliver")
    assert sms[0]["status"] == "sent"
    assert "자동결제 카드 등록" in str(sms[0]["body"])
    assert j("requests", "show", str(req["id"]))[0]["status"] == "sms_sent"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("dids", "import", "0505-000-0009..0505-000-0001"), "end comes before the start"),
        (("customers", "create", "mer_nope", "--mobile", "010-1234-5678"), "not found"),
        (("customers", "create", "mer_nope", "--mobile", "anonymous"), "withheld"),
        (("requests", "show", "creq_nope"), "not found"),
    ],
)
def test_bad_input_exits_2_with_a_message(db_url: str, args: tuple[str, ...], message: str) -> None:
    out = arspay(*args, url=db_url)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_console_users_from_the_command_line(db_url: str) -> None:
    """The first operator is created on the command line; its password is hashed, a
    weak one is refused, and a disabled user no longer appears."""
    password = {"ARSPAY_NEW_USER_PASSWORD": "correct horse battery"}
    out = arspay("--json", "console", "add-user", "Ops@Example.com", "--role", "operator",
                 url=db_url, env=password)  # fmt: skip
    assert out.returncode == 0, out.stderr
    [user] = json.loads(out.stdout)
    assert (user["email"], user["role"]) == ("ops@example.com", "operator")
    weak = arspay("console", "add-user", "b@example.com", "--role", "operator", url=db_url,
                  env={"ARSPAY_NEW_USER_PASSWORD": "short"})  # fmt: skip
    assert weak.returncode == 2
    assert "at least 10 characters" in weak.stderr
    nobody = arspay("console", "add-user", "c@example.com", "--role", "merchant",
                    "--merchant", "mer_nope", url=db_url, env=password)  # fmt: skip
    assert nobody.returncode != 0
    assert "not found" in nobody.stderr
    listed = arspay("--json", "console", "users", url=db_url)
    assert [u["email"] for u in json.loads(listed.stdout)] == ["ops@example.com"]
    assert "correct horse" not in listed.stdout
    assert arspay("console", "disable", user["id"], url=db_url).returncode == 0
    assert json.loads(arspay("--json", "console", "users", url=db_url).stdout) == []


@pytest.mark.slow
def test_cards_unlock_lifts_a_phone_payment_lock(db_url: str) -> None:
    """Too many wrong birth dates in payment calls lock a card for phone payments
    (issue #26); ``arspay cards list`` shows until when, ``cards unlock`` lifts it."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from ivr.store.db import Database
    from ivr.store.tables import AuditLog, Card, Customer, Merchant

    now = datetime.now(UTC)

    async def setup() -> None:
        db = Database(db_url)
        try:
            async with db.transaction() as s:
                s.add(Merchant(id="mer_1", name="행복치과", status="active", settings={},
                               created_at=now))  # fmt: skip
                await s.flush()
                s.add(Customer(id="cus_1", merchant_id="mer_1", external_ref=None, name="",
                               mobile="01012345678", created_at=now))  # fmt: skip
                await s.flush()
                s.add(Card(id="card_1", merchant_id="mer_1", customer_id="cus_1",
                           vault_token="tok_1", fingerprint=None, bin6="411111", last4="1111",
                           issuer="테스트카드", card_type="credit", owner_type="personal",
                           billing_key_ref="cu_1", status="active", created_at=now,
                           verify_failures=5, verify_failed_since=now,
                           verify_locked_until=now + timedelta(hours=24)))  # fmt: skip
        finally:
            await db.close()

    async def unlocks() -> list[str]:
        db = Database(db_url)
        try:
            async with db.sessions() as s:
                q = select(AuditLog.actor).where(AuditLog.action == "card.verify_unlock")
                return list(await s.scalars(q))
        finally:
            await db.close()

    asyncio.run(setup())
    listed = json.loads(arspay("--json", "cards", "list", "mer_1", url=db_url).stdout)
    assert listed[0]["phone_locked_until"] is not None
    out = arspay("cards", "unlock", "mer_2", "card_1", url=db_url)
    assert (out.returncode, "not found" in out.stderr) == (2, True)  # another merchant's
    out = arspay("--json", "cards", "unlock", "mer_1", "card_1", url=db_url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["phone_locked_until"] is None
    assert asyncio.run(unlocks()) == ["cli"]


def test_sms_alimtalk_lists_the_alimtalk_outbox(tmp_path: Path) -> None:
    import asyncio
    from datetime import UTC, datetime

    from ivr.store.db import Database
    from ivr.store.tables import AlimtalkMessage, Merchant

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    at = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)

    async def seed() -> None:
        db = Database(url)
        try:
            await migrate.upgrade(db)
            async with db.transaction() as s:
                s.add(Merchant(id="mer_01", name="행복치과", status="active", settings={},
                               created_at=at))  # fmt: skip
                await s.flush()
                s.add(AlimtalkMessage(
                    id="atk_01", merchant_id="mer_01", notice_id="ntc_01", to="01012345678",
                    template_code="PAY_OK", parameters={"merchant": "행복치과"},
                    button_url=None, fallback_text="[행복치과] …", status="fallback",
                    attempts=1, result_code="3018", fallback_sms_id="sms_01",
                    created_at=at, next_try_at=at,
                ))  # fmt: skip
        finally:
            await db.close()

    asyncio.run(seed())
    out = arspay("--json", "sms", "alimtalk", url=url)
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)
    assert (row["template"], row["status"], row["result"], row["fallback_sms"]) == (
        "PAY_OK", "fallback", "3018", "sms_01")  # fmt: skip
    assert json.loads(arspay("--json", "sms", "alimtalk", "--status", "sent", url=url).stdout) == []


def test_bulk_template_writes_csv_or_xlsx(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    from ivr.bulk.charge_rows import FIELDS as CHARGE_FIELDS
    from ivr.bulk.registrations import FIELDS as REGISTRATION_FIELDS

    out = arspay("bulk", "template", "charges", "--out", str(tmp_path / "c.csv"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "c.csv").read_text(encoding="utf-8-sig").strip() == ",".join(CHARGE_FIELDS)
    out = arspay("bulk", "template", "registrations", "--out", str(tmp_path / "r.xlsx"))
    assert out.returncode == 0, out.stderr
    sheet = load_workbook(tmp_path / "r.xlsx").active
    assert list(sheet.values) == [REGISTRATION_FIELDS]
    out = arspay("bulk", "template", "refunds", "--out", str(tmp_path / "x.csv"))
    assert out.returncode != 0
    assert not (tmp_path / "x.csv").exists()
