"""``arspay up``: the whole stack on this machine for real use, until Ctrl-C
(:mod:`ivr.onebox`), with a readiness summary: where the console and the API answer,
the softphone account and how to take a call with it."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import typer

from ivr.cli.app import app, emit, state
from ivr.errors import ArspayError
from ivr.onebox import SANDBOX_KEY, SANDBOX_SECRET, OneBox, child_env, lan_address
from ivr.settings import Settings, load_settings
from ivr.telephony import softphone as softphone_account


def _overrides(settings: Settings, *, softphone: bool, lan: bool, caller_id: str) -> dict[str, str]:
    """The settings ``up`` fixes for its children, as ``ARSPAY_*`` variables."""
    env: dict[str, str] = {}
    if softphone:
        env["ARSPAY_ASTERISK_SOFTPHONE"] = "true"
        if lan:
            env["ARSPAY_ASTERISK_SOFTPHONE_BIND"] = lan_address()
        if caller_id:  # 010-1234-5678 as people write it
            env["ARSPAY_ASTERISK_SOFTPHONE_CALLER_ID"] = caller_id.replace("-", "").strip()
    gw = settings.gateway
    if gw.kind == "sandbox":  # the engine talks to the sandbox this command starts
        env["ARSPAY_GATEWAY_BASE_URL"] = f"http://{gw.sandbox_host}:{gw.sandbox_port}"
        if not (gw.api_key and gw.api_secret.get_secret_value()):
            env["ARSPAY_GATEWAY_API_KEY"] = SANDBOX_KEY
            env["ARSPAY_GATEWAY_API_SECRET"] = SANDBOX_SECRET
    return env


def summary(settings: Settings, asterisk: dict[str, str], var_dir: Path) -> dict[str, Any]:
    """What a person needs to use the running stack (one record)."""
    api = f"http://{settings.api.host}:{settings.api.port}"
    a, gw = settings.asterisk, settings.gateway
    row: dict[str, Any] = {
        "console": f"{api}/console/  (users: arspay console add-user)",
        "api": f"{api}/v1  (OpenAPI {api}/openapi.json; keys: arspay keys create)",
        "asterisk": f"{asterisk['version']}, SIP 127.0.0.1:{a.sip_port}, ARI {a.ari_url}",
        "pg": f"sandbox {gw.base_url}" if gw.kind == "sandbox" else f"{gw.kind} {gw.base_url}",
    }
    if a.softphone:
        account = softphone_account.ensure(settings)
        row |= {
            "softphone": account.uri,
            "softphone_password": account.password.get_secret_value(),
            "softphone_caller_id": account.caller_id or "(what the phone sends)",
            "to_call": "dial the number (DID) of a request for that mobile: arspay requests "
            "create MERCHANT CUSTOMER, then arspay requests show REQUEST",
        }
    row["logs"] = f"{var_dir}/engine.log, {var_dir}/sandbox-pg.log, {asterisk['logdir']}"
    return row


@app.command("up")
def up(
    ctx: typer.Context,
    softphone: bool = typer.Option(
        True, "--softphone/--no-softphone", help="a SIP account for a softphone (loopback)"
    ),
    lan: bool = typer.Option(
        False, "--lan", help="bind the softphone account on this machine's LAN address"
    ),
    caller_id: str = typer.Option(
        "", "--caller-id", help="the mobile number the softphone's calls present"
    ),
    transcript: bool = typer.Option(
        False, "--transcript", help="log each call's prompts and key counts (engine.log)"
    ),
    ready_file: Path | None = typer.Option(
        None, "--ready-file", help="write the summary (JSON) here once everything is up"
    ),
) -> None:
    """Start the whole stack on this machine — Asterisk (provisioned if needed), the
    sandbox PG unless a real PG is configured, the engine with the API and the console —
    print where everything answers, and run until Ctrl-C (SIGINT/SIGTERM), which stops
    it all."""
    st = state(ctx)
    base = load_settings(st.config)
    env = child_env(os.environ, _overrides(base, softphone=softphone, lan=lan, caller_id=caller_id))
    if st.config is not None:
        env["ARSPAY_CONFIG"] = str(st.config)
    settings = load_settings(st.config, env=env)
    var_dir = settings.paths.var_dir.resolve()

    def say(line: str) -> None:
        typer.echo(f"up: {line}", err=True)

    box = OneBox(env=env, var_dir=var_dir, say=say, transcript=transcript,
                 gateway_sandbox=settings.gateway.kind == "sandbox",
                 vault_local=settings.vault.mode == "local")  # fmt: skip

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Both, explicitly: started in the background of a script, SIGINT comes ignored.
    previous = signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    code = 0
    try:
        facts = box.start()
        row = summary(settings, facts, var_dir)
        if ready_file is not None:
            ready_file.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
        emit(ctx, "arspay is up (Ctrl-C stops everything)", [row])
        while (gone := box.dead()) is None:
            time.sleep(0.5)
        say(f"{gone.name} exited on its own (see {gone.log}): stopping the rest")
        code = 1
    except KeyboardInterrupt:
        say("stopping")
    except ArspayError as exc:
        say(f"error: {exc.message}")
        code = 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the stop finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            box.stop()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, previous)
    if code:
        raise typer.Exit(code)
