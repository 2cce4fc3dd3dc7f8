"""Soak: N registration calls with random hang-ups at every step, then the leftovers
(issue #10).

    .venv/bin/python bench/soak.py [--calls 1000] [--rate 3.5] [--seed 10]
        [--out bench/results] [--keep]

The stack is ``bench/ivr_load.py``'s, reused from there: the bench's own Asterisk (SIP
5290, ARI 8188), the engine (``arspay engine run``, fresh SQLite database, local vault),
the sandbox PG (30 ms per API call), one registration request (with its DID lease) per
call, and one SIPp process whose CSV gives each call its DID, mobile, card number and
**where it hangs up**. Calls start ``--rate`` per second (``-l`` is all of them), so
about rate x mean call length run at once (~100 by default).

Each call follows the registration dialogue of ``ivr_load`` (consent, card number,
expiry, birth date, password, confirm) and, chosen per call from ``--seed``:

* ``complete`` (15 %): the whole call, the engine hangs up at the end;
* ``prompt`` (35 %): hangs up during one of the six prompts, a random time into it;
* ``digits`` (30 %): hangs up mid-input, after k digits of a random input (k >= 1, not
  the input's last digit), a random 0-400 ms later;
* ``after_confirm`` (20 %): hangs up after the confirm key, a random time into the wait
  prompt / the result prompt; half of them within 300 ms of the key (while the engine
  tokenizes and gets the billing key).

The hang-up point is two CSV fields (a checkpoint number and a pause in ms): at each
checkpoint the scenario tests the first and, if it matches, pauses the second, sends
BYE and ends. Afterwards (the Asterisk channels gone, the engine's session log drained)
it checks, in the engine's database and the vault's:

* no orphan call sessions: every ``call_sessions`` row has ``ended_at``;
* no request left ``in_call``;
* leases: no active lease whose request has ended; none active past ``expires_at``
  after the engine's own ``DidPool.expire_due`` (what its sweeper runs); and, after the
  engine has stopped, with a clock moved past every lease's end (``requests.expire_due``
  then ``dids.expire_due``, the sweeper's order), none active at all;
* no partial card: every active ``cards`` row has a ``billing_key_ref``; vault records
  against cards (a record no card points to is reported as an orphan record);
* engine memory: ``VmRSS`` from ``/proc/<pid>/status`` every 2 s; first, last, max and
  the growth over the second half of the run (a least-squares line through those
  samples, its rise over that half / its start); "flat" = under 10 %.

Writes ``<out>/soak.json``; the printout goes to stdout (``scripts/bench soak``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ivr_load as il

from ivr.testing.asterisk import Asterisk  # ivr_load put the root on sys.path

ROOT = il.ROOT
HANG_FIELD = il.PAN_FIELD + 16  # CSV: 19 the checkpoint to hang up at, 20 the pause (ms)
MIX: tuple[tuple[str, float], ...] = (
    ("complete", 0.15),
    ("prompt", 0.35),
    ("digits", 0.30),
    ("after_confirm", 0.20),
)
DIGIT_HANG_MS = 400  # mid-input: hang up up to this long after the k-th digit
EARLY_MS = 300  # after_confirm: half hang up within this long of the confirm key
FLAT_PCT = 10.0


@dataclass(frozen=True)
class Checkpoint:
    number: int
    kind: str  # prompt | digits | after_confirm
    where: str  # e.g. "card.number", "input 2 after 7 digits"
    max_pause_ms: int


def checkpoints(pauses_ms: list[int], seconds: dict[str, float]) -> list[Checkpoint]:
    """Every place a call can hang up, in the scenario's order."""
    out: list[Checkpoint] = []
    for i, ((prompts, _), n) in enumerate(zip(il.DIALOGUE, il.DIGITS_PER_INPUT, strict=True)):
        out.append(Checkpoint(len(out), "prompt", "+".join(prompts), pauses_ms[i]))
        for k in range(1, n):
            out.append(Checkpoint(len(out), "digits", f"{prompts[-1]} after {k}", DIGIT_HANG_MS))
    tail = sum(seconds[p] for p in il.AFTER)
    out.append(Checkpoint(len(out), "after_confirm", "wait+done", int(tail * 1000) - 300))
    return out


