"""The vault's card gateway with PG-account routes: each route goes to the gateway built
for its account (kept per account and connection, closed with the vault), and the
outcomes the engine fails over on — a billing key the PG did not answer for
(``pg_down``), a keyed charge that never left (``not_sent``) — over real HTTP to the
sandbox PG and to a closed port, in-process and through the vault's socket."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ivr.clock import FakeClock
from ivr.errors import ConfigError
from ivr.gateways.contract import Gateway
from ivr.gateways.errors import DuplicateOrder, GatewayUnavailable, OutcomeUnknown
from ivr.gateways.factory import ConnectedGateway, gateway_for_route, route_settings
from ivr.gateways.fake import FakeGateway
from ivr.gateways.portone import PortOneGateway
from ivr.gateways.portone_v2 import PortOneV2Gateway
from ivr.gateways.vault_forwarding import VaultCardGateway
from ivr.settings import GatewaySettings
from tests.gateways.support import KEY, SECRET, Sandbox, running_sandbox
from tests.vault.vault_helpers import build_vault, make_kek, make_server
from vault.card import CardData as VaultCard
from vault.errors import GatewayNotConfigured
from vault.forwarding import Order, Route
from vault.remote import RemoteVault
from vault.service import LocalVault

pytestmark = pytest.mark.anyio

CARD = VaultCard(pan="4111111111111111", expiry="1230", birth="880101")
BASE = GatewaySettings(timeout_s=2.0, connect_timeout_s=1.0, total_timeout_s=5.0,
                       api_key="primary-key", api_secret="primary-secret")  # type: ignore[arg-type]  # fmt: skip


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused before anything is sent."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sandbox_route(account: str, url: str, secret: str = SECRET) -> Route:
    return Route(account, "sandbox", url, {"api_key": KEY, "api_secret": secret})


class ClosingFake(FakeGateway):
    """A FakeGateway that holds "connections": closing is recorded."""

    closed = 0

    async def __aenter__(self) -> ClosingFake:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.closed += 1


class Builder:
    """``build`` for VaultCardGateway: a ClosingFake per call, remembered."""

    def __init__(self) -> None:
        self.built: list[tuple[Route, ClosingFake]] = []

    def __call__(self, route: Route) -> ConnectedGateway:
        fake = ClosingFake()
        self.built.append((route, fake))
        return fake


# --------------------------------------------------------------------------- settings


def test_route_settings_keep_the_deadlines_and_take_the_account() -> None:
    route = Route("acc_2", "portone", "https://api.iamport.kr",
                  {"api_key": "k2", "api_secret": "s2", "channel_key": "ch2", "pg": "ksnet",
                   "product_type": "digital"})  # fmt: skip
    gw = route_settings(route, BASE)
    assert (gw.kind, gw.base_url, gw.api_key, gw.channel_key, gw.pg) == (
        "portone", "https://api.iamport.kr", "k2", "ch2", "ksnet"
    )  # fmt: skip
    assert gw.api_secret.get_secret_value() == "s2"
    assert (gw.timeout_s, gw.connect_timeout_s, gw.total_timeout_s) == (2.0, 1.0, 5.0)
    assert isinstance(gateway_for_route(route, BASE), PortOneGateway)
    v2 = Route("acc_3", "portone_v2", "https://api.portone.io",
               {"api_secret": "s3", "store_id": "store-1", "channel_key": "ch3"})  # fmt: skip
    assert isinstance(gateway_for_route(v2, BASE), PortOneV2Gateway)


def test_a_route_never_borrows_the_configured_accounts_secrets() -> None:
    bare = Route("acc_2", "sandbox", "http://127.0.0.1:8090", {})
    gw = route_settings(bare, BASE)
    assert (gw.api_key, gw.api_secret.get_secret_value()) == ("", "")
    with pytest.raises(ConfigError, match="api_key"):
        gateway_for_route(bare, BASE)


@pytest.mark.parametrize(
    ("connection", "words"),
    [
        ({"api_key": "k", "api_secret": "leak-me-not"}, "channel_key"),  # portone needs it
        ({"api_key": "k", "api_secret": "leak-me-not", "channel_key": "c" * 56}, "channel_key"),
        ({"api_secret": "leak-me-not", "timeout_s": "0.001"}, "timeout_s"),  # not the route's
    ],
)
def test_a_bad_account_is_a_config_error_without_its_values(
    connection: dict[str, str], words: str
) -> None:
    route = Route("acc_bad", "portone", "https://api.iamport.kr", connection)
    with pytest.raises(ConfigError, match=words) as err:
        gateway_for_route(route, BASE)
    assert "acc_bad" in err.value.message
    assert "leak-me-not" not in err.value.message
    assert "c" * 56 not in err.value.message


# --------------------------------------------------------------------------- routing, cache


async def test_each_route_goes_to_its_own_accounts_gateway() -> None:
    default = FakeGateway()
    build = Builder()
    card_gw = VaultCardGateway(default, build)
    one = sandbox_route("acc_1", "http://127.0.0.1:8091")
    two = sandbox_route("acc_2", "http://127.0.0.1:8092")
    for n, route in enumerate([one, two, one, None, two]):
        key = await card_gw.issue_billing_key(CARD, "12", f"cu_{n}", route=route)
        assert key.ok
    charge = await card_gw.keyed_charge(CARD, "12", Order("ord_1", 1_000, "x", 0), route=two)
    assert charge.status == "succeeded"
    [(r1, g1), (r2, g2)] = build.built  # built once per account
    assert (r1, r2) == (one, two)
    assert [c.ref for c in g1.calls] == ["cu_0", "cu_2"]
    assert [c.ref for c in g2.calls] == ["cu_1", "cu_4", "ord_1"]
    assert [c.ref for c in default.calls] == ["cu_3"]
    await card_gw.aclose()
    assert (g1.closed, g2.closed) == (1, 1)


async def test_a_changed_secret_builds_a_new_gateway_and_both_are_closed() -> None:
    build = Builder()
    card_gw = VaultCardGateway(None, build)
    first = sandbox_route("acc_1", "http://127.0.0.1:8091", secret="s1")
    same = sandbox_route("acc_1", "http://127.0.0.1:8091", secret="s1")
    rotated = sandbox_route("acc_1", "http://127.0.0.1:8091", secret="s2")
    assert card_gw.for_route(first) is card_gw.for_route(same)
    old = card_gw.for_route(first)
    new = card_gw.for_route(rotated)
    assert new is not old
    assert card_gw.for_route(rotated) is new
    assert len(build.built) == 2
    assert "s1" not in repr(card_gw)
    await card_gw.aclose()
    assert [g.closed for _, g in build.built] == [1, 1]


async def test_without_a_default_or_a_builder_forwarding_is_not_configured() -> None:
    with pytest.raises(GatewayNotConfigured):
        await VaultCardGateway(None, Builder()).issue_billing_key(CARD, "12", "cu_1")
    route = sandbox_route("acc_1", "http://127.0.0.1:8091")
    with pytest.raises(GatewayNotConfigured):
        await VaultCardGateway(FakeGateway()).issue_billing_key(CARD, "12", "cu_1", route=route)


# --------------------------------------------------------------------------- outcomes


@pytest.mark.parametrize(
    ("error", "pg_down"),
    [
        (GatewayUnavailable("down", retry_safe=True), True),
        (GatewayUnavailable("bad url", retry_safe=False), True),
        (OutcomeUnknown("read timeout"), True),
    ],
)
async def test_a_billing_key_the_pg_did_not_answer_for_is_pg_down(
    error: Exception, pg_down: bool
) -> None:
    card_gw = VaultCardGateway(FakeGateway().always("register_billing_key", error))
    key = await card_gw.issue_billing_key(CARD, "12", "cu_1")
    assert (key.ok, key.pg_down, key.customer_uid) == (False, pg_down, "cu_1")
    assert key.decline_code is None


async def test_a_duplicate_billing_key_is_still_raised() -> None:
    card_gw = VaultCardGateway(FakeGateway().always("register_billing_key", DuplicateOrder("x")))
    with pytest.raises(DuplicateOrder):
        await card_gw.issue_billing_key(CARD, "12", "cu_1")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (GatewayUnavailable("refused", retry_safe=True), "not_sent"),
        (OutcomeUnknown("read timeout"), "unknown"),
        (DuplicateOrder("already paid"), "unknown"),
    ],
)
async def test_keyed_charge_outcomes(error: Exception, status: str) -> None:
    card_gw = VaultCardGateway(FakeGateway().always("keyed_charge", error))
    charge = await card_gw.keyed_charge(CARD, "12", Order("ord_1", 1_000, "x", 0))
    assert (charge.status, charge.order_id, charge.amount) == (status, "ord_1", 1_000)
    assert charge.pg_transaction_id is None


async def test_a_keyed_charge_that_cannot_be_sent_anywhere_is_raised() -> None:
    error = GatewayUnavailable("TLS", retry_safe=False)
    card_gw = VaultCardGateway(FakeGateway().always("keyed_charge", error))
    with pytest.raises(GatewayUnavailable):
        await card_gw.keyed_charge(CARD, "12", Order("ord_1", 1_000, "x", 0))


# --------------------------------------------------------------------------- end to end


@pytest.fixture
async def vaults(tmp_path: Path) -> AsyncIterator[tuple[LocalVault, RemoteVault, Sandbox]]:
    """A vault whose default gateway is a fake and whose routes are built as in
    production (gateway_for_route), in-process and behind its socket; the sandbox PG."""
    async with running_sandbox(tmp_path / "ledger.db") as sandbox:
        kek = make_kek("file", tmp_path, None)
        card_gw = VaultCardGateway(FakeGateway(), lambda r: gateway_for_route(r, BASE))
        vault = await build_vault(f"sqlite+aiosqlite:///{tmp_path / 'vault.db'}", kek.provider,
                                  FakeClock(), card_gw, audit_key_file=kek.audit_key_file)  # type: ignore[arg-type]  # fmt: skip
        socket_dir = Path(tempfile.mkdtemp(prefix="vlt", dir="/tmp"))  # socket paths are short
        server = make_server(vault, socket_dir)
        await server.start()
        remote = RemoteVault(server.path, max_frame_bytes=server.max_frame_bytes)
        try:
            yield vault, remote, sandbox
        finally:
            await remote.close()
            await server.close()
            await vault.close()  # closes the gateways built for routes
            kek.provider.close()
            shutil.rmtree(socket_dir, ignore_errors=True)


@pytest.mark.parametrize("side", ["local", "remote"])
async def test_two_accounts_one_up_one_down(
    vaults: tuple[LocalVault, RemoteVault, Sandbox], side: str
) -> None:
    vault, remote, sandbox = vaults
    client: Any = vault if side == "local" else remote
    up = sandbox_route("acc_up", sandbox.url)
    down = sandbox_route("acc_down", f"http://127.0.0.1:{closed_port()}")
    meta = await client.tokenize("mer_1", CARD, who="t")
    args: dict[str, Any] = {"password2": "12", "who": "t", "why": "registration"}

    key = await client.issue_billing_key(meta.token, "mer_1", customer_uid="cu_up",
                                         route=up, **args)  # fmt: skip
    assert (key.ok, key.pg_down) == (True, False)
    assert await sandbox.state.ledger.customer("cu_up") is not None  # at the sandbox

    lost = await client.issue_billing_key(meta.token, "mer_1", customer_uid="cu_down",
                                          route=down, **args)  # fmt: skip
    assert (lost.ok, lost.pg_down) == (False, True)

    unsent = await client.keyed_charge(meta.token, "mer_1", order=Order("ord_d", 1_000, "x", 0),
                                       route=down, **args)  # fmt: skip
    assert unsent.status == "not_sent"
    paid = await client.keyed_charge(meta.token, "mer_1", order=Order("ord_d", 1_000, "x", 0),
                                     route=up, **args)  # fmt: skip
    assert paid.status == "succeeded"  # the same order, sent elsewhere: charged once
    [payment] = (await sandbox.ledger("ord_d"))["payments"]
    assert payment["status"] == "paid"

    card_gw = vault.gateway
    assert isinstance(card_gw, VaultCardGateway)
    gateways: list[Gateway] = [card_gw.for_route(up), card_gw.for_route(down)]
    assert all(isinstance(g, PortOneGateway) for g in gateways)
    assert gateways[0] is not gateways[1]


async def test_a_v2_account_on_a_closed_port_is_down_and_nothing_was_sent() -> None:
    route = Route("acc_v2", "portone_v2", f"http://127.0.0.1:{closed_port()}",
                  {"api_secret": "s", "store_id": "store-1", "channel_key": "ch"})  # fmt: skip
    card_gw = VaultCardGateway(None, lambda r: gateway_for_route(r, BASE))
    try:
        key = await card_gw.issue_billing_key(CARD, "12", "cu_1", route=route)
        assert key.pg_down
        charge = await card_gw.keyed_charge(CARD, "12", Order("ord_1", 1_000, "x", 0), route=route)
        assert charge.status == "not_sent"
    finally:
        await card_gw.aclose()
