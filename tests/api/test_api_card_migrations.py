"""POST/GET /v1/card-migrations over the real runtime, vault and sandbox PG: a card at
another PG account moves back to the default one, the engine's worker pass doing it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.cards.sweep import billing_key_uid
from ivr.pg_accounts.store import PgAccounts, accounts_key
from ivr.store.db import Database
from ivr.store.tables import Card
from tests.api.conftest import serving_api
from tests.gateways.support import KEY, SECRET

pytestmark = pytest.mark.anyio


async def test_a_merchant_moves_its_cards_and_follows_the_batch(
    db: Database, tmp_path: Path
) -> None:
    async with serving_api(db, tmp_path) as api:
        t = await api.tenant("행복치과")
        other = await api.tenant("다른치과")
        gw = api.settings.gateway
        accounts = PgAccounts(api.db, api.clock, accounts_key(gw, api.settings.paths.var_dir), gw)
        await accounts.create("sandbox-a", actor="test", kind="sandbox", base_url=api.sandbox.url,
                              api_key=KEY, api_secret=SECRET,
                              options={"channel_key": gw.channel_key})  # fmt: skip
        async with api.db.transaction() as s:
            card = await s.get(Card, t.card_id)
            assert card is not None
            card.pg_account_id = "sandbox-a"
            old_ref = card.billing_key_ref
        # a disabled account takes no cards
        await accounts.create("off-acct", actor="test", kind="sandbox", base_url=api.sandbox.url,
                              api_key=KEY, api_secret=SECRET)  # fmt: skip
        await accounts.update("off-acct", actor="test", status="disabled")
        refused = await t.client.post("/v1/card-migrations", json={"to_account": "off-acct"})
        assert refused.status_code == 409
        assert (await t.client.post("/v1/card-migrations",
                                    json={"to_account": "nope-x"})).status_code == 404  # fmt: skip
        r = await t.client.post("/v1/card-migrations", json={"to_account": "default"})
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["object"], body["status"], body["total"]) == ("card_migration", "running", 1)
        again = await t.client.post("/v1/card-migrations", json={"to_account": "default"})
        assert again.json()["id"] == body["id"]  # resumed, not a second batch
        assert (await other.client.get(f"/v1/card-migrations/{body['id']}")).status_code == 404
        await api.runtime.migrations.run(body["id"])  # the engine worker's pass
        done = (await t.client.get(f"/v1/card-migrations/{body['id']}")).json()
        assert (done["status"], done["counts"]) == ("finished", {"done": 1})
        async with api.db.sessions() as s:
            moved = (await s.scalars(select(Card).where(Card.id == t.card_id))).one()
        assert moved.pg_account_id is None
        assert moved.billing_key_ref == billing_key_uid(moved.vault_token)
        assert old_ref is not None
        ledger = api.sandbox.state.ledger
        assert await ledger.customer(old_ref) is None  # the old key deleted at its PG
        assert await ledger.customer(moved.billing_key_ref) is not None
