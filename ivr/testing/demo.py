"""The demo payer: places a real SIPp call to the engine and keys digits when the
engine is playing the right prompt (read from the call-session log in the engine's
database), as a payer who listens to each question.

    python -m ivr.testing.demo register 05050000001 01012345678
    python -m ivr.testing.demo pay 05050000002 01012345678

Settings come from the environment like every ``arspay`` command (the engine's
database). Digits are sent as SIP INFO, 400 ms apart (a brisk human) — or, through the
softphone account (``account``: its digest password, its port), as RFC 4733 events, as a
softphone sends them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from ivr.settings import load_settings
from ivr.store.db import Database
from ivr.store.tables import CallStep
from ivr.testing.sip_account import SipAccount
from ivr.testing.sipp import DEFAULT_TARGET, CallScript, SippCall, start_call

CARD = "4111111111111111"  # the usual Visa test card (sandbox: success)
BIRTH = "880101"  # its holder's birth date, keyed at registration and asked again to pay

CONVERSATIONS: dict[str, list[tuple[str, str]]] = {
    "register": [
        ("reg.consent", "1"),
        ("card.number", CARD),
        ("card.expiry", "1230"),
        ("card.birth", BIRTH + "#"),
        ("card.password", "12"),
        ("card.confirm", "1"),
    ],
    "pay": [
        ("pay.card_choice", "1"),
        ("pay.verify_birth", BIRTH),  # the knowledge factor: 6 digits, taken after a pause
        ("pay.installment", "2"),
        ("pay.installment_months", "3#"),
        ("pay.confirm.installment", "1"),
    ],
}


async def wait_for_prompt(db: Database, prompt_id: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with db.sessions() as s:
            row = await s.scalar(
                select(CallStep.id).where(
                    CallStep.prompt_id == prompt_id, CallStep.outcome.is_(None)
                )
            )
        if row is not None:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the engine did not play {prompt_id} within {timeout_s:.0f} s")


async def converse(
    kind: str,
    did: str,
    mobile: str,
    *,
    account: SipAccount | None = None,
    target: tuple[str, int] = DEFAULT_TARGET,
) -> int:
    steps = CONVERSATIONS[kind]
    script = CallScript()
    for i, (_prompt, digits) in enumerate(steps):
        script = script.wait_for(f"s{i}", timeout_ms=90_000)
        if account:
            script = script.dtmf(digits, "rfc4733", tone_ms=100)
        else:
            script = script.dtmf(digits, "info", gap_ms=400)
    script = script.expect_hangup(timeout_ms=90_000)
    if account:  # the endpoint is the account's; its caller ID is the endpoint's
        call = SippCall(did=did, script=script, account=account)
    else:
        call = SippCall(
            did=did, caller_id=mobile, script=script, headers={"X-Arspay-Endpoint": "sipp-info"}
        )
    db = Database(load_settings().database_url)
    try:
        with tempfile.TemporaryDirectory(prefix="arspay-demo-") as workdir:
            async with start_call(
                call, workdir=Path(workdir), timeout_s=240, target=target
            ) as handle:
                for i, (prompt_id, digits) in enumerate(steps):
                    await wait_for_prompt(db, prompt_id, 60)
                    print(f"  payer: hears {prompt_id}, presses {len(digits)} key(s)")
                    await handle.release(f"s{i}")
                result = await handle.wait()
    finally:
        await db.close()
    if not result.ok:
        print(f"call failed: {result.errors}", file=sys.stderr)
        return 1
    print(f"  call ended normally ({kind})")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=sorted(CONVERSATIONS))
    parser.add_argument("did")
    parser.add_argument("mobile")
    args = parser.parse_args()
    sys.exit(asyncio.run(converse(args.kind, args.did, args.mobile)))


if __name__ == "__main__":
    main()
