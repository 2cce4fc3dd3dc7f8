"""One suite, two implementations: the vault in-process (LocalVault) and behind its
Unix socket (RemoteVault), each with the key-file and the SoftHSM2 KEK."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ivr.clock import FakeClock
from tests.vault.vault_helpers import CANARY, RecordingGateway, random_card, wrong_births_at_once
from vault.access import user_name
from vault.card import CardData
from vault.client import VaultClient
from vault.errors import (
    GatewayFailed,
    InvalidBirthOrBrn,
    InvalidCardNumber,
    InvalidExpiry,
    InvalidPassword,
    InvalidRequest,
    TokenNotFound,
    VerifyLimited,
)
from vault.forwarding import BillingKeyResult, ChargeResult, Order
from vault.models import BirthCheck
from vault.service import LocalVault
from vault.tokens import TOKEN_RE

pytestmark = pytest.mark.anyio

CORPORATE = CardData(pan="5555555555554444", expiry="0227", birth="1248100998")


async def test_tokenize_returns_metadata_only(client: VaultClient) -> None:
    meta = await client.tokenize("mer_1", CANARY, who="flow:reg")
    assert TOKEN_RE.fullmatch(meta.token)
    assert (meta.bin6, meta.last4, meta.brand, meta.owner_type) == (
        "401288", "1881", "visa", "personal"
    )  # fmt: skip
    assert meta.issuer == "테스트카드"
    assert len(meta.fingerprint) == 64
    assert CANARY.pan not in repr(meta)
    assert CANARY.birth not in repr(meta)
    assert await client.metadata(meta.token, "mer_1") == meta


async def test_tokens_are_random_fingerprints_are_per_merchant(client: VaultClient) -> None:
    a = await client.tokenize("mer_1", CANARY, who="t")
    b = await client.tokenize("mer_1", CANARY, who="t")
    c = await client.tokenize("mer_2", CANARY, who="t")
    d = await client.tokenize("mer_1", random_card(7), who="t")
    assert len({a.token, b.token, c.token}) == 3  # never derived from the card
    assert a.fingerprint == b.fingerprint  # same card, same merchant
    assert a.fingerprint != c.fingerprint  # another merchant cannot link it
    assert a.fingerprint != d.fingerprint


async def test_corporate_card_with_business_number(client: VaultClient) -> None:
    meta = await client.tokenize("mer_1", CORPORATE, who="t")
    assert meta.owner_type == "corporate"
    assert meta.brand == "mastercard"


@pytest.mark.parametrize(
    ("card", "error"),
    [
        (dataclasses.replace(CANARY, pan="4012888888881882"), InvalidCardNumber),
        (dataclasses.replace(CANARY, pan="401288888888"), InvalidCardNumber),
        (dataclasses.replace(CANARY, expiry="1225"), InvalidExpiry),
        (dataclasses.replace(CANARY, expiry="1326"), InvalidExpiry),
        (dataclasses.replace(CANARY, birth="900230"), InvalidBirthOrBrn),
        (dataclasses.replace(CANARY, birth="1248100999"), InvalidBirthOrBrn),
    ],
)
async def test_invalid_cards_are_refused(
    client: VaultClient, card: CardData, error: type[Exception]
) -> None:
    with pytest.raises(error) as err:
        await client.tokenize("mer_1", card, who="t")
    assert card.pan not in str(err.value)
    assert card.birth not in str(err.value)
    assert (await client.status()).records == 0


async def test_issue_billing_key_forwards_the_card_and_password(
    client: VaultClient, gateway: RecordingGateway
) -> None:
    meta = await client.tokenize("mer_1", CANARY, who="flow:reg")
    result = await client.issue_billing_key(
        meta.token, "mer_1", password2="37", customer_uid="cus_1",
        who="flow:reg", why="registration call creq_1",
    )  # fmt: skip
    assert result == BillingKeyResult(ok=True, customer_uid="cus_1", card_issuer="테스트카드",
                                      card_type="credit")  # fmt: skip
    [got] = gateway.received
    assert got.card == CANARY
    assert got.password2 == "37"
    assert got.args == {"uid": "cus_1"}


async def test_keyed_charge(client: VaultClient, gateway: RecordingGateway) -> None:
    meta = await client.tokenize("mer_1", CORPORATE, who="t")
    order = Order(order_id="ord_1", amount=53_000, order_name="임플란트", installment_months=3)
    result = await client.keyed_charge(
        meta.token, "mer_1", password2="12", order=order, who="flow:pay", why="payment call"
    )
    expected = ChargeResult(status="succeeded", order_id="ord_1", amount=53_000,
                            pg_transaction_id="imp_1", approval_number="12345678")  # fmt: skip
    assert result == expected
    [got] = gateway.received
    assert got.card == CORPORATE
    assert got.args["installment_months"] == 3
    assert got.args["order_name"] == "임플란트"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"password2": "1"}, InvalidPassword),
        ({"password2": "123"}, InvalidPassword),
        ({"amount": 99}, InvalidRequest),
        ({"installment_months": 1}, InvalidRequest),
        ({"order_id": "ord 1"}, InvalidRequest),
        ({"why": ""}, InvalidRequest),
        ({"who": "x" * 129}, InvalidRequest),
        ({"why": "see card 4012888888881881"}, InvalidRequest),
    ],
)
async def test_forwarding_arguments_are_checked(
    client: VaultClient, gateway: RecordingGateway, changes: dict[str, object], error: type
) -> None:
    meta = await client.tokenize("mer_1", CANARY, who="t")
    args: dict[str, Any] = {"password2": "12", "order_id": "ord_1", "amount": 1000,
                            "order_name": "x", "installment_months": 0, "who": "t",
                            "why": "pay"}  # fmt: skip
    args.update(changes)
    order = Order(*(args.pop(name) for name in ("order_id", "amount", "order_name",
                                                "installment_months")))  # fmt: skip
    with pytest.raises(error):
        await client.keyed_charge(meta.token, "mer_1", order=order, **args)
    assert gateway.received == []


async def test_records_are_scoped_to_their_merchant(client: VaultClient) -> None:
    meta = await client.tokenize("mer_1", CANARY, who="t")
    with pytest.raises(TokenNotFound):
        await client.metadata(meta.token, "mer_2")
    with pytest.raises(TokenNotFound):
        await client.issue_billing_key(meta.token, "mer_2", password2="12", customer_uid="c",
                                       who="t", why="x")  # fmt: skip
    with pytest.raises(TokenNotFound):
        await client.delete(meta.token, "mer_2", who="t", why="x")
    with pytest.raises(TokenNotFound):
        await client.metadata("tok_aaaaaaaaaaaaaaaaaaaaaaaa", "mer_1")
    with pytest.raises(InvalidRequest):
        await client.metadata("not-a-token", "mer_1")


async def test_delete_erases_for_good(client: VaultClient, gateway: RecordingGateway) -> None:
    meta = await client.tokenize("mer_1", CANARY, who="t")
    await client.delete(meta.token, "mer_1", who="admin:kim", why="customer asked")
    with pytest.raises(TokenNotFound):
        await client.metadata(meta.token, "mer_1")
    with pytest.raises(TokenNotFound):
        await client.issue_billing_key(meta.token, "mer_1", password2="12", customer_uid="c",
                                       who="t", why="x")  # fmt: skip
    with pytest.raises(TokenNotFound):
        await client.delete(meta.token, "mer_1", who="t", why="again")
    assert gateway.received == []


async def test_every_decrypt_is_audited(client: VaultClient) -> None:
    meta = await client.tokenize("mer_1", CANARY, who="flow:reg")
    other = await client.tokenize("mer_1", random_card(1), who="flow:reg")
    await client.issue_billing_key(meta.token, "mer_1", password2="12", customer_uid="cus_1",
                                   who="flow:reg", why="registration call")  # fmt: skip
    await client.keyed_charge(meta.token, "mer_1", password2="12", order=Order("o1", 100, "x", 0),
                              who="billing", why="schedule sch_1 cycle 3")  # fmt: skip
    await client.delete(meta.token, "mer_1", who="admin", why="erase")
    entries = await client.audit(token=meta.token)

    def who(claimed: str) -> str:
        """In-process the stated identity; over the socket the peer's role and user, the
        stated one only in parentheses (this test runs as the vault's own user)."""
        if isinstance(client, LocalVault):
            return claimed
        return f"engine:{user_name(os.getuid())} ({claimed})"

    assert [(e.action, e.who, e.why) for e in entries] == [
        ("delete", who("admin"), "erase"),
        ("keyed_charge", who("billing"), "schedule sch_1 cycle 3"),
        ("issue_billing_key", who("flow:reg"), "registration call"),
        ("tokenize", who("flow:reg"), ""),
    ]
    assert all(e.token == meta.token and e.merchant_id == "mer_1" for e in entries)
    assert entries[0].at is not None
    assert entries[0].peer  # "in-process", or the socket peer's uid/pid
    everything = await client.audit(limit=2)
    assert len(everything) == 2
    assert everything[0].action == "delete"
    assert other.token in {e.token for e in await client.audit(limit=100)}


async def test_no_api_stores_the_password(client: VaultClient, gateway: RecordingGateway) -> None:
    meta = await client.tokenize("mer_1", CANARY, who="t")
    await client.issue_billing_key(meta.token, "mer_1", password2="73", customer_uid="c",
                                   who="t", why="x")  # fmt: skip
    for entry in await client.audit(limit=100):
        assert "73" not in (entry.why + entry.who)
    # CardData has no password field, and tokenize takes no password argument
    assert "password" not in {f.name for f in dataclasses.fields(CardData)}


async def test_gateway_errors_are_reported_without_details(
    client: VaultClient, gateway: RecordingGateway
) -> None:
    meta = await client.tokenize("mer_1", CANARY, who="t")
    gateway.fail_with = RuntimeError(f"boom {CANARY.pan}")  # a careless connector
    with pytest.raises(GatewayFailed) as err:
        await client.issue_billing_key(meta.token, "mer_1", password2="12", customer_uid="c",
                                       who="t", why="x")  # fmt: skip
    assert CANARY.pan not in str(err.value)
    assert "RuntimeError" in str(err.value)


async def test_status_never_shows_card_data(client: VaultClient) -> None:
    await client.tokenize("mer_1", CANARY, who="t")
    st = await client.status()
    assert st.records == 1
    assert st.current_kek in {k.kek_id for k in st.keks}
    assert CANARY.pan not in repr(st)


async def test_concurrent_clients(client: VaultClient) -> None:
    metas = await asyncio.gather(
        *(client.tokenize("mer_1", random_card(i), who="t") for i in range(40))
    )
    assert len({m.token for m in metas}) == 40
    again = await asyncio.gather(*(client.metadata(m.token, "mer_1") for m in metas))
    assert list(again) == list(metas)


async def test_tokens_lists_records_by_age_in_pages_without_card_data(
    client: VaultClient, vault_clock: FakeClock
) -> None:
    old = [await client.tokenize(f"mer_{i % 2}", random_card(i), who="t") for i in range(5)]
    cutoff = vault_clock.advance(timedelta(minutes=5))
    await client.tokenize("mer_1", CANARY, who="t")  # created at the cutoff: not listed
    seen, after = [], ""
    while page := await client.tokens(created_before=cutoff, after=after, limit=2):
        assert len(page) <= 2
        seen += page
        after = page[-1].token
    assert [r.token for r in seen] == sorted(m.token for m in old)  # token order, each once
    assert {(r.token, r.merchant_id, r.created_at) for r in seen} == {
        (m.token, m.merchant_id, m.created_at) for m in old
    }
    assert CANARY.pan[-4:] not in repr(seen)  # a name, not the card: no BIN, no last 4
    assert await client.tokens(created_before=old[0].created_at) == []  # strictly before
    await client.delete(old[0].token, old[0].merchant_id, who="t", why="test")
    assert old[0].token not in {r.token for r in await client.tokens(created_before=cutoff)}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"created_before": datetime(2030, 1, 1)},  # no time zone
        {"created_before": datetime(2030, 1, 1, tzinfo=UTC), "limit": 0},
        {"created_before": datetime(2030, 1, 1, tzinfo=UTC), "limit": 1001},
        {"created_before": datetime(2030, 1, 1, tzinfo=UTC), "after": "not-a-token"},
    ],
)
async def test_tokens_refuses_bad_arguments(client: VaultClient, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        await client.tokens(**kwargs)


# --------------------------------------------------------------------------- verify_birth


async def test_verify_birth_says_only_whether_it_matched(client: VaultClient) -> None:
    """The knowledge factor of a registered-card payment (docs/product.md §2 item 3): a yes or
    no, for a birth date and for a corporate card's business number."""
    meta = await client.tokenize("mer_1", CANARY, who="flow:reg")
    corp = await client.tokenize("mer_1", CORPORATE, who="flow:reg")
    ask = {"who": "engine:call:creq_1", "why": "knowledge factor"}
    assert await client.verify_birth(meta.token, "mer_1", birth=CANARY.birth, **ask) == (
        BirthCheck(matched=True)
    )
    assert not (await client.verify_birth(meta.token, "mer_1", birth="900102", **ask)).matched
    for token, birth, matched in ((corp.token, CORPORATE.birth, True),
                                  (corp.token, CANARY.birth, False),
                                  (meta.token, CORPORATE.birth, False)):  # fmt: skip
        check = await client.verify_birth(token, "mer_1", birth=birth, **ask)
        assert check.matched is matched


async def test_verify_birth_is_audited_with_its_outcome_never_the_digits(
    client: VaultClient,
) -> None:
    meta = await client.tokenize("mer_1", CANARY, who="flow:reg")
    await client.verify_birth(meta.token, "mer_1", birth="770707", who="engine:call:creq_1",
                              why="knowledge factor")  # fmt: skip
    await client.verify_birth(meta.token, "mer_1", birth=CANARY.birth, who="engine:call:creq_2",
                              why="knowledge factor")  # fmt: skip
    entries = await client.audit(token=meta.token)

    def who(claimed: str) -> str:  # over the socket: the peer's role and user first
        if isinstance(client, LocalVault):
            return claimed
        return f"engine:{user_name(os.getuid())} ({claimed})"

    assert [(e.action, e.who, e.why) for e in entries] == [
        ("verify_birth.ok", who("engine:call:creq_2"), "knowledge factor"),
        ("verify_birth", who("engine:call:creq_2"), "knowledge factor"),
        ("verify_birth.mismatch", who("engine:call:creq_1"), "knowledge factor"),
        ("verify_birth", who("engine:call:creq_1"), "knowledge factor"),
        ("tokenize", who("flow:reg"), ""),
    ]
    for e in entries:
        assert e.peer
        assert "770707" not in repr(e)
        assert CANARY.birth not in repr(e)


@pytest.mark.parametrize("value", ["90010", "901301", "1234567890", "９００１０１", "", "900101#"])
async def test_verify_birth_refuses_a_malformed_value_without_echoing_it(
    client: VaultClient, value: str
) -> None:
    meta = await client.tokenize("mer_1", CANARY, who="t")
    with pytest.raises(InvalidBirthOrBrn) as caught:
        await client.verify_birth(meta.token, "mer_1", birth=value, who="t", why="x")
    assert not value or value not in str(caught.value)
    assert [e.action for e in await client.audit(token=meta.token)] == ["tokenize"]


async def test_verify_birth_is_scoped_to_the_merchant(client: VaultClient) -> None:
    meta = await client.tokenize("mer_1", CANARY, who="t")
    with pytest.raises(TokenNotFound):
        await client.verify_birth(meta.token, "mer_2", birth=CANARY.birth, who="t", why="x")
    assert [e.action for e in await client.audit(token=meta.token)] == ["tokenize"]


async def test_the_vault_stops_answering_after_its_own_ceiling(
    client: VaultClient, vault: LocalVault, vault_clock: FakeClock
) -> None:
    """Behind the engine's per-card lock, the vault keeps its own ceiling of unmatched
    checks per card and 24 h, so even a compromised engine cannot use it as an oracle
    for the birth date. Matches do not count; the window moves on."""
    vault.verify_limit = 3
    meta = await client.tokenize("mer_1", CANARY, who="t")
    other = await client.tokenize("mer_1", random_card(3), who="t")
    ask = {"who": "engine:call:creq_1", "why": "knowledge factor"}
    for _ in range(2):
        assert not (await client.verify_birth(meta.token, "mer_1", birth="770707", **ask)).matched
    assert (await client.verify_birth(meta.token, "mer_1", birth=CANARY.birth, **ask)).matched
    assert not (await client.verify_birth(meta.token, "mer_1", birth="770707", **ask)).matched
    for birth in ("770707", CANARY.birth):  # even the right answer: no more answers
        with pytest.raises(VerifyLimited):
            await client.verify_birth(meta.token, "mer_1", birth=birth, **ask)
    assert (await client.verify_birth(other.token, "mer_1", birth="770707", **ask)) == (
        BirthCheck(matched=False)
    )  # per card
    actions = [e.action for e in await client.audit(token=meta.token)]
    assert actions[:2] == ["verify_birth.limited", "verify_birth.limited"]
    vault_clock.advance(timedelta(hours=24, seconds=1))
    assert (await client.verify_birth(meta.token, "mer_1", birth=CANARY.birth, **ask)).matched


async def test_concurrent_checks_cannot_pass_the_ceiling(
    client: VaultClient, vault: LocalVault
) -> None:
    """A check in flight counts until it has matched: 12 wrong guesses at once against a
    ceiling of 4 get 4 answers."""
    vault.verify_limit = 4
    meta = await client.tokenize("mer_1", CANARY, who="t")
    outcomes = await wrong_births_at_once(client, meta.token, 12, "8501")
    assert outcomes == ["limited"] * 8 + ["mismatch"] * 4


async def test_a_stored_card_gets_a_key_without_password_but_no_keyed_charge(
    client: VaultClient, gateway: RecordingGateway
) -> None:
    """A card moving to another PG account (the password is never stored): the key is
    asked with none; a keyed charge still needs it."""
    meta = await client.tokenize("mer_1", CANARY, who="t")
    key = await client.issue_billing_key(meta.token, "mer_1", password2="", customer_uid="cu_m",
                                         who="t", why="card migration")  # fmt: skip
    assert key.ok
    assert [r.password2 for r in gateway.received] == [""]
    with pytest.raises(InvalidPassword):
        await client.keyed_charge(meta.token, "mer_1", password2="", who="t", why="pay",
                                  order=Order("ord_1", 1000, "x", 0))  # fmt: skip
    assert len(gateway.received) == 1
