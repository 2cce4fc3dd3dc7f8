"""IVR load: N concurrent registration calls through Asterisk, the engine and the sandbox
PG, against the same prompt sequence done by Asterisk's dialplan alone (issue #10).

    .venv/bin/python bench/ivr_load.py [--concurrency 10,100,200] [--min-calls 40]
        [--rate 40] [--gap-ms 250] [--think-ms 300] [--paths ari,agi] [--no-baseline]
        [--split] [--merge] [--out bench/results]

At each concurrency it runs the engine once per way in (``--paths``): ``engine-ari``,
the engine as the Stasis app over ARI (the default deployment), and ``engine-agi``, the
same engine reached by FastAGI from the dialplan (``AGI(agi://…)``, the integration
path for an existing dialplan) — each with its own call requests — then the baseline.

The stack, all on this machine, each part its own process:

* **Asterisk 22** from the provisioned root (``scripts/asterisk setup``), as a *second*
  instance owned by the bench: the project's config (``asterisk-config/``, rendered by
  ``ivr.telephony.asterisk_config``) plus ``bench/ivr_baseline/*.conf``, in its own config
  directory (``/etc/asterisk-bench`` in the root) with its own control socket, SIP port
  5290, ARI port 8188 and RTP range 20000-21999 — it never touches the shared instance
  (``scripts/asterisk``) that the e2e tests start, stop and restart;
* the **engine**: ``arspay engine run`` (ARI app ``arspay-bench``, FastAGI 4673, REST
  API off, log level info), a fresh SQLite database, the local vault with key-file
  KEKs, the generated Korean prompts (``arspay prompts build`` first; the engine's own
  start-up build, as in production, then finds every file made and knows them all);
* the **sandbox PG**: ``arspay sandbox-pg`` (30 ms latency per API call);
* **SIPp**: one process, ``-l N -m CALLS -r RATE``, with a CSV injection file: call *i* comes
  from mobile *i* to the DID leased to it by call request *i* (all requests are created
  up front with the engine's own services), keys its own test card number, and sends DTMF
  as SIP INFO (``Duration=160``) through endpoint ``sipp-info`` (ARI) or
  ``sipp-agi-info`` (FastAGI).

Each call is a full registration: greeting and consent (``1``), card number (16 digits,
ends at max digits), expiry (``1230``), birth date (``880101#``), 2 password digits,
confirm (``1``); then the engine tokenizes the card, gets a billing key from the sandbox
PG under the wait prompt, says it is done and hangs up. The caller keys each input after
a fixed pause: what it has to listen to first (the prompts' WAV files in whole 20 ms
frames, +30 ms between two files) plus ``--think-ms``, and 600 ms more before the first
input (``Answer()`` in the dialplan waits up to 500 ms for the caller's audio); digits go
``--gap-ms`` apart. (Faster keying, e.g. 150 ms, makes Asterisk queue the digits of a
Stasis channel — it plays each out as a 160 ms tone plus a minimum gap — and adds ~65 ms
per digit that no application can avoid.) A call succeeds when SIPp sees its scenario
through (the far end's BYE only at the end) and, on the engine path, its call request is
``completed`` in the engine's database.

The **baseline** is the same dialogue done by Asterisk alone (``bench/ivr_baseline/
extensions.conf``: ``Playback``/``Read`` of the same sound files, same max digits, ``#``
terminator), driven by the same SIPp scenario through endpoint ``sipp-baseline-info``; it
checks each input's length and hangs up at once (a failed call) if one is wrong.

**Prompt turnaround**, measured the same way on both paths, on the wire at Asterisk: two
loopback captures per run (``dumpcap -i lo``): the SIP signalling, and the headers of the
RTP packets Asterisk sends to SIPp. Turnaround = the SIP INFO carrying the last digit of
an input (its first transmission, by CSeq) → the first RTP packet Asterisk sends to that
call afterwards (the call's RTP port is in Asterisk's 200 OK). Asterisk sends no RTP
while it waits for digits, and the caller keys only after the prompt has ended, so that
packet is the start of the next prompt. Six per call: consent → card number → expiry →
birth date → password → confirm → wait prompt. Columns ``late`` (the next prompt had
not started when the caller began the next input; the pause counts as the value, a lower
bound) and ``barge`` (a prompt was still playing when its input began) flag where the
fixed pauses did not fit. (Not the RTP marker bit: Asterisk does not set it reliably on
a prompt's first packet.) The engine's own call-step log (``call_steps``: a
``collect``'s ``ended_at`` → the next ``play``'s ``started_at``) is printed as a second
figure for the engine path only (``steps``); the comparison uses the capture. Both
are printed per input too. With ``--split``, on the ARI path a third capture, of the engine's ARI
WebSocket (TCP 8188; the engine's frames unmasked), splits each turnaround where it
crossed the socket: **Asterisk in** (the SIP INFO -> Asterisk sends
``ChannelDtmfReceived``), **engine** (-> the engine sends the next ``play`` request),
**Asterisk out** (-> the first RTP packet), matched by the caller number of
``StasisStart`` and the order of the digits; **Asterisk in+out** adds the two Asterisk
legs of each turnaround: the ARI floor, what an engine that took no time would get.

**CPU per call**: ``utime + stime`` from ``/proc/<pid>/stat`` of the engine process and of
Asterisk (the bench's instance: nothing else runs in it), from SIPp's start to 1 s after
its end, divided by the calls. On a baseline row, the engine column is what the idle
engine burnt meanwhile. SIPp's CPU and the whole machine's busy share (``box %``, all
processes, others' too) are printed as well: everything shares one 2-core box.

**Calls per level**: N calls at concurrency N, but at least ``--min-calls`` (default 40),
N at a time (SIPp starts the next call when one ends): a p99 needs a few hundred
turnarounds (six per call); 10 calls make 60, whose p99 is just their maximum.

Goals (issue #10): 200 concurrent calls with zero failed calls; turnaround p99 <= 50 ms
and <= 2x the baseline's; engine CPU per call <= half of Asterisk's. Writes
``<out>/ivr_load.json`` and ``<out>/ivr_load.png`` (turnaround p50/p99 against
concurrency, drawn without a plotting library). A call lasts ~74 s, so each level takes
about 3 x (76 s x ceil(CALLS/N) + N/rate): the default sweep ~25 minutes; ``--merge``
keeps the other levels already in ``ivr_load.json``, so a longer sweep can run in
several invocations.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
import wave
import zlib
from collections.abc import Coroutine, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from string import Template
from typing import Any, BinaryIO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.telephony.asterisk_config import FILE_MODE, render  # noqa: E402
from ivr.testing.asterisk import Asterisk  # noqa: E402

BASELINE_DIR = ROOT / "bench" / "ivr_baseline"
SIP_PORT = 5290  # the bench Asterisk's PJSIP transport
SIPP_PORT = 5291  # SIPp's local SIP port (clear of the e2e SIPp range 5100-5199)
SIPP_MEDIA_PORT = 18600  # SIPp's RTP port (clear of the e2e range 16000-17999)
ARI_PORT = 8188
AGI_PORT = 4673
RTP_RANGE = (20000, 21999)  # 1,000 calls; clear of the shared instance's 10000-10999
APP = "arspay-bench"
# This run's link credentials: random, in the bench Asterisk's rendered config and the
# engine's settings alike (set explicitly: no credentials file, no dev mode).
CREDENTIALS = {
    "ARSPAY_ASTERISK_ARI_PASSWORD": secrets.token_urlsafe(32),
    "ARSPAY_ASTERISK_AGI_SECRET": secrets.token_urlsafe(32),
}
ETC = "/etc/asterisk-bench"  # inside the root
DIRECTORIES = f"""
; bench/ivr_load.py: a second instance with its own directories and control socket.
[directories]
astetcdir => {ETC}
astrundir => /var/run/asterisk-bench
astlogdir => /var/log/asterisk-bench
astspooldir => /var/spool/asterisk-bench
astdbdir => /var/lib/asterisk-bench
"""

MERCHANT = "행복치과"
PRODUCT = "임플란트"
EXPIRY = "1230"
BIRTH = "880101#"
PASSWORD = "12"  # noqa: S105 - the sandbox's test password digits
LAST4 = "1111"
DTMF_DURATION_MS = 160  # in each SIP INFO, as ivr.testing.sipp sends them
# Answer() in the dialplan waits up to 500 ms for the caller's first audio frame (SIPp
# sends none) before the first prompt; the engine's ARI answer does not. The caller
# listens that much longer before the first input, on both paths.
ANSWER_WAIT_MS = 600
PAN_FIELD = 3  # CSV fields: 0 DID, 1 caller, 2 endpoint, 3-18 the card number's digits
# (prompts heard before keying, what is keyed; None = the card number from the CSV)
DIALOGUE: list[tuple[tuple[str, ...], str | None]] = [
    (("reg.greeting", "reg.consent"), "1"),
    (("card.number",), None),
    (("card.expiry",), EXPIRY),
    (("card.birth",), BIRTH),
    (("card.password",), PASSWORD),
    (("card.confirm",), "1"),
]
AFTER = ("common.wait", "reg.done")
DIGITS_PER_INPUT = [16 if d is None else len(d) for _, d in DIALOGUE]
# the engine's ways in (--paths) -> run names; each run's SIP endpoint (asterisk-config/
# pjsip.conf: sipp-info goes to the Stasis app, sipp-agi-info to the FastAGI server;
# bench/ivr_baseline: sipp-baseline-info to the dialplan IVR)
PATHS = {"ari": "engine-ari", "agi": "engine-agi"}
ENDPOINTS = {"engine-ari": "sipp-info", "engine-agi": "sipp-agi-info",
             "baseline": "sipp-baseline-info"}  # fmt: skip
INPUT_NAMES = [prompts[-1].split(".")[-1] for prompts, _ in DIALOGUE]  # consent, number, …
# what Read() stores per input (it drops the terminating #), e.g. "1-16-4-6-2-1"
BASELINE_LENGTHS = "-".join(str(16 if d is None else len(d.removesuffix("#"))) for _, d in DIALOGUE)


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def card_number(i: int) -> str:
    """A distinct Luhn-valid test card per call, all ending in 1111 (the same readback)."""
    for x in "0123456789":
        pan = f"411111{i:05d}{x}{LAST4}"
        if luhn_ok(pan):
            return pan
    raise AssertionError("unreachable")


# ------------------------------------------------------------------ processes


def cpu_s(pid: int | None) -> float:
    """utime + stime of a process (all its threads), in seconds; 0.0 if it is gone."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values[:8])
    return total - values[3] - values[4], total


