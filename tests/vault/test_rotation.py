"""KEK rotation online: every data key re-wrapped while readers and writers keep going,
nothing lost, the old KEK destroyed — with the key-file and the SoftHSM2 KEK, on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import update

from ivr.clock import FakeClock
from tests.vault.vault_helpers import NOW, KekSetup, build_vault, random_card
from vault.card import CardData
from vault.errors import RotationIncomplete
from vault.kek import KekProvider
from vault.schema import vault_records
from vault.service import LocalVault

pytestmark = pytest.mark.anyio


async def _reveal(vault: LocalVault, token: str) -> CardData:
    async with vault.reveal(token, "mer_1", who="reader", why="rotation test") as card:
        return CardData(card.pan, card.expiry, card.birth)


async def test_rotation_under_concurrent_reads_and_writes_loses_nothing(
    vault_db_url: str, kek: KekSetup
) -> None:
    vault = await build_vault(
        vault_db_url,
        kek.provider,
        FakeClock(NOW),
        audit_key_file=kek.audit_key_file,
        rotation_batch=16,
    )
    try:
        cards: dict[str, CardData] = {}
        for i in range(200):
            card = random_card(i)
            cards[(await vault.tokenize("mer_1", card, who="seed")).token] = card
        old_kek = kek.provider.current_id
        rotating = True
        reads_during = 0
        errors: list[BaseException] = []

        async def reader(seed: int) -> None:
            nonlocal reads_during
            rng = random.Random(seed)
            tokens = list(cards)
            while rotating:
                token = rng.choice(tokens)
                try:
                    assert await _reveal(vault, token) == cards[token]
                except BaseException as exc:  # collected and reported below
                    errors.append(exc)
                    raise
                reads_during += 1

        async def writer() -> None:
            n = 1000
            while rotating:
                card = random_card(n)
                cards[(await vault.tokenize("mer_1", card, who="writer")).token] = card
                n += 1
                await asyncio.sleep(0)

        async with asyncio.TaskGroup() as tg:
            for seed in range(4):
                tg.create_task(reader(seed))
            tg.create_task(writer())
            await asyncio.sleep(0.05)
            report = await vault.rotate_kek()
            await asyncio.sleep(0.05)  # readers keep going after the old KEK is gone
            rotating = False

        assert not errors
        assert reads_during > 20
        assert report.retired == (old_kek,)
        assert report.rewrapped >= 200
        assert old_kek not in kek.provider.kek_ids()  # destroyed, not just unused
        status = await vault.status()
        assert status.records == len(cards) > 200
        states = {k.kek_id: (k.state, k.records) for k in status.keks}
        assert states[old_kek] == ("retired", 0)
        assert states[report.new_kek] == ("current", len(cards))
        for token, card in cards.items():  # every record, old and new, still opens
            assert await _reveal(vault, token) == card
    finally:
        await vault.close()


async def test_rotate_twice_and_status(vault: LocalVault, kek: KekSetup) -> None:
    tokens = [(await vault.tokenize("mer_1", random_card(i), who="t")).token for i in range(5)]
    first = await vault.rotate_kek()
    second = await vault.rotate_kek()
    assert second.retired == (first.new_kek,)
    assert kek.provider.kek_ids() == [second.new_kek]
    assert [k.state for k in (await vault.status()).keks] == ["retired", "retired", "current"]
    for i, token in enumerate(tokens):
        assert await _reveal(vault, token) == random_card(i)


async def test_rotation_with_no_records(vault: LocalVault) -> None:
    report = await vault.rotate_kek()
    assert report.rewrapped == 0
    assert (await vault.status()).current_kek == report.new_kek


async def test_interrupted_rotation_resumes_without_a_third_kek(
    vault: LocalVault, kek: KekSetup
) -> None:
    tokens = [(await vault.tokenize("mer_1", random_card(i), who="t")).token for i in range(10)]
    old = kek.provider.current_id
    # a rotation that died right after making and registering its KEK
    new = kek.provider.generate_new()
    await vault.store.sync_keks(kek.kind, new, NOW)
    report = await vault.rotate_kek()
    assert report.new_kek == new
    assert report.retired == (old,)
    assert kek.provider.kek_ids() == [new]
    for i, token in enumerate(tokens):
        assert await _reveal(vault, token) == random_card(i)


async def test_a_record_that_cannot_be_rewrapped_keeps_its_kek(
    vault: LocalVault, kek: KekSetup
) -> None:
    good = [(await vault.tokenize("mer_1", random_card(i), who="t")).token for i in range(5)]
    bad = (await vault.tokenize("mer_1", random_card(99), who="t")).token
    old = kek.provider.current_id
    await vault.store.write(
        lambda c: c.execute(
            update(vault_records).where(vault_records.c.token == bad).values(wrapped_key=b"\0" * 60)
        )
    )
    with pytest.raises(RotationIncomplete) as err:
        await vault.rotate_kek()
    assert err.value.failed == (bad,)
    assert old in kek.provider.kek_ids()  # not destroyed: a record still needs it
    counts = {k.kek_id: (k.state, k.records) for k in (await vault.status()).keks}
    assert counts[old] == ("retiring", 1)
    for i, token in enumerate(good):
        assert await _reveal(vault, token) == random_card(i)


async def test_a_reader_holding_a_row_from_before_the_swap(vault: LocalVault) -> None:
    token = (await vault.tokenize("mer_1", random_card(1), who="t")).token
    stale = await vault.store.get(token, "mer_1")
    assert stale is not None
    await vault.rotate_kek()  # re-wraps the row and destroys the KEK `stale` points at
    plaintext = await vault._open(stale, token, "mer_1")  # reads the row again
    assert bytes(plaintext).endswith(b"|0130|851231")


async def test_writer_with_a_stale_kek_picks_up_the_new_one(
    vault: LocalVault, kek: KekSetup, request: pytest.FixtureRequest
) -> None:
    """Another process rotated: our provider still wraps with the old KEK, the registry
    refuses it, the vault refreshes and seals again."""
    old = kek.provider.current_id
    other = _second_handle(kek, request)
    try:
        new = other.generate_new()
        await vault.store.sync_keks(kek.kind, new, NOW)  # what the rotating process does
        if kek.kind == "file":
            assert kek.provider.current_id == old  # still cached here
        meta = await vault.tokenize("mer_1", random_card(3), who="t")
        stored = await vault.store.get(meta.token, "mer_1")
        assert stored is not None
        assert stored.sealed.kek_id == new
    finally:
        other.close()


def _second_handle(kek: KekSetup, request: pytest.FixtureRequest) -> KekProvider:
    if kek.kind == "file":
        from vault.kek.file import FileKekProvider

        assert kek.key_file is not None
        return FileKekProvider(kek.key_file)
    hsm = request.getfixturevalue("softhsm")
    assert kek.token is not None
    return hsm.provider(kek.token)


async def test_concurrent_tokenize_during_rotation_is_never_written_under_a_retiring_kek(
    vault: LocalVault, kek: KekSetup
) -> None:
    results = await asyncio.gather(
        vault.rotate_kek(),
        *(vault.tokenize("mer_1", random_card(i), who="t") for i in range(50)),
    )
    report = results[0]
    status = await vault.status()
    assert {k.kek_id: k.records for k in status.keks if k.records} == {report.new_kek: 50}
