"""DID pool rules (docs/product.md §2), deterministic, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ivr.clock import FakeClock
from ivr.dids.pool import DidPool
from ivr.domain.states import DidStatus, LeaseStatus
from ivr.errors import InvalidInput, InvalidTransition, PoolExhausted
from ivr.store.db import Database

pytestmark = pytest.mark.anyio

DIDS = [f"0505000000{i}" for i in range(5)]
M1, M2 = "01011112222", "01033334444"


@pytest.fixture
async def pool(db: Database, clock: FakeClock) -> DidPool:
    p = DidPool(db, clock, lease_lifetime=timedelta(minutes=30), cooldown=timedelta(minutes=10))
    assert await p.import_numbers(DIDS) == 5
    return p


async def test_import_is_idempotent(pool: DidPool) -> None:
    assert await pool.import_numbers([*DIDS, "05050000099"]) == 1
    assert (await pool.stats()).dids == 6


async def test_one_did_serves_many_mobiles_at_once(pool: DidPool, clock: FakeClock) -> None:
    a = await pool.lease(M1, "registration")
    clock.advance(1)
    # M2 gets the least recently used DID, not the one M1 holds ...
    b = await pool.lease(M2, "registration")
    assert a.did != b.did
    # ... but once every DID has been used, DIDs are shared across mobiles
    leases = []
    for i in range(10):
        clock.advance(1)
        leases.append(await pool.lease(f"0105555{i:04d}", "payment"))
    assert len({x.did for x in leases}) == 5
    assert (await pool.stats()).active_leases == 12


async def test_least_recently_used_did_is_chosen(pool: DidPool, clock: FakeClock) -> None:
    order = []
    for i in range(5):
        order.append((await pool.lease(f"0107777{i:04d}", "registration")).did)
        clock.advance(1)
    assert sorted(order) == sorted(DIDS)  # every DID used once before any twice
    nxt = await pool.lease("01088880000", "registration")
    assert nxt.did == order[0]  # the oldest use comes round first


async def test_a_mobile_gets_at_most_one_lease_per_did_then_a_clear_error(
    pool: DidPool,
) -> None:
    got = {(await pool.lease(M1, "payment")).did for _ in range(5)}
    assert got == set(DIDS)
    with pytest.raises(PoolExhausted, match="pool exhausted for this number") as err:
        await pool.lease(M1, "payment")
    assert err.value.http_status == 409
    await pool.lease(M2, "payment")  # other mobiles are unaffected


async def test_cool_down_keeps_a_released_pair_from_the_same_mobile(
    pool: DidPool, clock: FakeClock
) -> None:
    first = await pool.lease(M1, "registration")
    await pool.release(first.id)
    others = {(await pool.lease(M1, "payment")).did for _ in range(4)}
    assert first.did not in others  # the released pair is cooling down
    with pytest.raises(PoolExhausted):
        await pool.lease(M1, "payment")
    # another mobile may take that DID at once
    assert first.did in {(await pool.lease(M2, "payment")).did for _ in range(5)}
    clock.advance(timedelta(minutes=10))
    again = await pool.lease(M1, "payment")
    assert again.did == first.did


async def test_expiry_releases_and_stops_matching(pool: DidPool, clock: FakeClock) -> None:
    lease = await pool.lease(M1, "registration")
    assert await pool.match(lease.did, M1) is not None
    assert await pool.match(lease.did, M2) is None  # the caller ID is part of the key
    clock.advance(timedelta(minutes=30))
    assert await pool.match(lease.did, M1) is None  # past its lifetime: no match
    assert await pool.expire_due() == 1
    assert (await pool.stats()).active_leases == 0
    # expired pairs cool down from the expiry time, like released ones
    clock.advance(timedelta(minutes=9))
    got = {(await pool.lease(M1, "payment")).did for _ in range(4)}
    assert lease.did not in got
    clock.advance(timedelta(minutes=1))
    assert (await pool.lease(M1, "payment")).did == lease.did


async def test_leasing_expires_the_mobiles_stale_leases_first(
    pool: DidPool, clock: FakeClock
) -> None:
    for _ in range(5):
        await pool.lease(M1, "payment")
    clock.advance(timedelta(minutes=45))  # all expired 15 min ago, cool-down over
    assert (await pool.lease(M1, "payment")).status is LeaseStatus.active


async def test_release_twice_is_an_illegal_transition(pool: DidPool) -> None:
    lease = await pool.lease(M1, "registration")
    assert (await pool.release(lease.id)).status is LeaseStatus.released
    with pytest.raises(InvalidTransition):
        await pool.release(lease.id)


async def test_disabled_dids_are_not_leased(pool: DidPool) -> None:
    for did in DIDS[1:]:
        await pool.set_status(did, DidStatus.disabled)
    assert (await pool.lease(M1, "payment")).did == DIDS[0]
    with pytest.raises(PoolExhausted):
        await pool.lease(M1, "payment")


async def test_empty_pool_and_bad_mobile(db: Database, clock: FakeClock) -> None:
    empty = DidPool(db, clock)
    with pytest.raises(PoolExhausted, match="no active numbers"):
        await empty.lease(M1, "payment")
    with pytest.raises(InvalidInput, match="mobile"):
        await empty.lease("02-123-4567", "payment")