def open_log(path: Path) -> BinaryIO:
    return open(path, "wb")


def process_name(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


class BenchAsterisk:
    """The bench's own Asterisk: same root and binary, own config dir, socket and ports."""

    def __init__(self, root: Path, files: dict[str, str]) -> None:
        self.root = root
        self.files = files
        self.proc: asyncio.subprocess.Process | None = None

    def _argv(self, *args: str) -> list[str]:
        prefix = ["chroot", str(self.root)] if self.root != Path("/") else []
        return [*prefix, "asterisk", "-C", f"{ETC}/asterisk.conf", *args]

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def cli(self, command: str, limit_s: float = 10) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            *self._argv("-rx", command), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), limit_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return 1, "timed out"
        return proc.returncode or 0, out.decode(errors="replace")

    def _deploy(self) -> None:
        """Write the config (0640: ari.conf holds the ARI password) and the directories."""
        etc = self.root / ETC.lstrip("/")
        if etc.exists():
            shutil.rmtree(etc)
        etc.mkdir(parents=True)
        for name, text in self.files.items():
            fd = os.open(etc / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
        for d in ("var/run", "var/log", "var/spool", "var/lib"):
            (self.root / d / "asterisk-bench").mkdir(parents=True, exist_ok=True)
        # sound:arspay/NAME -> the prompts directory (as scripts/asterisk start links it)
        link = self.root / "usr/share/asterisk/sounds/arspay"
        if not link.exists():
            link.unlink(missing_ok=True)
            link.symlink_to("../../../../var/lib/asterisk/sounds/arspay")

    async def start(self, workdir: Path) -> None:
        self._deploy()
        with open_log(workdir / "asterisk.out") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self._argv("-f"), stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True,
            )  # fmt: skip
        for _ in range(150):
            if (await self.cli("core waitfullybooted"))[0] == 0:
                break
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.2)
        else:
            raise SystemExit(f"the bench Asterisk did not boot; see {workdir}/asterisk.out")
        if self.proc.returncode is not None:
            raise SystemExit(f"the bench Asterisk exited; see {workdir}/asterisk.out")
        comm = process_name(self.proc.pid)
        assert comm == "asterisk", f"pid {self.proc.pid} is {comm!r}, not asterisk"

    async def channels(self) -> int:
        code, out = await self.cli("core show channels count")
        found = re.search(r"(\d+) active call", out)
        return int(found.group(1)) if code == 0 and found else -1

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        await self.cli("core stop now")
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def start_logged(
    argv: list[str], env: dict[str, str], log: Path, ready: str, timeout_s: float
) -> tuple[asyncio.subprocess.Process, str]:
    """Start a process whose stdout prints ``ready`` (a regex) when it is up; stderr -> log."""
    with open_log(log) as err:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=err, env=env, cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), deadline - time.monotonic())
            except TimeoutError:
                raise SystemExit(f"{argv[3:6]} not ready in {timeout_s:.0f} s; see {log}") from None
            if not line:
                raise SystemExit(f"{argv[3:6]} exited ({await proc.wait()}); see {log}")
            found = re.search(ready, line.decode(errors="replace"))
            if found:
                break
    except BaseException:  # not ready, or the bench was interrupted: not left running
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise

    async def drain() -> None:
        assert proc.stdout is not None
        while await proc.stdout.readline():
            pass

    asyncio.get_running_loop().create_task(drain())
    return proc, found.group(0)


async def stop_process(proc: asyncio.subprocess.Process | None, timeout_s: float = 30) -> None:
    if proc is None or proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def run_main(main: Coroutine[Any, Any, int]) -> int:
    """``asyncio.run(main)``, with SIGTERM and SIGHUP cancelling it as Ctrl-C does: the
    bench's ``finally`` blocks then stop what it started (engine, sandbox PG, Asterisk,
    SIPp, dumpcap) and remove its work directory, whose captures hold the test cards'
    DTMF. Killed without this, they outlived it and kept the bench ports. Exit status
    128 + the signal's number."""
    caught: list[int] = []

    async def runner() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def stop(signum: int) -> None:
            caught.append(signum)
            task.cancel()

        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, stop, signum)
        return await main

    try:
        return asyncio.run(runner())
    except asyncio.CancelledError:
        if not caught:
            raise
        return 128 + caught[0]


# ------------------------------------------------------------------ setup


@dataclass(frozen=True)
class Caller:
    did: str
    mobile: str
    request_id: str
    pan: str


def bench_env(workdir: Path, sounds: Path, sandbox_url: str) -> dict[str, str]:
    from tests.gateways.support import KEY, SECRET

    var = workdir / "var"
    # the caller's ARSPAY_* settings stay out, but for the engine section's (an A/B of
    # the event loop: ARSPAY_ENGINE_EVENT_LOOP=asyncio)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ARSPAY_") or k.startswith("ARSPAY_ENGINE_")
    }
    return env | {
        "ARSPAY_CONFIG": "/nonexistent.toml",
        "ARSPAY_PATHS_VAR_DIR": str(var),
        "ARSPAY_GATEWAY_KIND": "sandbox",
        "ARSPAY_GATEWAY_BASE_URL": sandbox_url,
        "ARSPAY_GATEWAY_API_KEY": KEY,
        "ARSPAY_GATEWAY_API_SECRET": SECRET,
        "ARSPAY_GATEWAY_CHANNEL_KEY": "channel-key-bench",  # the sandbox it starts reads it too
        "ARSPAY_VAULT_KEY_FILE": str(var / "vault" / "kek.key"),
        "ARSPAY_VAULT_FINGERPRINT_KEY_FILE": str(var / "vault" / "fingerprint.key"),
        "ARSPAY_PROMPTS_SOUNDS_DIR": str(sounds),
        "ARSPAY_ASTERISK_ARI_URL": f"http://127.0.0.1:{ARI_PORT}",
        "ARSPAY_ASTERISK_APP": APP,
        "ARSPAY_ASTERISK_SIP_PORT": str(SIP_PORT),
        "ARSPAY_ASTERISK_AGI_PORT": str(AGI_PORT),
        "ARSPAY_ASTERISK_RTP_START": str(RTP_RANGE[0]),
        "ARSPAY_ASTERISK_RTP_END": str(RTP_RANGE[1]),
        "ARSPAY_API_ENABLED": "false",
        "ARSPAY_LOG_LEVEL": "info",
        **CREDENTIALS,
    }


