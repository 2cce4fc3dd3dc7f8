"""Forwarding to a named PG account (a Route): the route crosses the socket whole, never
shows its secrets, and reaches only hosts on ``vault.gateway_hosts`` — a refused one
before anything is decrypted, audited without the connection."""

from __future__ import annotations

import copy
import dataclasses
import logging
import pickle
from typing import Any

import pytest

from tests.vault.vault_helpers import CANARY, RecordingGateway
from vault.client import VaultClient
from vault.config import VaultSettings
from vault.errors import BY_ID, GatewayHostRefused, InvalidRequest
from vault.forwarding import Order, Route
from vault.gateway_hosts import check_route
from vault.protocol import call_args, parse_request, wire_args
from vault.service import LocalVault

pytestmark = pytest.mark.anyio

SECRET = "sk_live_do_not_leak_7f3a"  # a test value to search for
CONNECTION = {"api_key": "imp_key_2", "api_secret": SECRET, "channel_key": "channel-key-2"}
SECONDARY = Route("acc_secondary", "portone", "https://api.iamport.kr", CONNECTION)
LOCAL = Route("acc_sandbox", "sandbox", "http://127.0.0.1:8090", {"api_key": "k"})


def routed(route: Route) -> dict[str, Any]:
    return {"who": "flow:reg", "why": "registration call", "route": route}


# --------------------------------------------------------------------------- the value


def test_a_route_shows_no_secret() -> None:
    for text in (repr(SECONDARY), str(SECONDARY), f"{SECONDARY!r}"):
        assert SECRET not in text
        assert "acc_secondary" in text
    assert "connection" not in repr(SECONDARY)
    for text in (repr(SECONDARY.connection), str(SECONDARY.connection)):
        assert SECRET not in text  # printed by mistake, the fields are named only
        assert "api_secret" in text
    copies = [copy.deepcopy(SECONDARY), pickle.loads(pickle.dumps(SECONDARY))]  # noqa: S301
    assert copies == [SECONDARY, SECONDARY]
    assert dataclasses.asdict(SECONDARY)["connection"] == CONNECTION


def test_a_route_is_read_only_and_compares_its_connection() -> None:
    with pytest.raises(TypeError):
        SECONDARY.connection["api_secret"] = "other"  # type: ignore[index]
    changed = Route("acc_secondary", "portone", "https://api.iamport.kr",
                    {**CONNECTION, "api_secret": "rotated"})  # fmt: skip
    assert changed != SECONDARY
    assert hash(changed) == hash(SECONDARY)  # the connection is never hashed


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"account_id": "acc 1"}, "account_id"),
        ({"account_id": "acc_4111111111111111"}, "account_id"),
        ({"kind": "toss"}, "kind"),
        ({"base_url": "ftp://api.iamport.kr"}, "base_url"),
        ({"base_url": f"https://user:{SECRET}@api.iamport.kr"}, "base_url"),
        ({"base_url": f"https://api.iamport.kr/?key={SECRET}"}, "base_url"),
        ({"base_url": "https://api.iamport.kr:99999"}, "base_url"),
        ({"connection": {"API KEY": SECRET}}, "connection"),
        ({"connection": {"api_secret": SECRET * 100}}, "connection.api_secret"),
        ({"connection": {f"f{n}": "x" for n in range(25)}}, "connection"),
    ],
)
def test_a_bad_route_is_refused_naming_the_field_only(changes: dict[str, Any], field: str) -> None:
    values = {"account_id": "acc_1", "kind": "portone", "base_url": "https://api.iamport.kr",
              "connection": CONNECTION, **changes}  # fmt: skip
    with pytest.raises(InvalidRequest, match=f"route.{field}") as err:
        Route(**values)
    assert SECRET not in str(err.value)


# --------------------------------------------------------------------------- the wire


def test_the_route_is_one_object_on_the_wire_and_comes_back_equal() -> None:
    kwargs = {"token": "tok_1", "merchant_id": "mer_1", "password2": "12",
              "customer_uid": "cu_1", **routed(SECONDARY)}  # fmt: skip
    args = wire_args(kwargs)
    assert args["route"] == {
        "account_id": "acc_secondary",
        "kind": "portone",
        "base_url": "https://api.iamport.kr",
        "connection": CONNECTION,
    }
    _, checked = parse_request({"op": "issue_billing_key", "args": args})
    assert call_args(checked) == kwargs
    no_route = wire_args({**kwargs, "route": None})
    _, checked = parse_request({"op": "issue_billing_key", "args": no_route})
    assert call_args(checked)["route"] is None


@pytest.mark.parametrize(
    "route",
    [
        {"account_id": "a", "kind": "portone", "base_url": "https://x"},  # no connection
        {"account_id": "a", "kind": "portone", "base_url": "https://x", "connection": []},
        {"account_id": "a", "kind": "portone", "base_url": "https://x", "connection": {"k": 1}},
        {
            "account_id": "a",
            "kind": "portone",
            "base_url": "https://x",
            "connection": {},
            "extra": "x",
        },
        "acc_1",
    ],
)
def test_a_malformed_route_on_the_wire_is_an_invalid_request(route: Any) -> None:
    args = wire_args({"token": "tok_1", "merchant_id": "mer_1", "password2": "12",
                      "customer_uid": "cu_1", "who": "w", "why": "y"})  # fmt: skip
    with pytest.raises(InvalidRequest):
        parse_request({"op": "issue_billing_key", "args": {**args, "route": route}})


