"""Console pages for consent evidence: the records list and its export (equal to the API's),
and the operators' chain check that shows where it broke."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from ivr.consent.records import record_hash
from ivr.store.tables import (
    AuditLog,
    ConsentRecord,
)
from tests.console.config_support import (
    make_consent,
    operator,
)
from tests.console.conftest import Console, post

pytestmark = pytest.mark.anyio


# ------------------------------------------------------------------ consent


async def test_consent_records_list_page_and_export_equal_the_api_export(
    console: Console,
) -> None:
    a, ca = await console.tenant("행복치과")
    b, _cb = await console.tenant("튼튼정형외과")
    request_id, ids = await make_consent(console, a)
    _, b_ids = await make_consent(console, b, 1)
    listing = await ca.get("/console/consent")
    assert listing.status_code == 200
    assert all(i in listing.text for i in ids)
    assert b_ids[0] not in listing.text
    assert "010-****-5678" in listing.text
    assert "01012345678" not in listing.text
    filtered = await ca.get("/console/consent", params={"call_request_id": "creq_nothing"})
    assert ids[0] not in filtered.text
    page = await ca.get(f"/console/consent/{ids[1]}")
    assert page.status_code == 200
    assert "pay.confirm" in page.text
    assert f"{11:064x}" in page.text
    assert 'data-testid="key-pressed">1<' in page.text
    async with console.api.db.sessions() as s:
        rec = await s.scalar(select(ConsentRecord).where(ConsentRecord.id == ids[1]))
        assert rec is not None
    assert rec.hash in page.text
    assert rec.prev_hash in page.text
    assert 'data-testid="hash-valid">일치' in page.text
    assert rec.mac is not None
    assert rec.mac in page.text
    assert 'data-testid="mac-valid">일치' in page.text
    exported = await ca.get(f"/console/consent/{ids[1]}/export")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/json")
    assert "attachment" in exported.headers["content-disposition"]
    from_api = await a.client.get(f"/v1/call-requests/{request_id}/consent")
    assert from_api.status_code == 200
    assert json.loads(exported.text) == from_api.json()
    assert len(from_api.json()["records"]) == 2
    assert from_api.json()["records"][1]["mac"] == rec.mac
    assert from_api.json()["checkpoint"]["ledger"] == "consent"
    assert from_api.json()["attestation"]["records"][1]["mac"] == rec.mac
    async with console.api.db.sessions() as s:
        logged = await s.scalar(select(AuditLog).where(AuditLog.action == "consent.export"))
        assert logged is not None
        assert logged.object_id == request_id


async def test_operators_verify_the_chain_and_see_where_it_broke(console: Console) -> None:
    a, ca = await console.tenant("행복치과")
    _, ids = await make_consent(console, a, 3)
    op = await operator(console)
    op.cookies.set("arspay_lang", "en")
    r = await post(op, "/console/consent", "/console/consent/verify", {})
    assert r.status_code == 200
    assert 'data-ok="true"' in r.text
    assert "all 3 records link up" in r.text
    db = console.api.db
    async with db.transaction() as s:  # tamper underneath the triggers
        if db.is_postgres:
            await s.execute(text("ALTER TABLE consent_records DISABLE TRIGGER USER"))
        else:
            await s.execute(text("DROP TRIGGER consent_records_no_update"))
        await s.execute(text("UPDATE consent_records SET key_pressed = '3' WHERE seq = 2"))
    r = await post(op, "/console/consent", "/console/consent/verify", {})
    assert r.status_code == 200
    assert 'data-ok="false"' in r.text
    assert "Broken at seq 2 (hash does not match content)" in r.text
    assert f"/console/consent/{ids[1]}" in r.text  # a link to the record
    assert "<li>record 2: hash does not match content</li>" in r.text
    page = await op.get(f"/console/consent/{ids[1]}")
    assert 'data-testid="hash-valid">does not match' in page.text
    # the hash recomputed too (the review's attack): the keyed MAC gives it away
    async with db.transaction() as s:
        if db.is_postgres:
            await s.execute(text("ALTER TABLE consent_records DISABLE TRIGGER USER"))
        row = await s.get(ConsentRecord, 2)
        assert row is not None
        row.hash = record_hash(row)
        await s.flush()
        later = await s.get(ConsentRecord, 3)
        assert later is not None
        later.prev_hash = row.hash
        later.hash = record_hash(later)
        await s.flush()
        if db.is_postgres:
            await s.execute(text("ALTER TABLE consent_records ENABLE TRIGGER USER"))
    r = await post(op, "/console/consent", "/console/consent/verify", {})
    assert (
        "Broken at seq 2 (MAC does not match: rewritten, inserted, or sealed with another key)"
        in r.text
    )
    page = await op.get(f"/console/consent/{ids[1]}")
    assert 'data-testid="hash-valid">matches' in page.text
    assert 'data-testid="mac-valid">does not match' in page.text
    async with console.api.db.sessions() as s:
        checks = list(await s.scalars(select(AuditLog).where(AuditLog.action == "consent.verify")))
    assert [x.details["ok"] for x in checks] == [True, False, False]
    # merchant users neither see nor use the check (the chain spans every merchant)
    assert 'data-testid="verify-chain"' not in (await ca.get("/console/consent")).text
    assert (await post(ca, "/console/consent", "/console/consent/verify", {})).status_code == 403