async def prepare_prompts(env: dict[str, str]) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Build the prompts (cached) and render the registration call's: sounds, seconds."""
    from ivr.flows.registration import spoken_issuer
    from ivr.gateways.sandbox.cards import issuer
    from ivr.prompts import PromptBook
    from ivr.settings import load_settings

    settings = load_settings(env=env)
    book = PromptBook.from_settings(settings.prompts)
    report = await book.build()
    print(f"prompts: {report.total} segments ready ({report.built} built)", flush=True)
    values: dict[str, dict[str, str]] = {
        "reg.greeting": {"merchant": MERCHANT},
        "reg.consent": {"merchant": MERCHANT, "product": PRODUCT},
        "card.confirm": {"last4": LAST4},
        "reg.done": {"issuer": spoken_issuer(issuer(card_number(0))[0]), "last4": LAST4},
    }
    ids = [p for prompts, _ in DIALOGUE for p in prompts] + list(AFTER)
    sounds = {p: await book.render(p, **values.get(p, {})) for p in ids}
    root = settings.prompts.sounds_dir
    seconds: dict[str, float] = {}
    for p, names in sounds.items():
        # Asterisk plays whole 20 ms frames and pauses briefly between the files of a list
        total = 0.03 * (len(names) - 1)
        for name in names:
            with wave.open(str(root / (name.removeprefix("arspay/") + ".wav"))) as w:
                total += math.ceil(w.getnframes() / w.getframerate() / 0.02) * 0.02
        seconds[p] = total
    return sounds, seconds


async def prepare_requests(env: dict[str, str], total: int, dids: int) -> list[Caller]:
    """Schema, vault keys, DID pool, one merchant, and one registration request (with its
    DID lease) per call, each for its own customer and mobile."""
    from ivr.domain.states import CallRequestKind
    from ivr.runtime import build
    from ivr.settings import load_settings
    from ivr.store import migrate
    from ivr.store.db import Database
    from vault.factory import init_keys

    settings = load_settings(env=env)
    init_keys(settings)
    db = Database(settings.database_url)
    await migrate.upgrade(db)
    services = build(settings, db=db)
    try:
        await services.dids.import_numbers([f"0505900{i:04d}" for i in range(dids)])
        merchant = await services.merchants.create(MERCHANT)
        callers = []
        for i in range(total):
            mobile = f"0107{i:07d}"
            customer = await services.customers.create(merchant.id, mobile=mobile)
            new = await services.requests.create(
                merchant.id, customer.id, CallRequestKind.registration, product_name=PRODUCT
            )
            callers.append(Caller(new.request.did, mobile, new.request.id, card_number(i)))
        await services.outbox.deliver_pending()
    finally:
        await services.close()
    return callers


def asterisk_files(sounds: dict[str, list[str]]) -> dict[str, str]:
    """The project's rendered config for the bench instance, plus the baseline additions."""
    from ivr.settings import load_settings

    env = {
        "ARSPAY_CONFIG": "/nonexistent.toml",
        "ARSPAY_ASTERISK_ARI_URL": f"http://127.0.0.1:{ARI_PORT}",
        "ARSPAY_ASTERISK_APP": APP,
        "ARSPAY_ASTERISK_SIP_PORT": str(SIP_PORT),
        "ARSPAY_ASTERISK_AGI_PORT": str(AGI_PORT),
        "ARSPAY_ASTERISK_RTP_START": str(RTP_RANGE[0]),
        "ARSPAY_ASTERISK_RTP_END": str(RTP_RANGE[1]),
        **CREDENTIALS,
    }
    files = render(load_settings(env=env))
    files["asterisk.conf"] += DIRECTORIES

    def joined(*ids: str) -> str:
        return "&".join(s for p in ids for s in sounds[p])

    ext = Template((BASELINE_DIR / "extensions.conf").read_text(encoding="utf-8"))
    files["extensions.conf"] += "\n" + ext.substitute(
        greeting=joined("reg.greeting"), consent=joined("reg.consent"),
        number=joined("card.number"), expiry=joined("card.expiry"), birth=joined("card.birth"),
        password=joined("card.password"), confirm=joined("card.confirm"),
        wait=joined("common.wait"), done=joined("reg.done"), lengths=BASELINE_LENGTHS,
    )  # fmt: skip
    files["pjsip.conf"] += "\n" + (BASELINE_DIR / "pjsip.conf").read_text(encoding="utf-8")
    return files


async def ari_ready(limit_s: float = 20) -> None:
    import aiohttp

    password = CREDENTIALS["ARSPAY_ASTERISK_ARI_PASSWORD"]
    auth = {"Authorization": aiohttp.encode_basic_auth("arspay", password)}
    url = f"http://127.0.0.1:{ARI_PORT}/ari/asterisk/info"
    async with aiohttp.ClientSession(headers=auth) as session:
        for _ in range(int(limit_s * 5)):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise SystemExit("the bench Asterisk's ARI does not answer")


# ------------------------------------------------------------------ SIPp


_FROM = "<sip:[field1]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]"
_TO = "<sip:[field0]@[remote_ip]:[remote_port]>"
_CONTACT = "<sip:[field1]@[local_ip]:[local_port]>"


def _in_dialog(method: str, body: str = "") -> str:
    lines = [
        f"{method} [next_url] SIP/2.0",
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
        f"From: {_FROM}", f"To: {_TO}[peer_tag_param]", "Call-ID: [call_id]",
        f"CSeq: [cseq] {method}", "[routes]", f"Contact: {_CONTACT}", "Max-Forwards: 70",
    ]  # fmt: skip
    if body:
        lines += ["Content-Type: application/dtmf-relay", "Content-Length: [len]", "", body]
    else:
        lines += ["Content-Length: 0", "", ""]
    return "\n".join(lines)


def _send(message: str) -> str:
    return f"  <send><![CDATA[\n{message}]]></send>"


def scenario_xml(pauses_ms: list[int], gap_ms: int, end_timeout_ms: int) -> str:
    """One registration call; ``pauses_ms[i]`` before keying input ``i``."""
    sdp = "\n".join([
        "v=0", "o=arspay 1 1 IN IP[local_ip_type] [local_ip]", "s=arspay",
        "c=IN IP[media_ip_type] [media_ip]", "t=0 0", "m=audio [media_port] RTP/AVP 0 8",
        "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=ptime:20", "a=sendrecv",
    ])  # fmt: skip
    invite = "\n".join([
        "INVITE sip:[field0]@[remote_ip]:[remote_port] SIP/2.0",
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
        f"From: {_FROM}", f"To: {_TO}", "Call-ID: [call_id]", "CSeq: [cseq] INVITE",
        f"Contact: {_CONTACT}", "Max-Forwards: 70", "X-Arspay-Endpoint: [field2]",
        "Content-Type: application/sdp", "Content-Length: [len]", "", sdp,
    ])  # fmt: skip
    ack = "\n".join([
        "ACK [next_url] SIP/2.0",
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
        f"From: {_FROM}", f"To: {_TO}[peer_tag_param]", "Call-ID: [call_id]",
        "CSeq: [cseq] ACK", "[routes]", f"Contact: {_CONTACT}", "Max-Forwards: 70",
        "Content-Length: 0", "", "",
    ])  # fmt: skip
    ok = "\n".join(["SIP/2.0 200 OK", "[last_Via:]", "[last_From:]", "[last_To:]",
                    "[last_Call-ID:]", "[last_CSeq:]", "Content-Length: 0", "", ""])  # fmt: skip
    out = [
        _send(invite),
        '  <recv response="100" optional="true" timeout="30000"/>',
        '  <recv response="180" optional="true" timeout="30000"/>',
        '  <recv response="183" optional="true" timeout="30000"/>',
        '  <recv response="200" rrs="true" timeout="30000"/>',
        _send(ack),
    ]
    for i, (_, digits) in enumerate(DIALOGUE):
        out.append(f'  <pause milliseconds="{pauses_ms[i]}"/>')
        keys = [f"[field{PAN_FIELD + k}]" for k in range(16)] if digits is None else list(digits)
        for k, key in enumerate(keys):
            if k and gap_ms:
                out.append(f'  <pause milliseconds="{gap_ms}"/>')
            out.append(_send(_in_dialog("INFO", f"Signal={key}\nDuration={DTMF_DURATION_MS}\n")))
            out.append('  <recv response="200" timeout="15000"/>')
    out.append(f'  <recv request="BYE" timeout="{end_timeout_ms}"/>')
    out.append(_send(ok))
    body = "\n".join(out)
    head = '<?xml version="1.0" encoding="UTF-8"?>\n<scenario name="ivr load">'
    return f"{head}\n{body}\n</scenario>\n"


@dataclass
class SippOutcome:
    successful: int
    failed: int
    exit_code: int
    cpu_s: float
    errors: list[str]


def _private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


