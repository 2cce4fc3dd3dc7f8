"""DID pool service (docs/product.md §2).

Rules, each enforced here and tested under concurrency:

- a lease is unique per *(DID, mobile)*: a partial unique index allows at most one
  ``active`` lease per pair, so one DID serves any number of different mobiles at once;
- allocation picks, among active DIDs with no active lease for that mobile and not in
  cool-down for it, the least recently used one (``dids.last_leased_at``);
- a released or expired pair is not leased again to the same mobile for
  ``cooldown_minutes``, so a late call cannot land in a newer request;
- a lease past ``expires_at`` no longer matches calls; ``expire_due`` marks such
  leases ``expired`` (and they are expired lazily for a mobile when it leases again).

Concurrency: lease decisions for one mobile are serialized (a PostgreSQL advisory
transaction lock per mobile; on SQLite every transaction holds the write lock from
``BEGIN IMMEDIATE``). The partial unique index stays as the last line of defence: a
unique violation (inside a savepoint) makes the lease look again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.audit import audit
from ivr.clock import Clock
from ivr.domain.ids import new_id
from ivr.domain.states import LEASE, DidStatus, LeaseStatus
from ivr.errors import InvalidInput, NotFound, PoolExhausted
from ivr.phone import PhoneError, normalize_mobile
from ivr.store.db import Database
from ivr.store.tables import Did, Lease

NEVER = datetime(1970, 1, 1, tzinfo=UTC)  # last_leased_at of a DID never leased


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    id: str
    did: str
    mobile: str
    purpose: str
    status: LeaseStatus
    expires_at: datetime
    call_request_id: str | None

    @classmethod
    def of(cls, row: Lease) -> LeaseInfo:
        return cls(
            row.id,
            row.did,
            row.mobile,
            row.purpose,
            LeaseStatus(row.status),
            row.expires_at,
            row.call_request_id,
        )


@dataclass(frozen=True, slots=True)
class PoolStats:
    dids: int
    active_dids: int
    active_leases: int
    mobiles_with_leases: int


@dataclass(eq=False)
class DidPool:
    db: Database
    clock: Clock
    _: KW_ONLY
    lease_lifetime: timedelta = timedelta(minutes=30)
    cooldown: timedelta = timedelta(minutes=10)
    on_exhausted: Callable[[], None] | None = None  # told of each refused lease (metrics)

    # ------------------------------------------------------------------ import

    async def import_numbers(self, numbers: Sequence[str], *, actor: str = "cli") -> int:
        """Add DIDs (already normalized digits); return how many were new. Audited in
        the same transaction."""
        now = self.clock.now()
        rows = [
            {
                "number": n,
                "status": DidStatus.active.value,
                "last_leased_at": NEVER,
                "created_at": now,
            }
            for n in numbers
        ]
        added = 0
        async with self.db.transaction() as s:
            before = await s.scalar(select(func.count()).select_from(Did)) or 0
            insert = postgresql.insert if self.db.is_postgres else sqlite.insert
            for i in range(0, len(rows), 1000):
                await s.execute(insert(Did).on_conflict_do_nothing(), rows[i : i + 1000])
            after = await s.scalar(select(func.count()).select_from(Did)) or 0
            added = after - before
            if numbers:
                details = {"numbers": len(numbers), "added": added, "first": numbers[0],
                           "last": numbers[-1]}  # fmt: skip
                audit(s, self.clock, actor=actor, action="did.import", object_type="did",
                      object_id=numbers[0], details=details)  # fmt: skip
        return added

    async def set_status(self, number: str, status: DidStatus, *, actor: str = "cli") -> None:
        async with self.db.transaction() as s:
            did = await s.get(Did, number, with_for_update=True)
            if did is None:
                raise NotFound(f"DID {number} is not in the pool")
            did.status = status.value
            action = "did.enable" if status is DidStatus.active else "did.disable"
            audit(s, self.clock, actor=actor, action=action, object_type="did", object_id=number)

    # ------------------------------------------------------------------ lease

    async def lease(
        self,
        mobile: str,
        purpose: str,
        *,
        call_request_id: str | None = None,
        minutes: int | None = None,
    ) -> LeaseInfo:
        async with self.db.transaction() as s:
            return await self.lease_in(
                s, mobile, purpose, call_request_id=call_request_id, minutes=minutes
            )

    async def lease_in(
        self,
        s: AsyncSession,
        mobile: str,
        purpose: str,
        *,
        call_request_id: str | None = None,
        minutes: int | None = None,
    ) -> LeaseInfo:
        """Lease a DID to ``mobile`` inside the caller's transaction ``s``."""
        try:
            mobile = normalize_mobile(mobile).digits
        except PhoneError as exc:
            raise InvalidInput(str(exc)) from None
        lifetime = timedelta(minutes=minutes) if minutes else self.lease_lifetime
        if lifetime <= timedelta(0):
            raise InvalidInput("lease lifetime must be positive")
        await self._lock_mobile(s, mobile)
        now = self.clock.now()  # after the lock: the lease starts when it is really made
        await self._expire(s, now, mobile=mobile)
        tried: set[str] = set()
        while True:
            # Re-read the candidates after every lost race: a list read before waiting on
            # another transaction may be stale.
            did = await self._least_recently_used(s, mobile, now, tried)
            if did is None:
                if self.on_exhausted is not None:
                    self.on_exhausted()
                raise await self._exhausted(s, mobile, now)
            tried.add(did)
            lease = Lease(
                id=new_id("lse"),
                did=did,
                mobile=mobile,
                purpose=purpose,
                call_request_id=call_request_id,
                status=LeaseStatus.active.value,
                created_at=now,
                expires_at=now + lifetime,
            )
            if not await self._insert(s, lease):
                continue  # another transaction leased this pair first: look again
            await s.execute(
                update(Did)
                .where(Did.number == did, Did.last_leased_at < now)
                .values(last_leased_at=now)
            )
            return LeaseInfo.of(lease)

    async def _lock_mobile(self, s: AsyncSession, mobile: str) -> None:
        """Serialize lease decisions for one mobile until the transaction ends.

        Without it, on PostgreSQL another transaction could lease *and* release the same
        pair between our candidate query and our insert, and we would re-lease it inside
        its cool-down. SQLite: the first statement of the transaction takes the database
        write lock (``BEGIN IMMEDIATE``), which serializes everything anyway."""
        if self.db.is_postgres:
            await s.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"lease:{mobile}"}
            )
        else:
            await s.connection()

    async def _insert(self, s: AsyncSession, lease: Lease) -> bool:
        """Insert a lease; False if the (DID, mobile) pair got an active lease meanwhile.

        Only PostgreSQL can race here (SQLite transactions hold the write lock), so only
        there is the insert wrapped in a savepoint to survive the unique violation."""
        if not self.db.is_postgres:
            s.add(lease)
            await s.flush()
            return True
        try:
            async with s.begin_nested():
                s.add(lease)
                await s.flush()
        except IntegrityError:
            return False
        return True

    async def _least_recently_used(
        self, s: AsyncSession, mobile: str, now: datetime, tried: set[str]
    ) -> str | None:
        """The LRU active DID that ``mobile`` holds no lease on and is not cooling down for.

        The mobile's blocked DIDs are few: fetch them through the (mobile, status) index,
        then walk the DIDs in LRU order on the (status, last_leased_at, number) index."""
        blocked = set(
            await s.scalars(
                select(Lease.did).where(
                    Lease.mobile == mobile,
                    or_(Lease.status == LeaseStatus.active.value, Lease.cooldown_until > now),
                )
            )
        )
        q = select(Did.number).where(Did.status == DidStatus.active.value)
        if blocked | tried:
            q = q.where(Did.number.not_in(blocked | tried))
        return await s.scalar(q.order_by(Did.last_leased_at, Did.number).limit(1))

    async def _exhausted(self, s: AsyncSession, mobile: str, now: datetime) -> PoolExhausted:
        total = await s.scalar(
            select(func.count()).select_from(Did).where(Did.status == DidStatus.active.value)
        )
        if not total:
            return PoolExhausted("the DID pool has no active numbers")
        active = await s.scalar(
            select(func.count())
            .select_from(Lease)
            .where(Lease.mobile == mobile, Lease.status == LeaseStatus.active.value)
        )
        return PoolExhausted(
            f"pool exhausted for this number: {active} of {total} DIDs are leased to it "
            "and the rest are in cool-down; release a request or wait"
        )

    # ------------------------------------------------------------------ release / expire

    async def release(self, lease_id: str) -> LeaseInfo:
        async with self.db.transaction() as s:
            return await self.end_in(s, lease_id, LeaseStatus.released)

    async def end_in(self, s: AsyncSession, lease_id: str, status: LeaseStatus) -> LeaseInfo:
        """End a lease (released or expired) inside the caller's transaction."""
        lease = await s.get(Lease, lease_id, with_for_update=True)
        if lease is None:
            raise NotFound(f"lease {lease_id} not found")
        now = self.clock.now()
        LEASE.check(lease.status, status)
        ended = min(now, lease.expires_at) if status is LeaseStatus.expired else now
        lease.status = status.value
        lease.ended_at = ended
        lease.cooldown_until = ended + self.cooldown
        await s.flush()
        return LeaseInfo.of(lease)

    async def expire_due(self) -> int:
        """Mark every active lease past its lifetime ``expired``; return how many."""
        async with self.db.transaction() as s:
            return await self._expire(s, self.clock.now())

    async def _expire(self, s: AsyncSession, now: datetime, *, mobile: str | None = None) -> int:
        cond = and_(Lease.status == LeaseStatus.active.value, Lease.expires_at <= now)
        if mobile is not None:
            cond = and_(cond, Lease.mobile == mobile)
        rows = (await s.scalars(select(Lease).where(cond).with_for_update())).all()
        for lease in rows:
            LEASE.check(lease.status, LeaseStatus.expired)
            lease.status = LeaseStatus.expired.value
            lease.ended_at = lease.expires_at
            lease.cooldown_until = lease.expires_at + self.cooldown
        await s.flush()
        return len(rows)

    # ------------------------------------------------------------------ lookups

    async def match(self, did: str, mobile: str) -> LeaseInfo | None:
        """The active, unexpired lease for an incoming call's (called DID, caller ID)."""
        async with self.db.sessions() as s:
            row = await self.match_in(s, did, mobile)
            return LeaseInfo.of(row) if row else None

    async def match_in(self, s: AsyncSession, did: str, mobile: str) -> Lease | None:
        """:meth:`match` in the caller's transaction (the possession check)."""
        return await s.scalar(
            select(Lease).where(
                Lease.did == did,
                Lease.mobile == mobile,
                Lease.status == LeaseStatus.active.value,
                Lease.expires_at > self.clock.now(),
            )
        )

    async def active_leases(self, mobile: str | None = None) -> list[LeaseInfo]:
        now = self.clock.now()
        q = select(Lease).where(Lease.status == LeaseStatus.active.value, Lease.expires_at > now)
        if mobile is not None:
            q = q.where(Lease.mobile == mobile)
        async with self.db.sessions() as s:
            return [LeaseInfo.of(r) for r in await s.scalars(q.order_by(Lease.created_at))]

    async def stats(self) -> PoolStats:
        now = self.clock.now()
        live = and_(Lease.status == LeaseStatus.active.value, Lease.expires_at > now)
        async with self.db.sessions() as s:
            dids = await s.scalar(select(func.count()).select_from(Did)) or 0
            active = (
                await s.scalar(
                    select(func.count())
                    .select_from(Did)
                    .where(Did.status == DidStatus.active.value)
                )
                or 0
            )
            leases = await s.scalar(select(func.count()).select_from(Lease).where(live)) or 0
            mobiles = (
                await s.scalar(select(func.count(func.distinct(Lease.mobile))).where(live)) or 0
            )
        return PoolStats(dids, active, leases, mobiles)
