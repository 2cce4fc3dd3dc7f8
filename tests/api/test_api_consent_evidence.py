"""The consent export a merchant keeps: fetched from the API, checked offline by the
stand-alone script in docs/consent.md (run as it is printed there), with the operator's
public key only — and refused when the export, the key or the records were tampered."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ivr.consent.ledger import ConsentInput, PlayedPrompt
from tests.api.conftest import Api, Tenant
from vault.evidence import EvidenceKey

pytestmark = pytest.mark.anyio

DOC = Path(__file__).resolve().parents[2] / "docs" / "consent.md"


def snippet(tmp_path: Path) -> Path:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    [code] = [b for b in blocks if "verify_consent_export.py" in b]
    path = tmp_path / "verify_consent_export.py"
    path.write_text(code, encoding="utf-8")
    return path


def check(
    tmp_path: Path, export: dict[str, Any], public_key: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "export.json").write_text(json.dumps(export, ensure_ascii=False), "utf-8")
    (tmp_path / "key.json").write_text(json.dumps(public_key), "utf-8")
    return subprocess.run(
        [sys.executable, str(snippet(tmp_path)), str(tmp_path / "export.json"),
         str(tmp_path / "key.json")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def consented_request(api: Api, t: Tenant) -> str:
    r = await t.client.post(
        "/v1/payment-requests",
        json={"customer_id": t.customer_id, "product_name": "치료비", "amount": 53_000},
    )
    assert r.status_code == 201, r.text
    request_id: str = r.json()["id"]
    for i, key in enumerate("21"):
        now = api.clock.now()
        await api.runtime.services.consent.append(
            ConsentInput(
                t.merchant_id,
                request_id,
                "card_choice",  # 2: another card, then 1: the registered one
                "05051110000",
                "01012345678",
                "chan-1",
                now,
                now,
                (PlayedPrompt("pay.confirm", f"{i:064x}"),),
                key,
                {"amount": 53_000, "installments": 0},
            )
        )
    return request_id


async def test_the_export_checks_offline_with_the_public_key_only(api: Api, tmp_path: Path) -> None:
    t = await api.tenant("행복치과")
    request_id = await consented_request(api, t)
    r = await t.client.get(f"/v1/call-requests/{request_id}/consent")
    assert r.status_code == 200
    export = r.json()
    assert [(x["mac_valid"], x["hash_valid"]) for x in export["records"]] == [(True, True)] * 2
    assert export["checkpoint"]["ledger"] == "consent"
    public_key = api.runtime.services.consent.keys.load(create=False).public_key_document()
    ok = check(tmp_path, export, public_key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "key 2" in ok.stdout
    assert ok.stdout.count(": authentic") == 2

    # the merchant's copy edited: a key press changed (and its hash recomputed)
    edited = json.loads(json.dumps(export))
    fields = json.loads(edited["records"][0]["canonical"])
    fields["key_pressed"] = "1"
    edited["records"][0]["canonical"] = json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    edited["records"][0]["hash"] = hashlib.sha256(
        edited["records"][0]["canonical"].encode()
    ).hexdigest()
    bad = check(tmp_path, edited, public_key)
    assert bad.returncode != 0
    assert "NOT AUTHENTIC" in bad.stderr
    # another key (an attacker's own, or another operator's)
    other = EvidenceKey(b"\x01" * 32, "consent").public_key_document()
    assert "signed by another key" in check(tmp_path, export, other).stderr

    # a database admin rewrites a record: the export says so and signs nothing
    db = api.db
    async with db.transaction() as s:
        if db.is_postgres:
            await s.execute(text("ALTER TABLE consent_records DISABLE TRIGGER USER"))
        else:
            await s.execute(text("DROP TRIGGER consent_records_no_update"))
        await s.execute(text("UPDATE consent_records SET key_pressed = '1' WHERE seq = 1"))
        if db.is_postgres:
            await s.execute(text("ALTER TABLE consent_records ENABLE TRIGGER USER"))
    tampered = (await t.client.get(f"/v1/call-requests/{request_id}/consent")).json()
    assert tampered["records"][0]["hash_valid"] is False
    assert tampered["attestation"] is None
    assert "has no attestation" in check(tmp_path, tampered, public_key).stderr