def plan(n: int, points: list[Checkpoint], seed: int) -> list[tuple[str, int, int]]:
    """Per call: (kind, checkpoint number or -1, pause ms)."""
    rng = random.Random(seed)
    kinds = [kind for kind, _ in MIX]
    weights = [weight for _, weight in MIX]
    out = []
    for _ in range(n):
        kind = rng.choices(kinds, weights)[0]
        if kind == "complete":
            out.append((kind, -1, 0))
            continue
        point = rng.choice([p for p in points if p.kind == kind])
        limit = point.max_pause_ms
        if kind == "after_confirm" and rng.random() < 0.5:
            limit = EARLY_MS  # half of them while the engine tokenizes / asks the PG
        out.append((kind, point.number, rng.randrange(0, max(1, limit))))
    return out


def soak_scenario(pauses_ms: list[int], gap_ms: int, end_timeout_ms: int) -> str:
    """``ivr_load``'s call (its INVITE/ACK opening reused as is) with a hang-up test at
    every checkpoint."""
    base = il.scenario_xml(pauses_ms, gap_ms, end_timeout_ms)
    head, opening = base.split("\n", 2)[:2], base.split("\n", 2)[2]
    opening = opening[: opening.index("  <pause ")].rstrip("\n")
    out = [
        opening,
        "  <nop><action>",
        f'    <assignstr assign_to="hs" value="[field{HANG_FIELD}]"/>',
        '    <todouble assign_to="hang" variable="hs"/>',
        f'    <assignstr assign_to="ps" value="[field{HANG_FIELD + 1}]"/>',
        '    <todouble assign_to="wait" variable="ps"/>',
        "  </action></nop>",
    ]
    number = 0

    def check() -> None:
        nonlocal number
        out.append(
            f'  <nop><action><test assign_to="now" variable="hang" compare="equal" '
            f'value="{number}"/></action></nop>'
        )
        out.append('  <nop test="now" next="hangup"/>')
        number += 1

    for i, (_, digits) in enumerate(il.DIALOGUE):
        check()
        out.append(f'  <pause milliseconds="{pauses_ms[i]}"/>')
        keys = [f"[field{il.PAN_FIELD + k}]" for k in range(16)] if digits is None else list(digits)
        for k, key in enumerate(keys):
            if k:
                check()
                if gap_ms:
                    out.append(f'  <pause milliseconds="{gap_ms}"/>')
            body = f"Signal={key}\nDuration={il.DTMF_DURATION_MS}\n"
            out.append(il._send(il._in_dialog("INFO", body)))
            out.append('  <recv response="200" timeout="15000"/>')
    check()
    ok = "\n".join(["SIP/2.0 200 OK", "[last_Via:]", "[last_From:]", "[last_To:]",
                    "[last_Call-ID:]", "[last_CSeq:]", "Content-Length: 0", "", ""])  # fmt: skip
    out += [
        f'  <recv request="BYE" timeout="{end_timeout_ms}"/>',
        il._send(ok),
        '  <nop next="done"/>',
        '  <label id="hangup"/>',
        '  <pause variable="wait"/>',
        il._send(il._in_dialog("BYE")),
        '  <recv response="200" timeout="10000"/>',
        '  <label id="done"/>',
        '  <pause milliseconds="0"/>',
    ]
    return "\n".join([*head, *out]) + "\n</scenario>\n"


# ------------------------------------------------------------------ memory


