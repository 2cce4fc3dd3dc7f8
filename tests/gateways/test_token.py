"""The PortOne access token: fetched once, reused, renewed before expiry and on 401."""

from __future__ import annotations

import pytest

from ivr.gateways.contract import BillingKeyRequest, ChargeRequest
from ivr.gateways.errors import AuthenticationFailed, GatewayRejected
from ivr.gateways.portone import PortOneConfig, PortOneGateway
from tests.gateways.fakes import Reply, scripted_pg
from tests.gateways.support import KEY, Sandbox, card, connector, order

pytestmark = pytest.mark.anyio


class Monotonic:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_one_token_serves_many_calls(pg: PortOneGateway, sandbox: Sandbox) -> None:
    await pg.register_billing_key(BillingKeyRequest("cus_tok", card()))
    for _ in range(3):
        await pg.charge_billing_key(ChargeRequest("cus_tok", order(), 1_000, "x"))
    assert pg.tokens.fetches == 1
    assert (await sandbox.summary())["tokens_issued"] == 1


async def test_a_401_renews_the_token_once_and_resends(
    pg: PortOneGateway, sandbox: Sandbox
) -> None:
    await pg.register_billing_key(BillingKeyRequest("cus_401", card()))
    await sandbox.revoke_tokens()  # as if the token expired or the PG restarted
    oid = order()
    result = await pg.charge_billing_key(ChargeRequest("cus_401", oid, 4_000, "x"))
    assert result.succeeded
    assert pg.tokens.fetches == 2
    assert (await sandbox.summary())["tokens_issued"] == 2
    ledger = await sandbox.ledger(oid)
    assert ledger["charge_requests"] == 1  # the 401 was refused before the charge handler
    assert len(ledger["payments"]) == 1


async def test_the_token_is_renewed_before_it_expires(sandbox: Sandbox) -> None:
    clock = Monotonic()
    async with connector(sandbox.url, clock=clock, token_margin_s=60) as pg:
        await pg.find(order())
        clock.now += 1_700  # 30-minute token: 100 s left, inside the 60 s margin? not yet
        await pg.find(order())
        assert pg.tokens.fetches == 1
        clock.now += 50  # 50 s left: renew before using it
        await pg.find(order())
        assert pg.tokens.fetches == 2


async def test_wrong_credentials_fail_authentication(sandbox: Sandbox) -> None:
    config = PortOneConfig(base_url=sandbox.url, imp_key=KEY, imp_secret="wrong", channel_key="c")
    async with PortOneGateway(config) as pg:
        with pytest.raises(AuthenticationFailed) as err:
            await pg.find(order())
    assert isinstance(err.value, GatewayRejected)
    assert "wrong" not in repr(config)
    assert "wrong" not in err.value.message


async def test_a_second_401_is_an_authentication_failure() -> None:
    async with scripted_pg({"GET /payments/findAll/{rest}": Reply(401, {"code": -1})}) as fake:
        async with connector(fake.url) as pg:
            with pytest.raises(AuthenticationFailed):
                await pg.find(order())
        assert fake.calls["GET /payments/findAll/{rest}"] == 2
        assert fake.calls["POST /users/getToken"] == 2
