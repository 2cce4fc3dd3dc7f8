"""Issue #35 on the real stack: ``arspay up`` starts everything and stays up; the console
it prints answers and a merchant user logs in (Playwright, Debian's Chromium); SIPp,
registered and authenticated as the softphone account it prints, calls a request's
number and registers a card with real DTMF; SIGINT (Ctrl-C) stops everything it
started — no process of the run, no Asterisk, nothing mounted in the Asterisk root."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from ivr.testing.asterisk import Asterisk
from ivr.testing.demo import CARD, CONVERSATIONS, converse
from ivr.testing.sip_account import SipAccount, register
from tests.cli.tables import problems
from tests.console.browser import artifacts_dir, open_browser
from tests.stack import free_port

from .conftest import CANARY_DIRS, REPO, SENT_DIGITS

MOBILE = "01012345678"
PASSWORD = "correct horse battery"


def _env(var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ARSPAY_DATABASE_URL"}
    return env | {
        "ARSPAY_CONFIG": "/nonexistent.toml",
        "ARSPAY_PATHS_VAR_DIR": str(var),
        "ARSPAY_API_PORT": str(free_port()),
        "ARSPAY_GATEWAY_SANDBOX_PORT": str(free_port()),
        "ARSPAY_GATEWAY_SANDBOX_LEDGER": str(var / "sandbox-pg" / "ledger.db"),
        "ARSPAY_VAULT_KEY_FILE": str(var / "vault" / "kek.key"),
        "ARSPAY_VAULT_FINGERPRINT_KEY_FILE": str(var / "vault" / "fingerprint.key"),
        "COLUMNS": "80",
    }


def _cli(env: dict[str, str], *args: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, "-m", "ivr.cli", "--json", *args],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _processes_of(var: Path) -> list[str]:
    """Live processes whose environment names this run's var dir (ours excepted)."""
    needle = f"ARSPAY_PATHS_VAR_DIR={var}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(f"{pid}: {cmdline.decode(errors='replace')}")
    return found


async def _log_in(url: str, email: str) -> None:
    async with open_browser(artifacts_dir()) as browser:
        page = await browser.new_page(url)
        await page.goto("/console/login")
        await page.fill("input[name=email]", email)
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await expect(page.get_by_test_id("who")).to_contain_text(email)
        await browser.screenshot(page, "up-console-login")


@pytest.fixture
def own_asterisk(asterisk: Asterisk) -> Iterator[Asterisk]:
    """`arspay up` starts (and stops) its own Asterisk: the session's is put back after."""
    asterisk.stop()
    try:
        yield asterisk
    finally:
        asterisk.start()


def test_up_serves_the_console_and_a_softphone_call_and_ctrl_c_stops_it_all(
    own_asterisk: Asterisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    var = tmp_path / "var"
    env = _env(var)
    CANARY_DIRS.append(var)
    ready = tmp_path / "ready.json"
    out = (tmp_path / "up.out").open("wb")
    started = time.monotonic()
    up = subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "up", "--caller-id", "010-1234-5678",
         "--ready-file", str(ready)],
        env=env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while not ready.exists():
            assert up.poll() is None, (tmp_path / "up.out").read_text()
            assert time.monotonic() < deadline, "arspay up not ready in 600 s"
            time.sleep(0.5)
        print(f"arspay up: ready after {time.monotonic() - started:.1f} s")
        time.sleep(0.5)  # the summary is printed just after the ready file is written
        summary = json.loads(ready.read_text())
        printed = (tmp_path / "up.out").read_text()
        assert "arspay is up" in printed
        assert summary["softphone_password"] in printed
        assert problems(printed) == []

        pool = "0505-000-0000..0505-000-0009"
        subprocess.run([sys.executable, "-m", "ivr.cli", "dids", "import", pool],
                       env=env, capture_output=True, check=True)  # fmt: skip
        merchant = str(_cli(env, "merchants", "create", "행복치과")[0]["id"])
        customer = str(_cli(env, "customers", "create", merchant, "--mobile", MOBILE)[0]["id"])
        request = _cli(env, "requests", "create", merchant, customer, "--product", "임플란트")[0]
        adder = env | {"ARSPAY_NEW_USER_PASSWORD": PASSWORD}
        _cli(adder, "console", "add-user", "clinic@demo.test", "--role", "merchant",
             "--merchant", merchant)  # fmt: skip

        # The console the summary names answers, and a merchant user logs in.
        console = str(summary["console"]).split()[0]
        asyncio.run(_log_in(console.removesuffix("/console/"), "clinic@demo.test"))

        # SIPp as the printed softphone account: REGISTER, then the registration call.
        host, port = str(summary["softphone"]).split("@")[1].rsplit(":", 1)
        account = SipAccount("softphone", str(summary["softphone_password"]))
        wrong = SipAccount("softphone", "not-the-password")
        assert not asyncio.run(register(wrong, target=(host, int(port)), workdir=tmp_path)).ok
        registered = asyncio.run(register(account, target=(host, int(port)), workdir=tmp_path))
        assert registered.ok, registered.errors
        SENT_DIGITS.extend(digits for _, digits in CONVERSATIONS["register"])
        monkeypatch.setenv("ARSPAY_CONFIG", env["ARSPAY_CONFIG"])  # the payer reads its DB
        monkeypatch.setenv("ARSPAY_PATHS_VAR_DIR", str(var))
        did = str(request["did"]).replace("-", "")
        code = asyncio.run(converse("register", did, MOBILE, account=account,
                                    target=(host, int(port))))  # fmt: skip
        assert code == 0
        print(
            f"arspay up: card registered by the softphone after {time.monotonic() - started:.1f} s"
        )
        [card] = _cli(env, "cards", "list", merchant)
        assert card["card"] == f"{CARD[:6]}******{CARD[-4:]}"
        assert _cli(env, "requests", "show", str(request["id"]))[0]["status"] == "completed"
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)  # what Ctrl-C in its terminal sends
        code = up.wait(90)
        out.close()
    printed = (tmp_path / "up.out").read_text()
    assert code == 0, printed
    assert "asterisk: stopped" in printed
    assert _processes_of(var) == []
    assert not own_asterisk.is_running()
    pidfile = REPO / "var" / "asterisk" / "asterisk.pid"
    assert not pidfile.exists()
    root = str(REPO / "var" / "asterisk" / "root")
    assert [m for m in Path("/proc/mounts").read_text().splitlines() if root in m] == []