class RssSampler:
    def __init__(self, pid: int, every_s: float = 2.0) -> None:
        self.pid, self.every_s = pid, every_s
        self.samples: list[tuple[float, int]] = []  # (s since start, kB)
        self._t0 = time.monotonic()

    def sample(self) -> None:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.samples.append((time.monotonic() - self._t0, int(line.split()[1])))

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every_s)

    def summary(self) -> dict[str, Any]:
        if len(self.samples) < 4:
            return {"samples": len(self.samples)}
        kb = [v for _, v in self.samples]
        half = self.samples[len(self.samples) // 2 :]
        n = len(half)
        mx = sum(t for t, _ in half) / n
        my = sum(v for _, v in half) / n
        sxx = sum((t - mx) ** 2 for t, _ in half) or 1.0
        slope = sum((t - mx) * (v - my) for t, v in half) / sxx  # kB/s
        span = half[-1][0] - half[0][0]
        start = my - slope * (mx - half[0][0])
        growth = 100 * slope * span / start if start else float("nan")
        return {
            "samples": len(kb),
            "every_s": self.every_s,
            "first_mb": kb[0] / 1024,
            "last_mb": kb[-1] / 1024,
            "max_mb": max(kb) / 1024,
            "second_half_slope_kb_per_min": slope * 60,
            "second_half_growth_pct": growth,
            "flat": growth < FLAT_PCT,
        }


# ------------------------------------------------------------------ checks


def kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items()))


def _sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def db_checks(env: dict[str, str], request_ids: set[str]) -> dict[str, Any]:
    """Read-only counts from the engine's SQLite database and the vault's."""
    from ivr.settings import load_settings

    settings = load_settings(env=env)
    main = sqlite3.connect(f"file:{_sqlite_path(settings.database_url)}?mode=ro", uri=True)
    try:

        def one(sql: str, *args: Any) -> Any:
            return main.execute(sql, args).fetchone()[0]

        def pairs(sql: str) -> dict[str, int]:
            return {str(k): v for k, v in main.execute(sql).fetchall()}

        out: dict[str, Any] = {
            "call_sessions": one("select count(*) from call_sessions"),
            "orphan_sessions": one("select count(*) from call_sessions where ended_at is null"),
            "session_outcomes": pairs(
                "select coalesce(outcome, '(none)'), count(*) from call_sessions group by 1"
            ),
            "hung_up_at": pairs(
                "select st.step || ' ' || coalesce(st.prompt_id, '-'), count(*) "
                "from call_sessions s join call_steps st on st.session_id = s.id "
                "where s.outcome = 'caller_hung_up' and st.seq = "
                "(select max(seq) from call_steps x where x.session_id = s.id) group by 1"
            ),
            "requests": pairs("select status, count(*) from call_requests group by 1"),
            "requests_in_call": one("select count(*) from call_requests where status='in_call'"),
            "leases": pairs("select status, count(*) from leases group by 1"),
            "active_leases_of_ended_requests": one(
                "select count(*) from leases l join call_requests r on r.lease_id = l.id "
                "where l.status = 'active' and r.ended_at is not null"
            ),
            "cards": pairs("select status, count(*) from cards group by 1"),
            "active_cards_without_billing_key": one(
                "select count(*) from cards where status = 'active' and "
                "(billing_key_ref is null or billing_key_ref = '')"
            ),
            "requests_completed_without_card": one(
                "select count(*) from call_requests where status = 'completed' "
                "and kind = 'registration' and card_id is null"
            ),
        }
        tokens = {t for (t,) in main.execute("select vault_token from cards")}
    finally:
        main.close()
    vault_db = Path(settings.paths.var_dir) / "vault" / "vault.db"
    records: set[str] = set()
    if vault_db.exists():
        v = sqlite3.connect(f"file:{vault_db}?mode=ro", uri=True)
        try:
            records = {t for (t,) in v.execute("select token from vault_records")}
        finally:
            v.close()
    out["vault_records"] = len(records)
    out["vault_records_without_card"] = len(records - tokens)
    out["cards_without_vault_record"] = len(tokens - records)
    out["requests_seen"] = len(request_ids)
    return out


