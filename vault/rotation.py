"""KEK rotation, online.

1. Make a new KEK in the provider and register it as current; the registry marks every
   other KEK ``retiring``. From then on no record can be written under a retiring KEK
   (the insert checks the registry in its own transaction).
2. Walk the records still under a retiring KEK in token order, ``batch`` at a time:
   unwrap each data key and wrap it under the new KEK, then write the batch in one
   transaction where each row is a compare-and-swap on ``kek_id`` — a row deleted or
   re-wrapped meanwhile is left alone. Ciphertexts are not touched, so readers keep
   working throughout: a reader holding a row from before its swap still unwraps it
   with the old KEK, which exists until step 3 (and a reader that loses that race reads
   the row again, :meth:`vault.service.LocalVault._open`).
3. When no record uses a retiring KEK, mark it ``retired`` and destroy it in the
   provider.

Interrupted, it resumes: a ``retiring`` KEK in the registry means "finish this
rotation" rather than "start another". Records whose data key cannot be unwrapped
(tampered) are reported and keep their KEK alive; run one rotation at a time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from vault import log
from vault.clock import VaultClock
from vault.crypto import Envelope
from vault.errors import IntegrityFailure, KekNotFound, RotationIncomplete
from vault.models import RotationReport
from vault.store import VaultStore

MAX_PASSES = 5


async def rotate(
    store: VaultStore,
    envelope: Envelope,
    clock: VaultClock,
    *,
    batch: int = 500,
    progress: Callable[[int], None] | None = None,
) -> RotationReport:
    started = time.perf_counter()
    kek = envelope.kek
    kek.refresh()
    retiring = [r.kek_id for r in await store.keks() if r.state == "retiring"]
    if not retiring:
        kek.generate_new()
    await store.sync_keks(kek.kind, kek.current_id, clock.now())
    registry = await store.keks()
    retiring = [r.kek_id for r in registry if r.state == "retiring"]
    new = kek.current_id
    log.event("rotation.start", kek_id=new, count=len(retiring))

    rewrapped = 0
    failed: dict[str, str] = {}
    for _pass in range(MAX_PASSES):
        after = ""
        while rows := await store.rewrap_candidates(retiring, after, batch):
            updates = []
            for token, old, wrapped in rows:
                if token in failed:
                    continue
                try:
                    new_id, new_wrapped = envelope.rewrap(old, wrapped)
                except IntegrityFailure as exc:
                    failed[token] = exc.error_id
                    log.event("rotation.rewrap", token=token, kek_id=old, error_id=exc.error_id)
                    continue
                updates.append((token, old, new_id, new_wrapped))
            await store.compare_and_swap_keys(updates)
            rewrapped += len(updates)
            after = rows[-1][0]
            if progress is not None:
                progress(rewrapped)
        if failed:
            raise RotationIncomplete(
                f"{len(failed)} record(s) could not be re-wrapped; their KEK stays",
                tuple(sorted(failed)),
            )
        pending = [k for k in retiring if not await store.retire_if_unused(k, clock.now())]
        if not pending:
            break
        retiring = pending
    else:
        raise RotationIncomplete("records kept appearing under a retiring KEK")

    retired_ids = {r.kek_id for r in await store.keks() if r.state == "retired"}
    destroyed = []
    for kek_id in kek.kek_ids():
        if kek_id in retired_ids:
            with contextlib.suppress(KekNotFound):  # destroyed by an interrupted run
                kek.retire(kek_id)
            destroyed.append(kek_id)
            log.event("rotation.retire", kek_id=kek_id)
    seconds = time.perf_counter() - started
    log.event("rotation.done", kek_id=new, count=rewrapped, seconds=seconds)
    return RotationReport(new, tuple(destroyed), rewrapped, seconds)