async def test_the_route_reaches_the_gateway_in_process_and_over_the_socket(
    client: VaultClient, gateway: RecordingGateway, vault: LocalVault
) -> None:
    meta = await client.tokenize("mer_1", CANARY, who="t")
    key = await client.issue_billing_key(meta.token, "mer_1", password2="12",
                                         customer_uid="cu_1", **routed(SECONDARY))  # fmt: skip
    assert key.ok
    order = Order("ord_1", 1_000, "x", 0)
    charge = await client.keyed_charge(meta.token, "mer_1", password2="12", order=order,
                                       **routed(LOCAL))  # fmt: skip
    assert charge.status == "succeeded"
    order = Order("ord_2", 1_000, "x", 0)
    plain = await client.keyed_charge(
        meta.token, "mer_1", password2="12", order=order, who="t", why="y"
    )
    assert plain.status == "succeeded"
    assert [r.route for r in gateway.received] == [SECONDARY, LOCAL, None]
    assert gateway.received[0].route.connection["api_secret"] == SECRET  # type: ignore[union-attr]
    # the decrypts name the account, never its connection
    entries = await vault.audit(token=meta.token, limit=10)
    whys = [e.why for e in entries if e.action in ("issue_billing_key", "keyed_charge")]
    assert sorted(whys) == ["registration call [pg acc_sandbox]",
                            "registration call [pg acc_secondary]", "y"]  # fmt: skip
    assert all(SECRET not in repr(e) for e in entries)


# --------------------------------------------------------------------------- the allowlist


@pytest.mark.parametrize(
    ("base_url", "allowed"),
    [
        ("https://api.portone.io", True),
        ("https://API.PortOne.io./", True),
        ("http://127.0.0.1:8090", True),  # the sandbox PG: plain http on loopback
        ("http://localhost:8090/v2", True),
        ("https://evil.example", False),
        ("https://api.portone.io.evil.example", False),
        ("http://api.portone.io", False),  # listed, but plain http off loopback
        ("https://10.0.0.5", False),
    ],
)
def test_the_host_rules(base_url: str, allowed: bool) -> None:
    route = Route("acc_1", "portone_v2", base_url, {})
    hosts = VaultSettings().gateway_hosts
    if allowed:
        check_route(route, hosts)
    else:
        with pytest.raises(GatewayHostRefused):
            check_route(route, hosts)


def test_plain_http_off_loopback_is_refused_even_when_listed() -> None:
    route = Route("acc_1", "sandbox", "http://sandbox.internal:8090", {})
    check_route(Route("acc_1", "sandbox", "https://sandbox.internal", {}), ["sandbox.internal"])
    with pytest.raises(GatewayHostRefused, match="loopback"):
        check_route(route, ["sandbox.internal"])


def test_gateway_hosts_setting() -> None:
    assert VaultSettings().gateway_hosts == (
        "127.0.0.1", "localhost", "api.iamport.kr", "api.portone.io"
    )  # fmt: skip
    listed = VaultSettings.model_validate({"gateway_hosts": " API.PortOne.io , 127.0.0.1"})
    assert listed.gateway_hosts == ("api.portone.io", "127.0.0.1")
    for bad in ("https://api.portone.io", "*.portone.io", "a b"):
        with pytest.raises(ValueError, match="gateway_hosts"):
            VaultSettings.model_validate({"gateway_hosts": [bad]})


def test_the_refusal_error_is_declared_and_crosses_the_socket() -> None:
    assert GatewayHostRefused.error_id == "vault-gateway-host-refused"
    assert GatewayHostRefused.http_status == 403
    assert BY_ID["vault-gateway-host-refused"] is GatewayHostRefused


@pytest.mark.parametrize(
    "base_url", ["https://evil.example/portone", "http://api.portone.io", "http://10.1.2.3:80"]
)
@pytest.mark.parametrize("op", ["issue_billing_key", "keyed_charge"])
async def test_a_refused_route_is_audited_and_nothing_is_decrypted(
    client: VaultClient,
    gateway: RecordingGateway,
    vault: LocalVault,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    base_url: str,
    op: str,
) -> None:
    meta = await client.tokenize("mer_1", CANARY, who="t")

    async def no_decrypt(*args: Any, **kwargs: Any) -> bytearray:
        raise AssertionError("decrypted for a refused route")

    monkeypatch.setattr(vault, "_open", no_decrypt)
    route = Route("acc_evil", "portone", base_url, CONNECTION)
    caplog.set_level(logging.DEBUG)
    if op == "issue_billing_key":
        call = client.issue_billing_key(
            meta.token, "mer_1", password2="12", customer_uid="cu_1", **routed(route)
        )
    else:
        order = Order("ord_1", 1_000, "x", 0)
        call = client.keyed_charge(meta.token, "mer_1", password2="12", order=order,
                                   **routed(route))  # fmt: skip
    with pytest.raises(GatewayHostRefused) as err:
        await call
    assert SECRET not in str(err.value)
    assert gateway.received == []
    [entry, stored] = await vault.audit(token=meta.token, limit=10)
    assert stored.action == "tokenize"  # no decrypt row: the record was never read
    assert entry.action == "forward.host_refused"
    assert "acc_evil" in entry.why
    assert op in entry.why
    assert SECRET not in repr(entry)
    assert "imp_key_2" not in repr(entry)
    assert SECRET not in caplog.text
    assert "vault.forward.host_refused" in caplog.text


async def test_the_vault_closes_its_gateway(vault: LocalVault, gateway: RecordingGateway) -> None:
    await vault.close()
    assert gateway.closed
