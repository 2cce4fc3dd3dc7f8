"""Moving a merchant's stored cards to another PG account (#27 item 5):
``arspay cards migrate --merchant M --to ACCOUNT`` and ``POST /v1/card-migrations``.

The payer is not called: the vault re-issues each card's billing key at the target
account from the stored card, *without* the card password (never stored; the wire leaves
the field out). A PG that wants the password refuses (``password_required``) and the
card ends ``needs_payer``: its payer must register it again by phone
(docs/portone.md "Moving cards between PG accounts" says which PGs do).

One batch per merchant and target account (:mod:`.migration_store`); running it again
resumes it. Each card goes, every step committed before the next request::

    pending  --vault issues at the target-->   issued   (declined: failed | needs_payer;
                                                          PG down: stays pending)
    issued   --one transaction: card switched--> switched (an open charge of the card:
                                                          stays issued for the next pass)
    switched --old key deleted at the old PG-->  done     (PG down: stays switched)

A card stays where it was until the step that moves it commits, so a runner killed
anywhere leaves every card charging at exactly one account; the next run (after the
claim's lease) picks up where it stopped. At most ``concurrency`` cards are in flight.

The PG accounts are reached through :class:`Accounts` (the engine's book of guarded
gateways) and the vault through :func:`issue_without_password`, the one place that
names the target account to the vault.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, Protocol

from ivr.clock import Clock
from ivr.domain.states import CardMigrationStatus
from ivr.errors import Conflict
from ivr.gateways.contract import Gateway
from ivr.gateways.declines import DeclineReason
from ivr.gateways.errors import GatewayError
from ivr.pg_accounts.coalesce import Coalescer
from ivr.pg_accounts.migration_store import BatchView, Claimed, MigrationStore
from ivr.pg_accounts.model import account_key, stored_id
from ivr.pg_accounts.store import PgAccounts
from ivr.store.db import Database
from vault.client import VaultClient
from vault.errors import TokenNotFound
from vault.forwarding import BillingKeyResult

log = logging.getLogger(__name__)

M = CardMigrationStatus
WHY = "card migration"
ACTOR = "engine:card-migration"


class Accounts(Protocol):
    """What the migration needs of the PG accounts (the lead's ``GatewayBook``)."""

    async def of(self, account_id: str | None) -> Gateway:
        """The (guarded) gateway of an account; ``None``: default."""
        ...

    async def vault_route(self, account_id: str | None) -> object | None:
        """What the vault is told to forward to for this account; ``None``: default."""
        ...


async def issue_without_password(
    vault: VaultClient, c: Claimed, route: object | None, *, who: str
) -> BillingKeyResult:
    """The vault call, in one place: the key of the stored card at the target account,
    no password. ``route`` goes to the vault only when there is one (the default
    account's is none); a vault without account routes cannot take another account."""
    extra: dict[str, Any] = {} if route is None else {"route": route}
    return await vault.issue_billing_key(c.token, c.merchant_id, password2="",
                                         customer_uid=c.uid, who=who, why=WHY,
                                         **extra)  # fmt: skip


@dataclass(frozen=True)
class Progress:
    total: int
    done: int
    failed: int
    needs_payer: int
    open: int  # pending + issued + switched: left for the next pass or run

    @classmethod
    def of(cls, counts: Counter[str]) -> Progress:
        still = sum(counts[s.value] for s in (M.pending, M.issued, M.switched))
        return cls(total=sum(counts.values()), done=counts[M.done.value],
                   failed=counts[M.failed.value], needs_payer=counts[M.needs_payer.value],
                   open=still)  # fmt: skip

    @property
    def ended(self) -> int:
        return self.done + self.failed + self.needs_payer


ProgressFn = Callable[[Progress], None]


class CardMigrator:
    LEASE = timedelta(seconds=30)  # a runner's hold on the cards it works on

    def __init__(
        self,
        db: Database,
        clock: Clock,
        vault: VaultClient,
        accounts: Accounts,
        *,
        known: PgAccounts | None = None,
        concurrency: int = 16,
        lease: timedelta = LEASE,
        window_s: float = 0.005,
    ) -> None:
        """``known``: refuse a target account that does not exist or is disabled;
        ``window_s``: how long a step's transaction waits for other cards to join it
        (a few ms: the database's writes per card fall, each card waits that much)."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.store = MigrationStore(db, clock, lease=lease)
        self.vault, self.accounts, self.known = vault, accounts, known
        self.concurrency, self.window_s = concurrency, window_s

    async def close(self) -> None:
        close = getattr(self.accounts, "aclose", None)
        if close is not None:
            await close()

    async def _check_target(self, merchant_id: str, to_account: str) -> None:
        """Refuse an unknown or disabled account (another merchant's own is unknown),
        and one the vault cannot reach."""
        if (
            self.known is not None
            and not (await self.known.get_for(merchant_id, to_account)).active
        ):
            raise Conflict(f"PG account {to_account} is disabled")
        await self.accounts.vault_route(stored_id(account_key(to_account)))

    async def preview(self, merchant_id: str, to_account: str) -> int:
        await self._check_target(merchant_id, to_account)
        return await self.store.preview(merchant_id, account_key(to_account))

    async def start(self, merchant_id: str, to_account: str, *, actor: str) -> BatchView:
        """The merchant's running batch to ``to_account`` (topped up), or a new one."""
        await self._check_target(merchant_id, to_account)
        batch_id, _ = await self.store.plan(merchant_id, to_account, actor=actor)
        return await self.store.batch(batch_id)

    async def migrate(
        self, merchant_id: str, to_account: str, *, actor: str, progress: ProgressFn | None = None
    ) -> tuple[BatchView, Progress]:
        batch = await self.start(merchant_id, to_account, actor=actor)
        done = await self.run(batch.id, actor=actor, progress=progress)
        return await self.store.batch(batch.id), done

    async def run(
        self, batch_id: str, *, actor: str = ACTOR, progress: ProgressFn | None = None
    ) -> Progress:
        """One pass over the batch: every card no other runner holds, once. Returns
        the counts after it; the batch is finished when no card is left open."""
        return await _Run(self, batch_id, actor, progress).go()


class _Run:
    """One runner's pass: claims cards a few at a time, at most ``concurrency`` at
    once, each card at most once (a card left open waits for the next pass)."""

    def __init__(self, m: CardMigrator, batch_id: str, actor: str, fn: ProgressFn | None) -> None:
        self.m, self.batch_id, self.actor, self.fn = m, batch_id, actor, fn
        self.store = m.store
        self.counts: Counter[str] = Counter()
        self.seen: set[str] = set()
        self.slots = asyncio.Semaphore(m.concurrency)
        store = m.store  # each step: the cards reaching it together share a transaction
        w = m.window_s
        self.issued = Coalescer(store.issued_many, window_s=w)
        self.ended = Coalescer(partial(store.ended_many, actor=actor), window_s=w)
        self.switched = Coalescer(partial(store.switch_many, actor=actor), window_s=w)
        self.done = Coalescer(store.done_many, window_s=w)

    def _report(self) -> None:
        if self.fn is not None:
            self.fn(Progress.of(self.counts))

    def _moved(self, c: Claimed, to: M) -> None:
        self.counts[c.status.value] -= 1
        self.counts[to.value] += 1

    async def go(self) -> Progress:
        self.counts = await self.store.counts(self.batch_id)
        self._report()
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                claimed: list[Claimed] = []
                if len(tasks) < self.m.concurrency:
                    fresh = await self.store.claim(self.batch_id, limit=self.m.concurrency * 2)
                    claimed = [c for c in fresh if c.id not in self.seen]
                    if not claimed and not tasks:
                        break
                for c in claimed:
                    self.seen.add(c.id)
                    tasks.add(asyncio.create_task(self._card(c)))
                if tasks and (not claimed or len(tasks) >= self.m.concurrency):
                    finished, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    failed = [e for t in finished if not t.cancelled() and (e := t.exception())]
                    if failed:  # every finished task's error is retrieved; the first is raised
                        raise failed[0]
        finally:  # stopped (or failed): nothing of this run goes on behind the next one
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in (self.issued, self.ended, self.switched, self.done):
                await writer.settle()
        await self.store.finish_if_done(self.batch_id, actor=self.actor)
        self.counts = await self.store.counts(self.batch_id)
        self._report()
        return Progress.of(self.counts)

    async def _card(self, c: Claimed) -> None:
        async with self.slots:
            try:
                await self._steps(c)
            except Exception as exc:  # a bug or the database: the card stays as it is
                log.warning("card migration %s: %s at %s", c.id, type(exc).__name__, c.status)
        self._report()

    async def _steps(self, c: Claimed) -> None:
        if c.status is M.pending:
            c = await self._issue(c)
        if c.status is M.issued:
            c = await self._switch(c)
        if c.status is M.switched:
            await self._delete_old(c)

    def _at(self, c: Claimed, to: M, **changes: Any) -> Claimed:
        self._moved(c, to)
        return Claimed(**{**c.__dict__, "status": to, **changes})

    async def _issue(self, c: Claimed) -> Claimed:
        try:
            route = await self.m.accounts.vault_route(stored_id(c.to_account))
            key = await issue_without_password(self.m.vault, c, route, who=self.actor)
        except TokenNotFound:
            if await self.ended((c, M.failed, "vault_token_missing")):
                return self._at(c, M.failed)
            return c
        except Exception as exc:  # PG down or no answer: stays pending, next pass
            log.info("card migration %s: issue not done (%s)", c.id, type(exc).__name__)
            return c
        if getattr(key, "pg_down", False):
            return c
        if key.ok:
            if await self.issued((c, key.customer_uid)):
                return self._at(c, M.issued, new_ref=key.customer_uid)
            return c
        code = key.decline_code or DeclineReason.rejected.value
        to = M.needs_payer if code == DeclineReason.password_required.value else M.failed
        if await self.ended((c, to, code)):
            return self._at(c, to)
        return c

    async def _switch(self, c: Claimed) -> Claimed:
        outcome = await self.switched(c)
        if outcome == "switched":
            return self._at(c, M.switched)
        if outcome in ("card_deleted", "card_changed"):
            self._moved(c, M.failed)
            await self._forget_new_key(c)
            return Claimed(**{**c.__dict__, "status": M.failed})
        return c  # busy (an open charge) or moved by another runner

    async def _forget_new_key(self, c: Claimed) -> None:
        """The card went away meanwhile: its new key is not wanted (best effort; the
        billing-key requests' sweep deletes it otherwise)."""
        if c.new_ref is None:
            return
        try:
            gateway = await self.m.accounts.of(stored_id(c.to_account))
            await gateway.delete_billing_key(c.new_ref, reason="card migration abandoned")
        except GatewayError as exc:
            log.info("card migration %s: new key not deleted (%s)", c.id, exc.error_id)

    async def _delete_old(self, c: Claimed) -> None:
        if c.old_ref is not None:
            try:
                gateway = await self.m.accounts.of(c.from_account)
                await gateway.delete_billing_key(c.old_ref, reason="card migrated")
            except GatewayError as exc:  # stays switched: the next pass deletes it
                log.info("card migration %s: old key not deleted (%s)", c.id, exc.error_id)
                return
        if await self.done(c):
            self._moved(c, M.done)