async def leases_past_expiry(env: dict[str, str], *, advance: timedelta | None) -> dict[str, int]:
    """Run the sweeper's expiry (requests, then leases) with the real clock, or one moved
    ``advance`` ahead; then count active leases past their ``expires_at`` by that clock,
    and active leases left at all."""
    from sqlalchemy import func, select

    from ivr.clock import FakeClock, SystemClock
    from ivr.runtime import build
    from ivr.settings import load_settings
    from ivr.store.db import Database
    from ivr.store.tables import Lease

    settings = load_settings(env=env)
    clock: Any = SystemClock()
    if advance is not None:
        clock = FakeClock(SystemClock().now() + advance)
    db = Database(settings.database_url)
    services = build(settings, db=db, clock=clock)
    try:
        expired_requests = await services.requests.expire_due()
        expired = await services.dids.expire_due()
        now = clock.now()
        async with db.sessions() as s:
            past = await s.scalar(
                select(func.count())
                .select_from(Lease)
                .where(Lease.status == "active", Lease.expires_at <= now)
            )
            active = await s.scalar(
                select(func.count()).select_from(Lease).where(Lease.status == "active")
            )
    finally:
        await services.close()
    return {
        "requests_expired_now": expired_requests,
        "leases_expired_now": expired,
        "active_past_expiry": int(past or 0),
        "active_left": int(active or 0),
    }


async def wait_sessions_closed(env: dict[str, str], limit_s: float = 30) -> None:
    """The engine's session log is written behind the calls: wait until it stops moving."""
    last = None
    for _ in range(int(limit_s)):
        c = db_checks(env, set())
        now = (c["orphan_sessions"], c["call_sessions"], c["requests_in_call"])
        if now == last and now[0] == 0 and now[2] == 0:
            return
        last = now
        await asyncio.sleep(1)


# ------------------------------------------------------------------ main