async def run_sipp(
    workdir: Path,
    rows: list[list[str]],
    scenario: str,
    rate: float,
    timeout_s: float,
    concurrency: int,
) -> SippOutcome:
    """All calls from one SIPp process; the scenario and CSV (test card numbers) are 0600
    and deleted afterwards."""
    tag = f"{len(rows)}-{rows[0][2]}"
    scen, csv = workdir / f"scenario-{tag}.xml", workdir / f"calls-{tag}.csv"
    stats, errors = workdir / f"sipp-{tag}-stats.csv", workdir / f"sipp-{tag}-errors.log"
    _private(scen, scenario)
    _private(csv, "SEQUENTIAL\n" + "".join(";".join(r) + ";\n" for r in rows))
    argv = [
        "sipp", f"127.0.0.1:{SIP_PORT}", "-sf", str(scen), "-inf", str(csv), "-t", "u1",
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(SIPP_PORT), "-mp", str(SIPP_MEDIA_PORT),
        "-m", str(len(rows)), "-l", str(concurrency), "-r", f"{rate:g}", "-nostdin",
        "-trace_stat", "-stf", str(stats), "-fd", "5", "-trace_err", "-error_file", str(errors),
        "-timeout", f"{int(timeout_s)}s", "-timeout_error", "-max_recv_loops", "10000",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, cwd=workdir,
    )  # fmt: skip
    cpu = 0.0
    waiter = asyncio.ensure_future(proc.communicate())
    try:
        while not waiter.done():
            cpu = max(cpu, cpu_s(proc.pid))
            await asyncio.wait({waiter}, timeout=0.5)
    finally:
        if not waiter.done():  # interrupted: SIPp goes too
            proc.kill()
            await asyncio.wait({waiter}, timeout=5)
        for path in (scen, csv):
            path.unlink(missing_ok=True)
    _, stderr = waiter.result()
    successful = failed = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        lines = [ln for ln in stats.read_text().splitlines() if ln.strip()]
        header, last = lines[0].split(";"), lines[-1].split(";")
        successful = int(last[header.index("SuccessfulCall(C)")])
        failed = int(last[header.index("FailedCall(C)")])
    text = (errors.read_text(errors="replace") if errors.exists() else "") + stderr.decode(
        errors="replace"
    )
    text = re.sub(r"(?im)^(\s*Signal\s*=\s*)\S+", r"\1<redacted>", text)  # never digits
    kinds: dict[str, int] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or "Signal" in line:
            continue
        key = re.sub(r"\d+", "N", line)[:120]
        if re.search(r"(?i)abort|timeout|unexpected|error|fail", key):
            kinds[key] = kinds.get(key, 0) + 1
    summary = [f"{n} x {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:6]]
    return SippOutcome(successful, failed, proc.returncode or 0, cpu, summary)


# ------------------------------------------------------------------ capture


SIP_FILTER = f"udp port {SIP_PORT}"
# Asterisk's RTP to SIPp's media port (RTCP goes to the odd port next to it).
RTP_FILTER = f"udp src portrange {RTP_RANGE[0]}-{RTP_RANGE[1]} and udp dst port {SIPP_MEDIA_PORT}"


class Capture:
    """``dumpcap`` on lo into a pcap file, live before ``__aenter__`` returns."""

    def __init__(self, path: Path, bpf: str, snaplen: int, probe: tuple[int, int]) -> None:
        self.path, self.bpf, self.snaplen = path, bpf, snaplen
        self.probe = probe  # (source port or 0, destination port) of a packet the filter takes
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Capture:
        self.proc = await asyncio.create_subprocess_exec(
            "dumpcap", "-i", "lo", "-f", self.bpf, "-w", str(self.path), "-P", "-q",
            "-s", str(self.snaplen), "-B", "64", stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stderr is not None
        line = await asyncio.wait_for(self.proc.stderr.readline(), 15)
        if b"Capturing on" not in line:
            raise SystemExit(f"dumpcap did not start: {line.decode(errors='replace')}")
        # "Capturing on" comes before the capture is live: send probes (to SIP, an empty
        # CRLFCRLF keep-alive, which PJSIP ignores) until one is in the file.
        sport, dport = self.probe
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if sport:
                probe.bind(("127.0.0.1", sport))
            deadline = time.monotonic() + 15
            while not self.path.exists() or self.path.stat().st_size <= 24:
                if time.monotonic() > deadline:
                    raise SystemExit("dumpcap captures nothing on lo")
                probe.sendto(b"\r\n\r\n", ("127.0.0.1", dport))
                await asyncio.sleep(0.2)
        finally:
            probe.close()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.communicate(), 10)
            if self.proc.returncode is None:
                self.proc.kill()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_rtp_port() -> int:
    """A port of the RTP range nobody holds now (the RTP capture's probe comes from it)."""
    for port in range(RTP_RANGE[1] - 1, RTP_RANGE[0], -2):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port in the RTP range for the capture probe")


def ip_packets(path: Path, protocol: int) -> Iterator[tuple[float, bytes, int, int]]:
    """(time, the capture's bytes, where the transport header starts, where the packet
    ends) of every IPv4 packet of ``protocol`` (6 TCP, 17 UDP) in a pcap file."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian, scale = {0xA1B2C3D4: ("<", 1e-6), 0xA1B23C4D: ("<", 1e-9)}.get(magic, (">", 1e-6))
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    l2 = {1: 14, 113: 16, 276: 20, 0: 4}.get(linktype, 14)
    record = struct.Struct(endian + "IIII")
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, _ = record.unpack_from(data, pos)
        ip = pos + 16 + l2
        pos += 16 + incl
        if data[ip] >> 4 == 4 and data[ip + 9] == protocol:
            yield sec + frac * scale, data, ip + (data[ip] & 0x0F) * 4, pos


def read_pcap(path: Path, payload: bool = True) -> list[tuple[float, int, int, bytes]]:
    """(time, UDP source port, UDP destination port, payload) of every IPv4/UDP packet."""
    ports = struct.Struct(">HH")
    out = []
    for t, data, udp, end in ip_packets(path, 17):
        sport, dport = ports.unpack_from(data, udp)
        out.append((t, sport, dport, data[udp + 8 : end] if payload else b""))
    return out


def read_tcp(path: Path) -> list[tuple[float, int, int, int, bytes]]:
    """(time, source port, destination port, sequence number, payload) of every
    IPv4/TCP packet with a payload."""
    head = struct.Struct(">HHI")
    out = []
    for t, data, tcp, end in ip_packets(path, 6):
        sport, dport, seq = head.unpack_from(data, tcp)
        body = data[tcp + (data[tcp + 12] >> 4) * 4 : end]
        if body:
            out.append((t, sport, dport, seq, body))
    return out


def ws_messages(packets: list[tuple[float, bytes]]) -> list[tuple[float, dict[str, Any]]]:
    """JSON text frames of one direction of a WebSocket (after the HTTP upgrade), each
    at the time of the packet that completed it; masked frames are unmasked."""
    marks, size = [], 0  # marks: (end offset in the stream, time)
    for t, body in packets:
        size += len(body)
        marks.append((size, t))
    stream = b"".join(body for _, body in packets)
    # a capture started on a live connection begins at a frame; a new one with the upgrade
    start = stream.find(b"\r\n\r\n") if stream[:5] in (b"GET /", b"HTTP/") else -1
    pos, out, k = (start + 4 if start >= 0 else 0), [], 0
    while pos + 2 <= len(stream):
        b0, b1 = stream[pos], stream[pos + 1]
        size, at = b1 & 0x7F, pos + 2
        if size == 126:
            size, at = int.from_bytes(stream[at : at + 2], "big"), at + 2
        elif size == 127:
            size, at = int.from_bytes(stream[at : at + 8], "big"), at + 8
        mask = stream[at : at + 4] if b1 & 0x80 else b""
        at += len(mask)
        end = at + size
        if end > len(stream):
            break
        payload = stream[at:end]
        if mask:
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        pos = end
        if b0 & 0x0F != 1:  # text frames only
            continue
        while marks[k][0] < end:
            k += 1
        try:
            decoded = json.loads(payload)
        except ValueError:
            continue
        if isinstance(decoded, dict):
            out.append((marks[k][1], decoded))
    return out


@dataclass
class AriTrace:
    """One channel as seen on the engine's ARI WebSocket."""

    caller: str = ""
    dtmf: list[float] = field(default_factory=list)  # ChannelDtmfReceived sent by Asterisk
    plays: list[float] = field(default_factory=list)  # play requests sent by the engine


def ari_traces(path: Path) -> dict[str, AriTrace]:
    """Per caller number: the DTMF events Asterisk sent and the play requests the engine
    sent over the event WebSocket (``RESTRequest``), timed on the wire."""
    connections: dict[tuple[int, int], list[tuple[float, int, bytes]]] = {}
    for t, sport, dport, seq, body in read_tcp(path):
        connections.setdefault((sport, dport), []).append((t, seq, body))
    channels: dict[str, AriTrace] = {}
    for (sport, dport), packets in connections.items():
        seen: set[int] = set()
        ordered = []
        for t, seq, body in packets:  # drop retransmissions
            if seq not in seen:
                seen.add(seq)
                ordered.append((t, body))
        if sport == ARI_PORT:
            for t, msg in ws_messages(ordered):
                raw = msg.get("channel")
                channel: dict[str, Any] = raw if isinstance(raw, dict) else {}
                cid = str(channel.get("id", ""))
                if msg.get("type") == "StasisStart":
                    trace = channels.setdefault(cid, AriTrace())
                    trace.caller = str((channel.get("caller") or {}).get("number", ""))
                elif msg.get("type") == "ChannelDtmfReceived":
                    channels.setdefault(cid, AriTrace()).dtmf.append(t)
        elif dport == ARI_PORT:
            for t, msg in ws_messages(ordered):
                uri = str(msg.get("uri", ""))
                if msg.get("type") == "RESTRequest" and msg.get("method") == "POST":
                    parts = uri.split("/")
                    if len(parts) >= 3 and parts[0] == "channels" and parts[2] == "play":
                        channels.setdefault(parts[1], AriTrace()).plays.append(t)
    return {c.caller: c for c in channels.values() if c.caller}


@dataclass
class CallTrace:
    caller: str = ""  # the From user: the channel's caller number in ARI events
    answered: float | None = None
    ended: float | None = None
    rtp_port: int | None = None
    infos: dict[int, float] = field(default_factory=dict)  # CSeq -> first transmission


@dataclass
class Turnarounds:
    values_ms: list[float]
    by_input_ms: list[list[float]]  # per input of DIALOGUE: its last key -> the next prompt
    late: int  # the next prompt had not started when the caller keyed the next input
    overlapped: int  # a prompt still played when its input began (the caller barged in)
    calls_measured: int
    peak_calls: int
    # on the engine path, each turnaround split at the ARI WebSocket (ms): "asterisk in"
    # (SIP INFO -> ChannelDtmfReceived sent), "engine" (-> play request sent),
    # "asterisk out" (-> first RTP packet)
    split_ms: dict[str, list[float]] = field(default_factory=dict)


def sip_traces(path: Path) -> dict[str, CallTrace]:
    calls: dict[str, CallTrace] = {}
    for t, sport, dport, payload in read_pcap(path):
        head, _, body = payload.decode("latin-1").partition("\r\n\r\n")
        lines = head.split("\r\n")
        hdr = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                hdr[name.strip().lower()] = value.strip()
        call_id = hdr.get("call-id") or hdr.get("i")
        cseq = (hdr.get("cseq") or "0 X").split()
        if not call_id or len(cseq) != 2:
            continue
        call = calls.setdefault(call_id, CallTrace())
        first = lines[0]
        if first.startswith("INVITE ") and not call.caller:
            found = re.search(r"sip:([^@>;]+)@", hdr.get("from") or hdr.get("f") or "")
            call.caller = found.group(1) if found else ""
        if first.startswith("INFO ") and dport == SIP_PORT:
            call.infos.setdefault(int(cseq[0]), t)
        elif first.startswith("BYE "):
            call.ended = call.ended or t
        elif first.startswith("SIP/2.0 200") and cseq[1] == "INVITE" and sport == SIP_PORT:
            found = re.search(r"m=audio (\d+)", body)
            if found and call.answered is None:
                call.answered, call.rtp_port = t, int(found.group(1))
    return calls


def turnarounds(sip: Path, rtp: Path, ari: Path | None = None) -> Turnarounds:
    """Per input: the SIP INFO with its last digit -> the first RTP packet Asterisk sends
    to that call afterwards (it sends none while it waits for digits); with an ARI
    capture, each split where it crossed the engine's WebSocket."""
    calls = sip_traces(sip)
    channels = ari_traces(ari) if ari is not None else {}
    split: dict[str, list[float]] = {
        "asterisk in": [], "engine": [], "asterisk out": [], "asterisk in+out": []
    }  # fmt: skip
    sent_rtp: dict[int, list[float]] = {}
    for t, sport, _, _ in read_pcap(rtp, payload=False):
        sent_rtp.setdefault(sport, []).append(t)
    for times in sent_rtp.values():
        times.sort()
    values: list[float] = []
    by_input: list[list[float]] = [[] for _ in DIGITS_PER_INPUT]
    late = overlapped = measured = 0
    spans = []
    edges = [sum(DIGITS_PER_INPUT[: i + 1]) for i in range(len(DIGITS_PER_INPUT))]
    for call in calls.values():
        if call.answered is None or call.rtp_port is None:
            continue
        end = call.ended or float("inf")
        spans.append((call.answered, end))
        sent = [call.infos[c] for c in sorted(call.infos)]
        if len(sent) != edges[-1]:
            continue
        measured += 1
        # only this call's packets (Asterisk may reuse a port after a call ends)
        times = [t for t in sent_rtp.get(call.rtp_port, []) if call.answered <= t <= end]
        channel = channels.get(call.caller)
        if channel is not None and len(channel.dtmf) != len(sent):
            channel = None  # digits lost or doubled on the way: no split for this call
        begin = 0
        for index, edge in enumerate(edges):
            first, last = sent[begin], sent[edge - 1]
            k = bisect.bisect_right(times, last)
            if bisect.bisect_right(times, first - 0.03) != k:
                overlapped += 1  # still playing (a packet every 20 ms) at the first key
            nxt = sent[edge] if edge < len(sent) else end
            if k < len(times) and times[k] < nxt:
                values.append((times[k] - last) * 1000)
                if channel is not None:
                    event = channel.dtmf[edge - 1]
                    j = bisect.bisect_right(channel.plays, event)
                    if j < len(channel.plays) and channel.plays[j] <= times[k]:
                        split["asterisk in"].append((event - last) * 1000)
                        split["engine"].append((channel.plays[j] - event) * 1000)
                        split["asterisk out"].append((times[k] - channel.plays[j]) * 1000)
                        # the same turnaround with an engine that took no time at all
                        split["asterisk in+out"].append(
                            split["asterisk in"][-1] + split["asterisk out"][-1]
                        )
            else:
                late += 1
                values.append((nxt - last) * 1000 if nxt != float("inf") else 60_000.0)
            by_input[index].append(values[-1])
            begin = edge
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    peak = now = 0
    for _, d in events:
        now += d
        peak = max(peak, now)
    return Turnarounds(
        sorted(values), [sorted(v) for v in by_input], late, overlapped, measured, peak,
        {name: sorted(v) for name, v in split.items() if v},
    )  # fmt: skip


def pct(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def p50_p99(sorted_ms: list[float]) -> tuple[float, float]:
    return pct(sorted_ms, 0.50), pct(sorted_ms, 0.99)


async def engine_steps(
    env: dict[str, str], request_ids: set[str]
) -> tuple[list[float], list[list[float]], int]:
    """From the engine's call-step log: collect ended -> next play started (ms), all and
    per input of DIALOGUE (the n-th such pair of a call), and how many of these requests
    are completed."""
    from sqlalchemy import select

    from ivr.settings import load_settings
    from ivr.store.db import Database
    from ivr.store.tables import CallRequest, CallSession, CallStep

    db = Database(load_settings(env=env).database_url)
    try:
        async with db.sessions() as s:
            completed = len(list(await s.scalars(
                select(CallRequest.id).where(CallRequest.id.in_(request_ids),
                                             CallRequest.status == "completed"))))  # fmt: skip
            rows = (await s.execute(
                select(CallStep.session_id, CallStep.seq, CallStep.step, CallStep.started_at,
                       CallStep.ended_at)
                .join(CallSession, CallSession.id == CallStep.session_id)
                .where(CallSession.call_request_id.in_(request_ids))
                .order_by(CallStep.session_id, CallStep.seq))).all()  # fmt: skip
    finally:
        await db.close()
    values = []
    by_input: list[list[float]] = [[] for _ in DIALOGUE]
    index = 0
    for a, b in itertools.pairwise(rows):
        if a[0] != b[0]:
            index = 0
        elif a[2] == "collect" and b[2] == "play" and a[4] is not None:
            values.append((b[3] - a[4]).total_seconds() * 1000)
            if index < len(by_input):
                by_input[index].append(values[-1])
            index += 1
    return sorted(values), [sorted(v) for v in by_input], completed


# ------------------------------------------------------------------ one run


@dataclass
class Run:
    system: str  # "engine-ari", "engine-agi" or "baseline"
    concurrency: int
    calls: int
    ok: int  # engine: completed requests; baseline: calls SIPp saw through
    sipp_failed: int
    peak_calls: int
    turnarounds: int
    late: int
    barged_in: int
    calls_measured: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    asterisk_cpu_s_per_call: float
    engine_cpu_s_per_call: float  # on a baseline run: what the idle engine burnt meanwhile
    sipp_cpu_s_per_call: float
    machine_busy_pct: float
    wall_s: float
    steps_p50_ms: float | None = None
    steps_p99_ms: float | None = None
    # per input of DIALOGUE (what was keyed -> the next prompt): p50 and p99 ms
    by_input_ms: list[tuple[float, float]] = field(default_factory=list)
    steps_by_input_ms: list[tuple[float, float]] = field(default_factory=list)  # engine log
    # turnaround split at the engine's ARI WebSocket: part -> (p50, p99) ms
    split_ms: dict[str, tuple[float, float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def one_run(
    system: str, callers: list[Caller], *, concurrency: int, ast: BenchAsterisk,
    engine_pid: int | None, env: dict[str, str], workdir: Path, pauses: list[int],
    gap_ms: int, rate: float, call_s: float, keep: bool = False, split: bool = False,
) -> Run:  # fmt: skip
    n = len(callers)  # placed ``concurrency`` at a time
    endpoint = ENDPOINTS[system]
    engine = system != "baseline"
    rows = []
    for i, c in enumerate(callers):
        did = c.did if engine else f"0999{i:07d}"
        rows.append([did, c.mobile, endpoint, *c.pan])
    end_timeout = int((call_s - sum(pauses) / 1000 + 30) * 1000)
    scenario = scenario_xml(pauses, gap_ms, end_timeout)
    timeout_s = call_s * math.ceil(n / concurrency) + n / rate + 90
    tag = f"{system}-{concurrency}"
    sip_pcap, rtp_pcap = workdir / f"{tag}-sip.pcap", workdir / f"{tag}-rtp.pcap"
    sip_capture = Capture(sip_pcap, SIP_FILTER, 2048, (0, SIP_PORT))
    rtp_capture = Capture(rtp_pcap, RTP_FILTER, 64, (free_rtp_port(), SIPP_MEDIA_PORT))
    # the engine's ARI WebSocket too (the probe: a UDP packet to a port nobody uses)
    ari_pcap: Path | None = None
    ari_capture: contextlib.AbstractAsyncContextManager[object] = contextlib.nullcontext()
    if system == "engine-ari" and split:
        ari_pcap, probe = workdir / f"{tag}-ari.pcap", free_udp_port()
        ari_filter = f"tcp port {ARI_PORT} or udp dst port {probe}"
        ari_capture = Capture(ari_pcap, ari_filter, 65535, (0, probe))
    async with sip_capture, rtp_capture, ari_capture:
        a0, e0, (b0, t0) = cpu_s(ast.pid), cpu_s(engine_pid), machine_busy()
        started = time.monotonic()
        sipp = await run_sipp(workdir, rows, scenario, rate, timeout_s, concurrency)
        wall = time.monotonic() - started
        await asyncio.sleep(1.0)
        a1, e1, (b1, t1) = cpu_s(ast.pid), cpu_s(engine_pid), machine_busy()
    if ast.proc is not None and ast.proc.returncode is not None:
        raise SystemExit("the bench Asterisk died during the run")
    ta = turnarounds(sip_pcap, rtp_pcap, ari_pcap)
    if not keep:
        for pcap in (sip_pcap, rtp_pcap, ari_pcap):
            if pcap is not None:
                pcap.unlink()
    steps: list[float] = []
    steps_by_input: list[list[float]] = []
    ok = sipp.successful
    if engine:
        ids = {c.request_id for c in callers}
        for _ in range(40):  # the engine's session log is written behind the calls
            steps, steps_by_input, ok = await engine_steps(env, ids)
            if ok >= sipp.successful:
                break
            await asyncio.sleep(0.25)
    return Run(
        system=system, concurrency=concurrency, calls=n, ok=ok, sipp_failed=sipp.failed,
        peak_calls=ta.peak_calls, turnarounds=len(ta.values_ms), late=ta.late,
        barged_in=ta.overlapped, calls_measured=ta.calls_measured,
        p50_ms=pct(ta.values_ms, 0.50), p99_ms=pct(ta.values_ms, 0.99),
        max_ms=ta.values_ms[-1] if ta.values_ms else float("nan"),
        asterisk_cpu_s_per_call=(a1 - a0) / n,
        engine_cpu_s_per_call=(e1 - e0) / n,
        sipp_cpu_s_per_call=sipp.cpu_s / n,
        machine_busy_pct=100 * (b1 - b0) / max(1, t1 - t0), wall_s=wall,
        steps_p50_ms=pct(steps, 0.5) if steps else None,
        steps_p99_ms=pct(steps, 0.99) if steps else None,
        by_input_ms=[p50_p99(v) for v in ta.by_input_ms],
        steps_by_input_ms=[p50_p99(v) for v in steps_by_input],
        split_ms={k: p50_p99(v) for k, v in ta.split_ms.items()},
        errors=sipp.errors,
    )  # fmt: skip


async def settle(ast: BenchAsterisk, timeout_s: float = 30) -> None:
    """Wait until the bench Asterisk has no channels left, then a short breather."""
    for _ in range(int(timeout_s * 2)):
        if await ast.channels() <= 0:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)


# ------------------------------------------------------------------ report


def fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None or v != v else format(v, spec)


def print_table(runs: list[Run]) -> None:
    print(
        f"{'system':10} {'conc':>4} {'calls':>5} {'ok':>5} {'fail':>4} {'peak':>4} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7} {'late':>4} {'barge':>5} {'eng cpu':>8} {'ast cpu':>8} "
        f"{'sipp':>6} {'box %':>5} {'steps p50/p99':>14}"
    )
    for r in runs:
        steps = (
            f"{fmt(r.steps_p50_ms)}/{fmt(r.steps_p99_ms)}" if r.steps_p50_ms is not None else "-"
        )
        print(
            f"{r.system:10} {r.concurrency:>4} {r.calls:>5} {r.ok:>5} {r.calls - r.ok:>4} "
            f"{r.peak_calls:>4} "
            f"{fmt(r.p50_ms):>7} {fmt(r.p99_ms):>7} {fmt(r.max_ms):>7} {r.late:>4} "
            f"{r.barged_in:>5} "
            f"{fmt(r.engine_cpu_s_per_call, '.3f'):>8} {fmt(r.asterisk_cpu_s_per_call, '.3f'):>8} "
            f"{fmt(r.sipp_cpu_s_per_call, '.3f'):>6} {fmt(r.machine_busy_pct, '.0f'):>5} "
            f"{steps:>14}"
        )
        lines = [
            ("per input p50/p99 ms", list(zip(INPUT_NAMES, r.by_input_ms, strict=True))
             if r.by_input_ms else []),
            ("engine steps per input", list(zip(INPUT_NAMES, r.steps_by_input_ms, strict=True))
             if r.steps_by_input_ms else []),
            ("split at the ARI WebSocket p50/p99 ms", list(r.split_ms.items())),
        ]  # fmt: skip
        for label, named in lines:
            if named:
                parts = [f"{name} {fmt(p50)}/{fmt(p99)}" for name, (p50, p99) in named]
                print(f"          {label}: {', '.join(parts)}")
        for e in r.errors:
            print(f"          sipp: {e}")


def comparisons(runs: list[Run]) -> list[dict[str, Any]]:
    out = []
    for e in (r for r in runs if r.system != "baseline"):
        b = next(
            (r for r in runs if r.system == "baseline" and r.concurrency == e.concurrency), None
        )
        row: dict[str, Any] = {
            "system": e.system,
            "concurrency": e.concurrency,
            "calls": e.calls,
            "failed_calls": e.calls - e.ok,
            "p99_ms": e.p99_ms,
            "p99_vs_baseline": e.p99_ms / b.p99_ms if b and b.p99_ms else None,
            "p50_vs_baseline": e.p50_ms / b.p50_ms if b and b.p50_ms else None,
            "engine_cpu_vs_asterisk": (e.engine_cpu_s_per_call or 0) / e.asterisk_cpu_s_per_call
            if e.asterisk_cpu_s_per_call
            else None,
            "asterisk_cpu_vs_baseline": e.asterisk_cpu_s_per_call / b.asterisk_cpu_s_per_call
            if b and b.asterisk_cpu_s_per_call
            else None,
        }
        floor = e.split_ms.get("asterisk in+out")
        if floor is not None:
            # the two Asterisk legs of each ARI turnaround (--split): what an engine that
            # took no time at all would get; against the baseline, the most ARI can reach
            row["ari_floor_p99_ms"] = floor[1]
            row["ari_floor_p99_vs_baseline"] = floor[1] / b.p99_ms if b and b.p99_ms else None
        row["goals"] = {
            "zero_failed": row["failed_calls"] == 0,
            "p99_le_50ms": e.p99_ms <= 50,
            "p99_le_2x_baseline": row["p99_vs_baseline"] is not None
            and row["p99_vs_baseline"] <= 2,
            "engine_cpu_le_half_asterisk": row["engine_cpu_vs_asterisk"] is not None
            and row["engine_cpu_vs_asterisk"] <= 0.5,
        }
        out.append(row)
    return out


def print_comparisons(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'system':10} {'conc':>5} {'failed':>6} {'p99 ms':>7} {'p99/base':>8} {'p50/base':>8} "
        f"{'eng/ast cpu':>11} {'ast/base cpu':>12}  goals (0 failed, p99<=50, <=2x base, cpu<=1/2)"
    )
    for r in rows:
        g = r["goals"]
        marks = " ".join("ok" if g[k] else "NO" for k in g)
        print(
            f"{r['system']:10} {r['concurrency']:>5} {r['failed_calls']:>6} {fmt(r['p99_ms']):>7} "
            f"{fmt(r['p99_vs_baseline'], '.2f'):>8} {fmt(r['p50_vs_baseline'], '.2f'):>8} "
            f"{fmt(r['engine_cpu_vs_asterisk'], '.2f'):>11} "
            f"{fmt(r['asterisk_cpu_vs_baseline'], '.2f'):>12}  {marks}"
        )
    floors = [r for r in rows if "ari_floor_p99_ms" in r]
    if floors:
        print("ARI floor (the Asterisk legs of each ARI turnaround, as if the engine took no "
              "time; --split):")  # fmt: skip
        for r in floors:
            print(
                f"{r['system']:10} {r['concurrency']:>5}  p99 {fmt(r['ari_floor_p99_ms'])} ms"
                f" = {fmt(r['ari_floor_p99_vs_baseline'], '.2f')}x the baseline's p99"
            )


# ------------------------------------------------------------------ PNG (no plotting library)

_FONT = {  # 5x7, rows top to bottom
    "0": ".###.#...##..###.#.###..##...#.###.", "1": "..#...##....#....#....#....#...###.",
    "2": ".###.#...#....#...#...#...#...#####", "3": "#####...#...#.....#.....##...#.###.",
    "4": "...#...##..#.#.#..#.#####...#....#.", "5": "######....####.....#....##...#.###.",
    "6": "..##..#...#....####.#...##...#.###.", "7": "#####....#...#...#...#....#....#...",
    "8": ".###.#...##...#.###.#...##...#.###.", "9": ".###.#...##...#.####....#...#..##..",
    "A": ".###.#...##...#######...##...##...#", "B": "####.#...##...#####.#...##...#####.",
    "C": ".###.#...##....#....#....#...#.###.", "D": "###..#..#.#...##...##...##..#.###..",
    "E": "######....#....####.#....#....#####", "F": "######....#....####.#....#....#....",
    "G": ".###.#...##....#.####...##...#.####", "H": "#...##...##...#######...##...##...#",
    "I": ".###...#....#....#....#....#...###.", "J": "..###...#....#....#....#.#..#..##..",
    "K": "#...##..#.#.#..##...#.#..#..#.#...#", "L": "#....#....#....#....#....#....#####",
    "M": "#...###.###.#.##.#.##...##...##...#", "N": "#...##...###..##.#.##..###...##...#",
    "O": ".###.#...##...##...##...##...#.###.", "P": "####.#...##...#####.#....#....#....",
    "Q": ".###.#...##...##...##.#.##..#..##.#", "R": "####.#...##...#####.#.#..#..#.#...#",
    "S": ".#####....#.....###.....#....#####.", "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.", "V": "#...##...##...##...##...#.#.#...#..",
    "W": "#...##...##...##.#.##.#.##.#.#.#.#.", "X": "#...##...#.#.#...#...#.#.#...##...#",
    "Y": "#...##...#.#.#...#....#....#....#..", "Z": "#####....#...#...#...#...#....#####",
    ".": "..........................##...##..", "-": "...............#####...............",
    "/": ".........#...#...#...#...#.........", "(": "...#...#...#....#....#.....#.....#.",
    ")": ".#.....#.....#....#....#...#...#...", "%": "##...##..#...#...#...#...#..##...##",
    ":": "......##...##........##...##.......", "=": "..........#####.....#####..........",
    "<": "...#...#...#...#.....#.....#.....#.", ">": ".#.....#.....#.....#...#...#...#...",
    ",": ".....................##....#...#...", " ": "." * 35,
}  # fmt: skip
_COLORS = {"engine-ari": (31, 119, 180), "engine-agi": (148, 103, 189),
           "baseline": (44, 160, 44), "goal": (214, 39, 40),
           "grid": (225, 225, 225), "axis": (60, 60, 60)}  # fmt: skip


class Canvas:
    def __init__(self, w: int, h: int) -> None:
        self.w, self.h = w, h
        self.px = bytearray(b"\xff" * (w * h * 3))

    def dot(self, x: int, y: int, rgb: tuple[int, int, int], r: int = 0) -> None:
        for yy in range(y - r, y + r + 1):
            for xx in range(x - r, x + r + 1):
                if 0 <= xx < self.w and 0 <= yy < self.h:
                    i = (yy * self.w + xx) * 3
                    self.px[i : i + 3] = bytes(rgb)

    def line(self, x0: float, y0: float, x1: float, y1: float, rgb: tuple[int, int, int],
             r: int = 0, dash: int = 0) -> None:  # fmt: skip
        steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        for s in range(steps + 1):
            if dash and (s // dash) % 2:
                continue
            t = s / steps
            self.dot(round(x0 + (x1 - x0) * t), round(y0 + (y1 - y0) * t), rgb, r)

    def text(self, x: int, y: int, s: str, rgb: tuple[int, int, int] = (0, 0, 0),
             scale: int = 2, anchor: str = "left") -> None:  # fmt: skip
        width = len(s) * 6 * scale
        x -= {"left": 0, "center": width // 2, "right": width}[anchor]
        for ch in s.upper():
            glyph = _FONT.get(ch, _FONT[" "])
            for k, bit in enumerate(glyph):
                if bit == "#":
                    gx, gy = k % 5, k // 5
                    for dy in range(scale):
                        for dx in range(scale):
                            self.dot(x + gx * scale + dx, y + gy * scale + dy, rgb)
            x += 6 * scale

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.px[y * self.w * 3 : (y + 1) * self.w * 3]) for y in range(self.h)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            return (
                struct.pack(">I", len(data))
                + kind
                + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
            )

        head = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head)
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))  # fmt: skip


