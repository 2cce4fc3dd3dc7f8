"""Vault throughput: ``python -m vault.bench [--records N] [--concurrency C] [--pg URL]``.

For the key-file KEK and a throw-away SoftHSM2 token (private ``SOFTHSM2_CONF`` in a
temporary directory), on a fresh SQLite vault database (or PostgreSQL with ``--pg``,
whose database must be empty and is left with the bench's rows): envelope seal/open per
record, tokenize/s and audited detokenize/s with ``C`` concurrent callers (group commit
makes concurrency matter), and KEK rotation rate. Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path

from ivr.clock import SystemClock
from vault.card import CardData, encode, random_into, wipe
from vault.crypto import Envelope
from vault.kek import KekProvider
from vault.kek.file import FileKekProvider
from vault.service import LocalVault
from vault.store import VaultStore
from vault.tokens import Fingerprinter

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def _card(i: int) -> CardData:
    body = f"5555{i:011d}"
    total = 0
    for n, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if n % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return CardData(body + str((10 - total % 10) % 10), "1230", "900101")


def _softhsm(root: Path) -> KekProvider:
    from vault.kek.pkcs11 import Pkcs11KekProvider

    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", "1234",  # noqa: S607
         "--so-pin", "5678"],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    return Pkcs11KekProvider(SOFTHSM_MODULE, "bench", "1234", softhsm_conf=str(conf))


def _micro(kek: KekProvider, n: int) -> tuple[float, float]:
    env = Envelope(kek)
    plain = encode(_card(1))
    token = "tok_" + "a" * 24
    t0 = time.perf_counter()
    sealed = [env.seal(plain, token=token, merchant_id="m") for _ in range(n)]
    t1 = time.perf_counter()
    for s in sealed:
        wipe(env.open(s, token=token, merchant_id="m"))
    t2 = time.perf_counter()
    return (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6


async def _run(kind: str, kek: KekProvider, url: str, records: int, concurrency: int) -> None:
    kek.generate_new()
    seal_us, open_us = _micro(kek, 2000)
    print(f"{kind:7} envelope seal {seal_us:7.1f} us/record, open {open_us:7.1f} us/record")
    vault = LocalVault(VaultStore(url), kek, Fingerprinter(random_into(32)), clock=SystemClock(),
                       rotation_batch=500)  # fmt: skip
    await vault.start()
    try:
        sem = asyncio.Semaphore(concurrency)

        async def tokenize(i: int) -> str:
            async with sem:
                return (await vault.tokenize("mer_bench", _card(i), who="bench")).token

        t0 = time.perf_counter()
        tokens = await asyncio.gather(*(tokenize(i) for i in range(records)))
        dt = time.perf_counter() - t0
        print(f"{kind:7} tokenize   {records / dt:8.0f} /s  ({records} records, C={concurrency})")

        async def detokenize(token: str) -> None:
            async with sem, vault.reveal(token, "mer_bench", who="bench", why="bench") as card:
                assert card.expiry == "1230"

        t0 = time.perf_counter()
        await asyncio.gather(*(detokenize(t) for t in tokens))
        dt = time.perf_counter() - t0
        print(f"{kind:7} detokenize {records / dt:8.0f} /s  (audited decrypts, C={concurrency})")

        report = await vault.rotate_kek()
        rate = report.rewrapped / report.seconds
        print(f"{kind:7} rotate-kek {rate:8.0f} records/s ({report.rewrapped} in "
              f"{report.seconds:.2f} s)")  # fmt: skip
    finally:
        await vault.close()


async def main(records: int, concurrency: int, pg: str | None, kinds: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="vault-bench-") as tmp:
        root = Path(tmp)
        for kind in kinds:
            url = pg or f"sqlite+aiosqlite:///{root / kind / 'vault.db'}"
            kek = FileKekProvider(root / kind / "kek.key") if kind == "file" else _softhsm(root)
            await _run(kind, kek, url, records, concurrency)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pg", help="PostgreSQL URL (postgresql+asyncpg://…) instead of SQLite")
    parser.add_argument("--kek", action="append", choices=["file", "pkcs11"])
    args = parser.parse_args()
    asyncio.run(main(args.records, args.concurrency, args.pg, args.kek or ["file", "pkcs11"]))