async def main(args: argparse.Namespace) -> int:
    for tool in ("sipp",):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (Debian: sip-tester)")
    if args.calls > (il.RTP_RANGE[1] - il.RTP_RANGE[0] + 1) // 2:
        raise SystemExit("the bench's RTP range carries at most 1,000 calls")
    helper = Asterisk(ROOT)
    helper.setup()
    root = ROOT / "var" / "asterisk" / "root"
    if not (root / "usr/sbin/asterisk").exists():
        root = Path("/")
    sounds_dir = root / "var/lib/asterisk/sounds/arspay"
    out_dir = Path(args.out)
    os.makedirs(out_dir, exist_ok=True)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="arspay-bench-soak-"))
    procs: list[asyncio.subprocess.Process | None] = []
    ast: il.BenchAsterisk | None = None
    result: dict[str, Any] = {}
    problems: list[str] = []
    try:
        env = il.bench_env(workdir, sounds_dir, "http://127.0.0.1:1")
        sounds, seconds = await il.prepare_prompts(env)
        ast = il.BenchAsterisk(root, il.asterisk_files(sounds))
        await ast.start(workdir)
        await il.ari_ready()
        sandbox, url = await il.start_logged(
            [sys.executable, "-m", "ivr.cli", "sandbox-pg", "--port", "0", "--latency-ms",
             "30", "--ledger", str(workdir / "ledger.db")],
            env, workdir / "sandbox.log", r"http://127\.0\.0\.1:\d+", 30,
        )  # fmt: skip
        procs.append(sandbox)
        env = il.bench_env(workdir, sounds_dir, url)
        callers = await il.prepare_requests(env, args.calls, max(100, 2 * args.calls))
        engine, _ = await il.start_logged(
            [sys.executable, "-m", "ivr.cli", "engine", "run", "--no-build-prompts"],
            env, workdir / "engine.log", "engine ready", 60,
        )  # fmt: skip
        procs.append(engine)
        assert engine.pid is not None
        gap, think = args.gap_ms, args.think_ms
        pauses = [
            round(sum(seconds[p] for p in prompts) * 1000) + think for prompts, _ in il.DIALOGUE
        ]
        pauses[0] += il.ANSWER_WAIT_MS
        keying = sum((n - 1) * gap for n in il.DIGITS_PER_INPUT) / 1000
        call_s = sum(pauses) / 1000 + keying + sum(seconds[p] for p in il.AFTER) + 2
        points = checkpoints(pauses, seconds)
        calls = plan(args.calls, points, args.seed)
        rows = [
            [c.did, c.mobile, "sipp-info", *c.pan, str(point), str(wait)]
            for c, (_, point, wait) in zip(callers, calls, strict=True)
        ]
        end_timeout = int((call_s - sum(pauses) / 1000 + 30) * 1000)
        scenario = soak_scenario(pauses, gap, end_timeout)
        kinds = {k: sum(1 for c in calls if c[0] == k) for k, _ in MIX}
        print(
            f"setup {time.monotonic() - started:.0f} s; {args.calls} calls at {args.rate:g}/s "
            f"(a full call ~{call_s:.0f} s); {len(points)} hang-up checkpoints; plan: "
            + ", ".join(f"{k} {v}" for k, v in kinds.items()),
            flush=True,
        )
        rss = RssSampler(engine.pid)
        sampler = asyncio.create_task(rss.run())
        e0, a0 = il.cpu_s(engine.pid), il.cpu_s(ast.pid)
        t0 = time.monotonic()
        limit_s = call_s + args.calls / args.rate + 120
        # no cap on concurrent calls: the start rate bounds them (~rate x call length)
        sipp = await il.run_sipp(workdir, rows, scenario, args.rate, limit_s, len(rows))
        sipp_s = time.monotonic() - t0
        await il.settle(ast)
        await wait_sessions_closed(env)
        # one more sweeper pass's worth of idle time for the memory series
        await asyncio.sleep(4)
        sampler.cancel()
        rss.sample()
        e1, a1 = il.cpu_s(engine.pid), il.cpu_s(ast.pid)
        if engine.returncode is not None:
            problems.append(f"the engine exited ({engine.returncode}) during the run")
        if ast.proc is not None and ast.proc.returncode is not None:
            problems.append("the bench Asterisk died during the run")
        ids = {c.request_id for c in callers}
        checks = db_checks(env, ids)
        live_sweep = await leases_past_expiry(env, advance=None)
        channels_left = await ast.channels()
        await il.stop_process(engine)
        # after the engine: move a clock past every lease (max lifetime: a week)
        forced = await leases_past_expiry(env, advance=timedelta(days=8))
        after_forced = db_checks(env, ids)
        memory = rss.summary()
        by_outcome = checks["session_outcomes"]
        result = {
            "bench": "soak",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "params": {
                "calls": args.calls,
                "rate_per_s": args.rate,
                "seed": args.seed,
                "gap_ms": gap,
                "think_ms": think,
                "mix": dict(MIX),
                "cpus": os.cpu_count(),
            },
            "plan": kinds,
            "sipp": {
                "successful": sipp.successful,
                "failed": sipp.failed,
                "exit_code": sipp.exit_code,
                "errors": sipp.errors,
            },
            "sipp_wall_s": sipp_s,
            "asterisk_channels_left": channels_left,
            "db": checks,
            "sweep_now": live_sweep,
            "forced_expiry": forced,
            "after_forced": {k: after_forced[k] for k in ("leases", "requests")},
            "engine_rss": memory,
            "engine_cpu_s": e1 - e0,
            "asterisk_cpu_s": a1 - a0,
            "wall_s": time.monotonic() - started,
        }
        if checks["orphan_sessions"]:
            problems.append(f"{checks['orphan_sessions']} call session(s) without ended_at")
        if checks["requests_in_call"]:
            problems.append(f"{checks['requests_in_call']} request(s) left in_call")
        if checks["active_leases_of_ended_requests"]:
            problems.append(
                f"{checks['active_leases_of_ended_requests']} active lease(s) of ended requests"
            )
        if live_sweep["active_past_expiry"] or forced["active_past_expiry"]:
            problems.append("active lease(s) past expires_at after the sweeper's expiry")
        if forced["active_left"]:
            problems.append(f"{forced['active_left']} lease(s) still active after forced expiry")
        if checks["active_cards_without_billing_key"]:
            problems.append(
                f"{checks['active_cards_without_billing_key']} active card(s) without billing key"
            )
        if checks["vault_records_without_card"]:
            problems.append(f"{checks['vault_records_without_card']} vault record(s) with no card")
        if checks["cards_without_vault_record"]:
            problems.append(f"{checks['cards_without_vault_record']} card(s) with no vault record")
        if memory.get("flat") is False:
            problems.append(f"engine RSS grew {memory['second_half_growth_pct']:.1f} % ")
        if channels_left > 0:
            problems.append(f"{channels_left} Asterisk channel(s) left after the run")
        result["problems"] = problems

        print(f"\n== Soak: {args.calls} registration calls with random hang-ups")
        print(f"calls: plan {kv(kinds)}")
        sipp_line = f"{sipp.successful} ok, {sipp.failed} failed (exit {sipp.exit_code})"
        print(f"sipp: {sipp_line}; calls ran {sipp_s:.0f} s")
        for e in sipp.errors:
            print(f"      sipp: {e}")
        print(
            f"sessions: {checks['call_sessions']}, without ended_at: "
            f"{checks['orphan_sessions']}; outcomes: {kv(by_outcome)}"
        )
        print(f"hung up during (the session's last step): {kv(checks['hung_up_at'])}")
        print(f"requests: {kv(checks['requests'])}; in_call: {checks['requests_in_call']}")
        print(
            f"leases: {kv(checks['leases'])}; active of ended requests: "
            f"{checks['active_leases_of_ended_requests']}; active past expires_at after "
            f"expire_due: {live_sweep['active_past_expiry']}"
        )
        print(
            f"forced expiry (clock +8 days, engine stopped): {forced['requests_expired_now']} "
            f"requests and {forced['leases_expired_now']} leases expired; active left "
            f"{forced['active_left']}; leases now {kv(after_forced['leases'])}"
        )
        print(
            f"cards: {kv(checks['cards']) or 'none'}; active without billing key: "
            f"{checks['active_cards_without_billing_key']}; vault records "
            f"{checks['vault_records']} (no card: {checks['vault_records_without_card']}; "
            f"cards with no record: {checks['cards_without_vault_record']}); completed "
            f"registrations without a card: {checks['requests_completed_without_card']}"
        )
        if "first_mb" in memory:
            m = memory
            print(
                f"engine RSS ({m['samples']} samples every {m['every_s']:g} s): first "
                f"{m['first_mb']:.1f} MB, last {m['last_mb']:.1f} MB, max {m['max_mb']:.1f} MB; "
                f"second half {m['second_half_slope_kb_per_min']:+.0f} kB/min = "
                f"{m['second_half_growth_pct']:+.1f} % "
                f"({'flat' if m['flat'] else 'NOT flat'}, goal < {FLAT_PCT:g} %)"
            )
        print(
            f"CPU: engine {e1 - e0:.1f} s, Asterisk {a1 - a0:.1f} s; "
            f"Asterisk channels left: {channels_left}"
        )
        print("problems: " + ("; ".join(problems) if problems else "none"))
    finally:
        for proc in reversed(procs):
            await il.stop_process(proc)
        if ast is not None:
            await ast.stop()
        if result:
            result["wall_s"] = time.monotonic() - started
            (out_dir / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
            print(f"wrote {out_dir}/soak.json ({result['wall_s']:.0f} s in all)")
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if result and not problems else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=3.5, help="calls started per second")
    parser.add_argument("--seed", type=int, default=10, help="of the hang-up plan")
    parser.add_argument("--gap-ms", type=int, default=250, help="between two digits")
    parser.add_argument("--think-ms", type=int, default=300,
                        help="after a prompt's end, before the first digit")  # fmt: skip
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    sys.exit(il.run_main(main(parser.parse_args())))