def plot(runs: list[Run], path: Path) -> None:
    """Turnaround p50 (thin) and p99 (thick) against concurrency, log scale, both systems."""
    c = Canvas(900, 600)
    left, right, top, bottom = 90, 870, 60, 460
    xs = sorted({r.concurrency for r in runs})
    values = [v for r in runs for v in (r.p50_ms, r.p99_ms) if v == v and v > 0] + [50.0]
    lo = 10 ** math.floor(math.log10(max(0.1, min(values))))
    hi = 10 ** math.ceil(math.log10(max(values) * 1.2))
    x_max = max(xs) * 1.05 if xs else 1

    def px(x: float) -> float:
        return left + (right - left) * x / x_max

    def py(v: float) -> float:
        return bottom - (bottom - top) * (math.log10(v) - math.log10(lo)) / (
            math.log10(hi) - math.log10(lo)
        )

    decade = lo
    while decade <= hi:
        for m in (1, 2, 5):
            v = decade * m
            if lo <= v <= hi:
                c.line(left, py(v), right, py(v), _COLORS["grid"])
                c.text(left - 8, round(py(v)) - 7, f"{v:g}", _COLORS["axis"], anchor="right")
        decade *= 10
    for x in xs:
        c.line(px(x), top, px(x), bottom, _COLORS["grid"])
        c.text(round(px(x)), bottom + 10, str(x), _COLORS["axis"], anchor="center")
    c.line(left, bottom, right, bottom, _COLORS["axis"], r=1)
    c.line(left, top, left, bottom, _COLORS["axis"], r=1)
    c.line(left, py(50), right, py(50), _COLORS["goal"], dash=8)
    c.text(right - 4, round(py(50)) - 18, "GOAL P99 50 MS", _COLORS["goal"], anchor="right")
    for system in ("baseline", *PATHS.values()):
        for q, width in (("p50_ms", 0), ("p99_ms", 2)):
            pts = [
                (px(r.concurrency), py(getattr(r, q)))
                for r in sorted(runs, key=lambda r: r.concurrency)
                if r.system == system and getattr(r, q) == getattr(r, q) and getattr(r, q) > 0
            ]
            for (x0, y0), (x1, y1) in itertools.pairwise(pts):
                c.line(x0, y0, x1, y1, _COLORS[system], r=width // 2 + (1 if width else 0))
            for dot_x, dot_y in pts:
                c.dot(round(dot_x), round(dot_y), _COLORS[system], r=4 if width else 3)
    c.text(450, 12, "PROMPT TURNAROUND: LAST DTMF (SIP INFO) -> NEXT PROMPT (RTP)", anchor="center")
    c.text(450, 494, "CONCURRENT REGISTRATION CALLS", _COLORS["axis"], anchor="center")
    c.text(left - 80, top - 26, "MS (LOG SCALE)", _COLORS["axis"])
    ly = 530
    for system, label in (
        ("engine-ari", "ENGINE (ARI)"),
        ("engine-agi", "ENGINE (FASTAGI)"),
        ("baseline", "DIALPLAN BASELINE"),
    ):
        c.line(left, ly + 7, left + 30, ly + 7, _COLORS[system], r=2)
        c.text(left + 40, ly, f"{label}: P99 THICK, P50 THIN", _COLORS[system])
        ly += 24
    path.write_bytes(c.png())


# ------------------------------------------------------------------ main


async def main(args: argparse.Namespace) -> int:
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    calls = {n: max(n, args.min_calls) for n in levels}  # placed n at a time
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not paths or any(p not in PATHS for p in paths):
        raise SystemExit(f"--paths: a comma-separated list of {', '.join(PATHS)}")
    if max(levels) > (RTP_RANGE[1] - RTP_RANGE[0] + 1) // 2:
        raise SystemExit(f"the RTP range {RTP_RANGE} carries at most 1,000 calls")
    for tool in ("sipp", "dumpcap"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (Debian: sip-tester, wireshark-common)")
    helper = Asterisk(ROOT)
    helper.setup()  # provisioned once (no-op after)
    root = ROOT / "var" / "asterisk" / "root"
    if not (root / "usr/sbin/asterisk").exists():
        root = Path("/")
    sounds_dir = root / "var/lib/asterisk/sounds/arspay"
    out_dir = Path(args.out)
    os.makedirs(out_dir, exist_ok=True)
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="arspay-bench-ivr-")
    workdir = Path(tmp)
    procs: list[asyncio.subprocess.Process | None] = []
    ast: BenchAsterisk | None = None
    runs: list[Run] = []
    event_loop = "?"  # as the engine reports it when ready
    interrupted = False  # by a signal: the results already in --out stay as they are
    try:
        env = bench_env(workdir, sounds_dir, "http://127.0.0.1:1")
        sounds, seconds = await prepare_prompts(env)
        ast = BenchAsterisk(root, asterisk_files(sounds))
        await ast.start(workdir)
        await ari_ready()
        sandbox, url = await start_logged(
            [sys.executable, "-m", "ivr.cli", "sandbox-pg", "--port", "0", "--latency-ms",
             "30", "--ledger", str(workdir / "ledger.db")],
            env, workdir / "sandbox.log", r"http://127\.0\.0\.1:\d+", 30,
        )  # fmt: skip
        procs.append(sandbox)
        env = bench_env(workdir, sounds_dir, url)
        callers = await prepare_requests(
            env, sum(calls.values()) * len(paths), max(100, 2 * max(levels) * len(paths))
        )
        engine, ready = await start_logged(
            [sys.executable, "-m", "ivr.cli", "engine", "run"],
            env, workdir / "engine.log", r"engine ready.*event loop (\w+)", 60,
        )  # fmt: skip
        procs.append(engine)
        event_loop = ready.rsplit(" ", 1)[-1]
        think, gap = args.think_ms, args.gap_ms
        pauses = [round(sum(seconds[p] for p in prompts) * 1000) + think for prompts, _ in DIALOGUE]
        pauses[0] += ANSWER_WAIT_MS
        keying = sum((n - 1) * gap for n in DIGITS_PER_INPUT) / 1000
        call_s = sum(pauses) / 1000 + keying + sum(seconds[p] for p in AFTER) + 2
        print(
            f"setup {time.monotonic() - started:.0f} s; each call ~{call_s:.0f} s "
            f"({sum(DIGITS_PER_INPUT)} digits as SIP INFO {gap} ms apart, keyed {think} ms after "
            f"each prompt ends); calls start at {args.rate:g}/s; engine on {event_loop}",
            flush=True,
        )
        offset = 0
        for n in levels:
            systems = [PATHS[p] for p in paths] + ([] if args.no_baseline else ["baseline"])
            first = offset
            for system in systems:
                if system == "baseline":  # the callers and cards of the level's first run
                    mine = callers[first : first + calls[n]]
                else:  # each engine path its own call requests
                    mine, offset = callers[offset : offset + calls[n]], offset + calls[n]
                await settle(ast)
                print(f"-- {system}, {n} concurrent calls ({calls[n]} in all)", flush=True)
                run = await one_run(
                    system, mine, concurrency=n, ast=ast, engine_pid=engine.pid, env=env,
                    workdir=workdir, pauses=pauses, gap_ms=gap, rate=args.rate, call_s=call_s,
                    keep=args.keep, split=args.split,
                )  # fmt: skip
                runs.append(run)
                print_table([run])
                if engine.returncode is not None:
                    raise SystemExit(f"the engine exited ({engine.returncode}); see {workdir}")
    except asyncio.CancelledError:
        interrupted = True
        raise
    finally:
        for proc in reversed(procs):
            await stop_process(proc)
        if ast is not None:
            await ast.stop()
        if runs:
            print("\n== IVR load (turnaround = last DTMF -> next prompt's first RTP packet, "
                  "at Asterisk; CPU in s per call)")  # fmt: skip
            print_table(runs)
        if runs and interrupted:
            print(f"interrupted: nothing written to {out_dir}")
        elif runs:
            if args.merge and (out_dir / "ivr_load.json").exists():
                # an earlier invocation's levels, unless this one ran them again
                old = json.loads((out_dir / "ivr_load.json").read_text())
                fresh = {(r.system, r.concurrency) for r in runs}
                for r in old.get("runs", []):  # before FastAGI runs, "engine" was ARI's
                    r["system"] = {"engine": "engine-ari"}.get(r["system"], r["system"])
                kept = [Run(**r) for r in old.get("runs", [])
                        if (r["system"], r["concurrency"]) not in fresh]  # fmt: skip
                order = [*PATHS.values(), "baseline"]
                runs = sorted(kept + runs, key=lambda r: (r.concurrency, order.index(r.system)))
                levels = sorted({r.concurrency for r in runs})
                print("\n(merged with the runs already in ivr_load.json)")
                print_table(runs)
            rows = comparisons(runs)
            print_comparisons(rows)
            result = {
                "bench": "ivr_load",
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "params": {"concurrency": levels, "min_calls": args.min_calls,
                           "split": args.split, "rate_per_s": args.rate, "gap_ms": args.gap_ms,
                           "think_ms": args.think_ms, "cpus": os.cpu_count(),
                           "event_loop": event_loop},
                "goals": "200 concurrent calls, 0 failed; turnaround p99 <= 50 ms and <= 2x the "
                         "dialplan baseline; engine CPU per call <= 1/2 of Asterisk's",
                "runs": [asdict(r) for r in runs],
                "comparison": rows,
                "wall_s": time.monotonic() - started,
            }  # fmt: skip
            (out_dir / "ivr_load.json").write_text(json.dumps(result, indent=2) + "\n")
            plot(runs, out_dir / "ivr_load.png")
            print(f"wrote {out_dir}/ivr_load.json and ivr_load.png "
                  f"({time.monotonic() - started:.0f} s in all)")  # fmt: skip
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if runs and all(r.ok == r.calls for r in runs) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", default="10,100,200",
                        help="comma-separated numbers of simultaneous calls")  # fmt: skip
    parser.add_argument("--min-calls", type=int, default=40,
                        help="calls per level at least (N at a time): enough turnarounds "
                        "for a p99")  # fmt: skip
    parser.add_argument("--rate", type=float, default=40.0, help="calls started per second")
    parser.add_argument("--gap-ms", type=int, default=250, help="between two digits")
    parser.add_argument("--think-ms", type=int, default=300,
                        help="after a prompt's end, before the first digit")  # fmt: skip
    parser.add_argument("--no-baseline", action="store_true", help="engine runs only")
    parser.add_argument("--paths", default="ari,agi",
                        help="the engine's ways in, comma-separated: ari (Stasis over the ARI "
                        "WebSocket), agi (FastAGI from the dialplan)")  # fmt: skip
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--merge", action="store_true",
                        help="keep the other levels already in <out>/ivr_load.json (a sweep in "
                        "several runs, each under 10 minutes)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--split", action="store_true",
                        help="also capture the engine's ARI WebSocket and split each ARI "
                        "turnaround there (a third capture, on the engine-ari runs only: "
                        "it costs the box CPU the other rows do not pay)")  # fmt: skip
    sys.exit(run_main(main(parser.parse_args())))
