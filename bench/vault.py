"""Card vault throughput: tokenize and audited detokenize per second, per KEK provider.

    .venv/bin/python bench/vault.py [--records 20000] [--concurrency 64]
                                    [--kek file|pkcs11 ...] [--pg URL]

What is measured, for the key-file KEK and a throw-away SoftHSM2 token (a private
``SOFTHSM2_CONF`` in a temporary directory), on a fresh vault database — a SQLite file
in WAL mode with ``synchronous=FULL`` (the default store), or a scratch PostgreSQL
database with ``--pg`` (created and dropped):

* ``tokenize``: ``C`` concurrent callers each calling :meth:`LocalVault.tokenize` with
  one card at a time (no batch API; the engine calls it once per phone call) — validate,
  fingerprint, seal under a fresh data key, store the record and its audit row. The
  store's group commit lets concurrent callers share a transaction.
* ``detokenize``: the audited decrypt the engine triggers, through
  :meth:`LocalVault.issue_billing_key` to a gateway that answers at once (no network):
  read the record and commit its audit row, unwrap the data key, decrypt, hand the card
  to the gateway, wipe.
* ``seal`` / ``open``: one envelope encryption / decryption, in microseconds, and
  ``rotate-kek``: records re-wrapped per second by an online rotation.

Prints one line per KEK provider and the tokenize rate as a multiple of the 5,000/s goal
(which is set for the key-file KEK on a 2-core machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

# Run as ``python bench/vault.py``, this file's directory comes first on sys.path and
# would shadow the ``vault`` package with this very script: take it off.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]

import asyncpg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from vault.card import CardData, encode, random_into, wipe  # noqa: E402
from vault.clock import WallClock  # noqa: E402
from vault.crypto import Envelope  # noqa: E402
from vault.evidence import EvidenceKeyFile  # noqa: E402
from vault.kek import KekProvider  # noqa: E402
from vault.kek.file import FileKekProvider  # noqa: E402
from vault.service import LocalVault  # noqa: E402
from vault.store import VaultStore  # noqa: E402
from vault.testing import RecordingGateway  # noqa: E402
from vault.tokens import Fingerprinter  # noqa: E402

GOAL = 5_000  # tokenize/s with the key-file KEK (issue #4)
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
MERCHANT = "mer_bench"


def card(i: int) -> CardData:
    """A distinct valid card per ``i`` (Luhn-correct 16-digit Mastercard range)."""
    body = f"5555{i:011d}"
    total = 0
    for n, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if n % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return CardData(body + str((10 - total % 10) % 10), "1230", "900101")


def softhsm_provider(root: Path) -> KekProvider:
    from vault.kek.pkcs11 import Pkcs11KekProvider

    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", "1234",
         "--so-pin", "5678"],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    return Pkcs11KekProvider(SOFTHSM_MODULE, "bench", "1234", softhsm_conf=str(conf))


def envelope_us(kek: KekProvider, n: int = 2000) -> tuple[float, float]:
    env = Envelope(kek)
    plain = encode(card(1))
    token = "tok_" + "a" * 24
    t0 = time.perf_counter()
    sealed = [env.seal(plain, token=token, merchant_id=MERCHANT) for _ in range(n)]
    t1 = time.perf_counter()
    for s in sealed:
        wipe(env.open(s, token=token, merchant_id=MERCHANT))
    t2 = time.perf_counter()
    wipe(plain)
    return (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6


async def rate(n: int, concurrency: int, op: Callable[[int], Awaitable[None]]) -> float:
    """``n`` calls of ``op(i)`` by ``concurrency`` workers, one call at a time each."""
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            await op(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)


async def run(
    kind: str, kek: KekProvider, url: str, records: int, concurrency: int, audit_key: Path
) -> str:
    kek.generate_new()
    seal_us, open_us = envelope_us(kek)
    gateway = RecordingGateway()  # answers at once: detokenize without a PG
    vault = LocalVault(VaultStore(url, pool_size=10), kek, Fingerprinter(random_into(32)),
                       clock=WallClock(), gateway=gateway, rotation_batch=500,
                       audit_key_file=EvidenceKeyFile(audit_key, ledger="vault-audit"))  # fmt: skip
    try:
        await vault.start()
        cards = [card(i) for i in range(records)]
        tokens: list[str] = [""] * records

        async def tokenize(i: int) -> None:
            tokens[i] = (await vault.tokenize(MERCHANT, cards[i], who="bench")).token

        async def detokenize(i: int) -> None:
            result = await vault.issue_billing_key(
                tokens[i], MERCHANT, password2="12", customer_uid=f"cu_{i}", who="bench",
                why="bench detokenize",
            )  # fmt: skip
            assert result.ok

        await rate(min(records, 500), concurrency, tokenize)  # warm-up (not counted)
        tok = await rate(records, concurrency, tokenize)
        detok = await rate(records, concurrency, detokenize)
        assert len(gateway.received) == records
        report = await vault.rotate_kek()
        rot = report.rewrapped / report.seconds
    finally:
        await vault.close()
    db = "postgresql" if url.startswith("postgresql") else "sqlite"
    return (f"{kind:<7}{db:<12}{concurrency:>4}{records:>8}{tok:>12,.0f}{tok / GOAL:>8.2f}x"
            f"{detok:>14,.0f}{seal_us:>9.1f}{open_us:>8.1f}{rot:>12,.0f}")  # fmt: skip


@asynccontextmanager
async def scratch_database(pg: str | None, root: Path, kind: str) -> AsyncIterator[str]:
    """A SQLite file, or a PostgreSQL database created for this run and dropped after."""
    if not pg:
        yield f"sqlite+aiosqlite:///{root / kind / 'vault.db'}"
        return
    base = make_url(pg)
    admin_dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"arspay_vault_bench_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def main(records: int, concurrency: int, pg: str | None, kinds: list[str]) -> None:
    print(f"tokenize: {concurrency} concurrent callers of LocalVault.tokenize, one card per "
          "call; detokenize: LocalVault.issue_billing_key (audited decrypt) to a counting "
          "gateway")  # fmt: skip
    print(f"{'kek':<7}{'database':<12}{'C':>4}{'records':>8}{'tokenize/s':>12}{'/goal':>9}"
          f"{'detokenize/s':>14}{'seal µs':>9}{'open µs':>8}{'rotate/s':>12}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vault-bench-") as tmp:
        root = Path(tmp)
        for kind in kinds:
            (root / kind).mkdir()
            kek: KekProvider
            if kind == "file":
                kek = FileKekProvider(root / kind / "kek.key")
            else:
                kek = softhsm_provider(root / kind)
            async with scratch_database(pg, root, kind) as url:
                audit_key = root / kind / "audit.key"
                line = await run(kind, kek, url, records, concurrency, audit_key)  # closes the KEK
            print(line, flush=True)
    print(f"goal: {GOAL:,} tokenize/s with the key-file KEK (/goal = rate / {GOAL:,})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent callers")
    parser.add_argument("--pg", default="",
                        help="PostgreSQL URL (postgresql+asyncpg://…) instead of SQLite: a "
                             "scratch database is created there and dropped")  # fmt: skip
    parser.add_argument("--kek", action="append", choices=["file", "pkcs11"],
                        help="KEK provider (repeatable; default both)")  # fmt: skip
    args = parser.parse_args()
    if args.records < 1 or args.concurrency < 1:
        parser.error("--records and --concurrency must be at least 1")
    asyncio.run(
        main(args.records, args.concurrency, args.pg or None, args.kek or ["file", "pkcs11"])
    )
