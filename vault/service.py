"""The vault itself, in this process: :class:`LocalVault`.

Implements :class:`~vault.client.VaultClient` plus what only an operator or the vault
process does: :meth:`LocalVault.reveal` (an audited decrypt, never served over the
socket), :meth:`LocalVault.rotate_kek`, status, and the audit log's evidence — its
chain checked against checkpoints, checkpoints signed (:mod:`vault.audit_chain`).

:meth:`LocalVault.verify_birth` answers only "matched or not" for a keyed birth date
(or business number), compared in constant time. Because a yes/no answer about stored
card data is an oracle, the vault keeps its own ceiling: at most ``verify_limit``
checks of one card per ``verify_window`` that did not match (a check in flight counts
as not matched until it has), counted and reserved under the record's lock in the
transaction that audits the check — concurrent callers cannot go past it. The engine's
own, stricter per-card lock (docs/product.md §2 item 3) sits in front of it.

Every decrypt first appends an audit row (who, when, why, token) and only then
unwraps; a failed audit write means no decrypt. Plaintext buffers are wiped when the
``reveal`` block ends, whatever happens in it.

A forwarding call may name the PG account to use (a :class:`~vault.forwarding.Route`):
its host must be on ``gateway_hosts`` (HTTPS unless loopback) or the call is refused
before anything is read — audited as ``forward.host_refused`` with the account id and
the host, never the connection. A routed decrypt's audit ``why`` ends with the account
id (``[pg <account_id>]``).
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from typing import Final, TypeVar

from vault import audit_chain, bins, log
from vault.audit_chain import AuditReport
from vault.card import PAN_AT, CardData, decode, encode, wipe
from vault.clock import VaultClock
from vault.crypto import Envelope
from vault.errors import (
    ArspayError,
    GatewayFailed,
    GatewayHostRefused,
    GatewayNotConfigured,
    IntegrityFailure,
    InvalidRequest,
    KekError,
    KekNotFound,
    TokenNotFound,
    VaultConfigError,
    VerifyLimited,
)
from vault.evidence import Checkpoint, CheckpointDir, EvidenceKey, EvidenceKeyFile
from vault.forwarding import BillingKeyResult, CardGateway, ChargeResult, Order, Route
from vault.gateway_hosts import DEFAULT_GATEWAY_HOSTS, audit_host, check_route
from vault.kek import KekProvider
from vault.models import (
    AuditEntry,
    BirthCheck,
    CardMetadata,
    KekInfo,
    RotationReport,
    TokenRef,
    VaultStatus,
)
from vault.rotation import rotate
from vault.rows import AuditRow, StoredRecord
from vault.store import VaultStore
from vault.tokens import Fingerprinter, check_token, new_token
from vault.validation import (
    check_merchant_id,
    check_text,
    validate_birth_or_brn,
    validate_card,
    validate_password2,
)

T = TypeVar("T")

IN_PROCESS: Final = "in-process"
MIN_CHARGE_KRW: Final = 100
VERIFY_LIMIT: Final = 20  # unmatched birth checks of one card per window, at most
VERIFY_WINDOW: Final = timedelta(hours=24)
_REF_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


def _check_ref(field: str, value: str) -> None:
    if not _REF_RE.fullmatch(value):
        raise InvalidRequest(f"{field} must be 1-100 characters of [A-Za-z0-9_.:-]")


def _check_caller(who: str, why: str | None) -> None:
    check_text("who", who, 128)
    if why is not None:
        check_text("why", why, 200)


@dataclass(eq=False, repr=False)
class LocalVault:
    store: VaultStore
    kek: KekProvider
    fingerprinter: Fingerprinter
    _: KW_ONLY
    clock: VaultClock
    audit_key_file: EvidenceKeyFile
    gateway: CardGateway | None = None
    rotation_batch: int = 500
    verify_limit: int = VERIFY_LIMIT
    verify_window: timedelta = VERIFY_WINDOW
    gateway_hosts: tuple[str, ...] = DEFAULT_GATEWAY_HOSTS
    envelope: Envelope = field(init=False)
    audit_key: EvidenceKey | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.envelope = Envelope(self.kek)

    async def start(self) -> None:
        """Create the schema if needed, load (or make) the audit key and seal the audit
        log, and register the provider's current KEK."""
        await self.store.open()
        self.audit_key = await audit_chain.start(self.store, self.audit_key_file, self.clock.now())
        self.store.use_audit_key(self.audit_key)
        await self._sync_registry()

    async def started(self) -> LocalVault:
        """:meth:`start`, and :meth:`close` what it opened when starting fails."""
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def ping(self) -> None:
        """Raise unless the vault's database answers a read now (the engine's
        readiness check of an in-process vault)."""
        await self.store.ping()

    async def close(self) -> None:
        try:
            if self.gateway is not None:
                await self.gateway.aclose()  # the gateways it built for routes
        finally:
            await self.store.close()
            self.kek.close()
            self.fingerprinter.close()
            if self.audit_key is not None:
                self.audit_key.close()

    async def _sync_registry(self) -> None:
        await self.store.sync_keks(self.kek.kind, self.kek.current_id, self.clock.now())

    # ------------------------------------------------------------------ writing

    async def tokenize(
        self, merchant_id: str, card: CardData, *, who: str, peer: str = IN_PROCESS
    ) -> CardMetadata:
        check_merchant_id(merchant_id)
        _check_caller(who, None)
        now = self.clock.now()
        validate_card(card, now)
        info = bins.lookup(card.pan)
        token = new_token()
        plaintext = encode(card)
        try:
            # The fingerprint reads the PAN out of the plaintext buffer: no further copy.
            with memoryview(plaintext)[PAN_AT : PAN_AT + len(card.pan)] as pan:
                fingerprint = self.fingerprinter.fingerprint(merchant_id, pan)
            meta = CardMetadata(
                token=token,
                merchant_id=merchant_id,
                bin6=card.bin6,
                last4=card.last4,
                brand=info.brand,
                issuer=info.issuer,
                card_type=info.card_type,
                owner_type=card.owner_type,
                fingerprint=fingerprint,
                created_at=now,
            )
            audit = AuditRow(now, who, peer, "tokenize", "", token, merchant_id)
            for _attempt in range(3):
                sealed = self.envelope.seal(plaintext, token=token, merchant_id=merchant_id)
                if await self.store.insert(StoredRecord(meta, sealed), audit):
                    break
                # Another process rotated: pick up its KEK and seal again.
                self.kek.refresh()
                await self._sync_registry()
            else:
                raise KekError("the current KEK kept changing while storing a card")
        finally:
            wipe(plaintext)
        log.event("tokenize", token=meta.token, merchant_id=merchant_id, kek_id=sealed.kek_id)
        return meta

    async def delete(
        self, token: str, merchant_id: str, *, who: str, why: str, peer: str = IN_PROCESS
    ) -> None:
        check_token(token)
        check_merchant_id(merchant_id)
        _check_caller(who, why)
        audit = AuditRow(self.clock.now(), who, peer, "delete", why, token, merchant_id)
        if not await self.store.delete(token, merchant_id, audit):
            raise TokenNotFound("no such card token for this merchant")
        log.event("delete", token=token, merchant_id=merchant_id)

    # ------------------------------------------------------------------ reading

    async def metadata(self, token: str, merchant_id: str) -> CardMetadata:
        check_token(token)
        check_merchant_id(merchant_id)
        record = await self.store.get(token, merchant_id)
        if record is None:
            raise TokenNotFound("no such card token for this merchant")
        return record.meta

    @asynccontextmanager
    async def reveal(
        self,
        token: str,
        merchant_id: str,
        *,
        who: str,
        why: str,
        peer: str = IN_PROCESS,
        action: str = "reveal",
    ) -> AsyncIterator[CardData]:
        """Audited decrypt, for code inside the vault process only."""
        check_token(token)
        check_merchant_id(merchant_id)
        _check_caller(who, why)
        # Read and audit in one transaction, committed before anything is unwrapped.
        record = await self.store.get_audited(
            AuditRow(self.clock.now(), who, peer, action, why, token, merchant_id)
        )
        if record is None:
            raise TokenNotFound("no such card token for this merchant")
        plaintext = await self._open(record, token, merchant_id)
        try:
            card = decode(plaintext)
            log.event(action, token=token, merchant_id=merchant_id, peer=peer)
            yield card
        finally:
            wipe(plaintext)

    async def _open(self, record: StoredRecord, token: str, merchant_id: str) -> bytearray:
        for attempt in (1, 2):
            try:
                return self.envelope.open(record.sealed, token=token, merchant_id=merchant_id)
            except KekNotFound:
                # Re-wrapped and its old KEK retired since we read it: read it again.
                fresh = await self.store.get(token, merchant_id)
                if attempt == 2 or fresh is None or fresh.sealed == record.sealed:
                    log.event("decrypt", level=logging.WARNING, token=token,
                              error_id=KekNotFound.error_id)  # fmt: skip
                    raise
                record = fresh
            except IntegrityFailure as exc:
                log.event("decrypt", level=logging.WARNING, token=token, error_id=exc.error_id)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ knowledge factor

    async def verify_birth(
        self,
        token: str,
        merchant_id: str,
        *,
        birth: str,
        who: str,
        why: str,
        peer: str = IN_PROCESS,
    ) -> BirthCheck:
        """Does ``birth`` (YYMMDD, or a 10-digit business number) equal the stored one?

        Audited like a decrypt (who, when, why; the row is committed before the data
        key is unwrapped), then once more with the outcome (``verify_birth.ok`` /
        ``verify_birth.mismatch``). The digits are never logged, audited or echoed: a
        malformed value is refused naming the field only."""
        check_token(token)
        check_merchant_id(merchant_id)
        _check_caller(who, why)
        validate_birth_or_brn(birth)
        now = self.clock.now()
        found, allowed = await self.store.get_for_check(
            AuditRow(now, who, peer, "verify_birth", why, token, merchant_id),
            passed_action="verify_birth.ok",
            since=now - self.verify_window,
            limit=self.verify_limit,
        )
        if found is None:
            raise TokenNotFound("no such card token for this merchant")
        if not allowed:
            log.event("verify_birth", level=logging.WARNING, token=token,
                      peer=peer, error_id=VerifyLimited.error_id)  # fmt: skip
            raise VerifyLimited("too many birth date checks of this card; try again later")
        plaintext = await self._open(found, token, merchant_id)
        try:
            card = decode(plaintext)
            matched = hmac.compare_digest(card.birth, birth)
        finally:
            wipe(plaintext)
        outcome = "verify_birth.ok" if matched else "verify_birth.mismatch"
        await self.store.add_audit(
            AuditRow(self.clock.now(), who, peer, outcome, why, token, merchant_id)
        )
        log.event(outcome, token=token, merchant_id=merchant_id, peer=peer)
        return BirthCheck(matched=matched)

    # ------------------------------------------------------------------ forwarding

    def _gateway(self) -> CardGateway:
        if self.gateway is None:
            raise GatewayNotConfigured("no card gateway is configured in the vault")
        return self.gateway

    async def _allow_route(
        self, route: Route | None, action: str, token: str, merchant_id: str,
        who: str, why: str, peer: str,
    ) -> str:  # fmt: skip
        """Refuse (audited) a route to a host not allowed, before anything is decrypted;
        the ``why`` to audit the decrypt with (the account id appended)."""
        check_token(token)
        check_merchant_id(merchant_id)
        _check_caller(who, why)
        if route is None:
            return why
        try:
            check_route(route, self.gateway_hosts)
        except GatewayHostRefused as exc:
            host = audit_host(route.host)
            note = f"{action} to pg {route.account_id} at {route.scheme}://{host}: refused"
            await self.store.add_audit(AuditRow(self.clock.now(), who, peer,
                                                "forward.host_refused", note[:200], token,
                                                merchant_id))  # fmt: skip
            log.event("forward.host_refused", level=logging.WARNING, token=token,
                      merchant_id=merchant_id, peer=peer, error_id=exc.error_id)  # fmt: skip
            raise
        tag = f" [pg {route.account_id}]"
        return why[: 200 - len(tag)] + tag

    async def _forward(self, action: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except ArspayError as exc:
            log.event(action, level=logging.WARNING, error_id=exc.error_id)
            raise
        except Exception as exc:
            log.event(action, level=logging.WARNING, error_id=GatewayFailed.error_id)
            raise GatewayFailed(f"the card gateway failed ({type(exc).__name__})") from None

    async def issue_billing_key(
        self,
        token: str,
        merchant_id: str,
        *,
        password2: str,
        customer_uid: str,
        who: str,
        why: str,
        peer: str = IN_PROCESS,
        route: Route | None = None,
    ) -> BillingKeyResult:
        gateway = self._gateway()
        validate_password2(password2, optional=True)  # "": a stored card, re-issued
        _check_ref("customer_uid", customer_uid)
        action = "issue_billing_key"
        why = await self._allow_route(route, action, token, merchant_id, who, why, peer)
        async with self.reveal(token, merchant_id, who=who, why=why, peer=peer,
                               action=action) as card:  # fmt: skip
            call = gateway.issue_billing_key(card, password2, customer_uid, route=route)
            return await self._forward(action, call)

    async def keyed_charge(
        self,
        token: str,
        merchant_id: str,
        *,
        password2: str,
        order: Order,
        who: str,
        why: str,
        peer: str = IN_PROCESS,
        route: Route | None = None,
    ) -> ChargeResult:
        gateway = self._gateway()
        validate_password2(password2)
        _check_ref("order_id", order.order_id)
        check_text("order_name", order.order_name, 100)
        if order.amount < MIN_CHARGE_KRW:
            raise InvalidRequest(f"amount must be at least {MIN_CHARGE_KRW} KRW")
        if order.installment_months != 0 and not 2 <= order.installment_months <= 36:
            raise InvalidRequest("installment_months must be 0 (lump sum) or 2-36")
        action = "keyed_charge"
        why = await self._allow_route(route, action, token, merchant_id, who, why, peer)
        async with self.reveal(token, merchant_id, who=who, why=why, peer=peer,
                               action=action) as card:  # fmt: skip
            call = gateway.keyed_charge(card, password2, order, route=route)
            return await self._forward(action, call)

    # ------------------------------------------------------------------ operations

    async def audit(self, *, token: str | None = None, limit: int = 50) -> list[AuditEntry]:
        if token is not None:
            check_token(token)
        if not 1 <= limit <= 10_000:
            raise InvalidRequest("limit must be 1-10000")
        return await self.store.audit_entries(token=token, limit=limit)

    async def tokens(
        self, *, created_before: datetime, after: str = "", limit: int = 500
    ) -> list[TokenRef]:
        if created_before.tzinfo is None:
            raise InvalidRequest("created_before needs a time zone")
        if after:
            check_token(after)
        if not 1 <= limit <= 1_000:
            raise InvalidRequest("limit must be 1-1000")
        return await self.store.token_refs(created_before, after, limit)

    async def status(self) -> VaultStatus:
        counts = await self.store.count_by_kek()
        keks = tuple(
            KekInfo(r.kek_id, r.state, counts.get(r.kek_id, 0), r.created_at, r.retired_at)
            for r in await self.store.keks()
        )
        return VaultStatus(
            kek_provider=self.kek.kind,
            current_kek=self.kek.current_id,
            keks=keks,
            records=sum(counts.values()),
        )

    async def rotate_kek(self, *, progress: Callable[[int], None] | None = None) -> RotationReport:
        """New KEK, every data key re-wrapped online, old KEK(s) destroyed."""
        return await rotate(
            self.store, self.envelope, self.clock, batch=self.rotation_batch, progress=progress
        )

    # ------------------------------------------------------------------ audit evidence

    def _audit_key(self) -> EvidenceKey:
        if self.audit_key is None:
            raise VaultConfigError("the vault is not started")
        return self.audit_key

    async def audit_verify(self, checkpoints: Sequence[tuple[str, Checkpoint]] = ()) -> AuditReport:
        """The whole audit chain checked, and compared with each ``(label, checkpoint)``."""
        return await audit_chain.verify(self.store, self._audit_key(), checkpoints)

    async def audit_checkpoint(self, saved: CheckpointDir | None = None) -> Checkpoint:
        """A signed checkpoint of the audit chain's head, after verifying the chain (from
        the newest checkpoint in ``saved`` on, else whole); saved there too."""
        key = self._audit_key()
        cp, _ = await audit_chain.make_checkpoint(self.store, key, self.clock.now(), saved)
        if saved is not None:
            saved.save(cp)
        return cp

    def audit_public_key(self) -> dict[str, str]:
        return self._audit_key().public_key_document()

    async def run_audit_checkpoints(self, saved: CheckpointDir, interval_s: float) -> None:
        """The periodic checkpoints (``vault serve``, or the engine with a local vault)."""
        await audit_chain.run_checkpoints(
            self.store, self._audit_key(), self.clock.now, saved, interval_s
        )
