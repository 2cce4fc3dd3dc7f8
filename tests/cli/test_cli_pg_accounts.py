"""``arspay pg-accounts`` and ``arspay merchants pg-routes``, run as real processes:
secrets go in through stdin or the environment (never arguments), come out masked."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ivr.store.db import Database
from tests.cli.test_cli import ARSPAY, arspay
from tests.stored import stored

pytestmark = pytest.mark.slow  # several CLI processes

API_SECRET = "sk_live_CANARY_cli_0123456789"
WEBHOOK_SECRET = "whsec_CANARY_cli_9876543210"
ENV_SECRET = "sk_live_CANARY_env_5555666677"


# The CLI's wiring, on SQLite: the store under it is tested on both databases
# (tests/store, tests/pg_accounts), and each CLI process costs a second or more.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_accounts_from_the_command_line(db_url: str, tmp_path: Path) -> None:
    var = {"ARSPAY_PATHS_VAR_DIR": str(tmp_path / "var")}
    outputs: list[str] = []

    def run(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        if stdin is None:
            out = arspay(*args, url=db_url, env={**var, **env})
        else:  # arspay() has no stdin: the same environment, by hand
            full = {k: v for k, v in os.environ.items() if not k.startswith("ARSPAY_")}
            full |= {"ARSPAY_CONFIG": "/nonexistent/arspay.toml",
                     "ARSPAY_DATABASE_URL": db_url, **var, **env}  # fmt: skip
            out = subprocess.run([*ARSPAY, *args], input=stdin, capture_output=True, text=True,
                                 env=full, timeout=60, check=False)  # fmt: skip
        outputs.append(out.stdout + out.stderr)
        return out

    def j(*args: str, **kw: Any) -> list[dict[str, Any]]:
        out = run("--json", *args, **kw)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    [made] = j("pg-accounts", "add", "ksnet-main", "--kind", "portone", "--api-key",
               "imp_1234567890", "--channel-key", "channel-key-1", "--pg", "ksnet",
               "--api-secret-stdin", "--webhook-secret-stdin",
               stdin=f"{API_SECRET}\n{WEBHOOK_SECRET}\n")  # fmt: skip
    assert (made["api_secret"], made["webhook_secret"]) == ("••••6789", "••••3210")
    assert (made["pg"], made["base_url"]) == ("ksnet", "https://api.iamport.kr")
    j("pg-accounts", "add", "backup-pg", "--kind", "sandbox", "--api-key", "k",
      ARSPAY_NEW_PG_API_SECRET=ENV_SECRET)  # fmt: skip
    listed = j("pg-accounts", "list")
    assert [a["id"] for a in listed] == ["default", "backup-pg", "ksnet-main"]
    assert listed[1]["api_secret"] == "••••6677"
    assert "[gateway] settings" in run("pg-accounts", "list").stdout  # (not rich markup)

    # set: what is given changes, the rest stays; secrets kept unless given
    [changed] = j("pg-accounts", "set", "ksnet-main", "--name", "KSNET", "--pg", "")
    assert (changed["name"], changed["api_secret"], "pg" in changed) == ("KSNET", "••••6789", False)
    assert changed["channel_key"] == "channel-key-1"
    refused = run("pg-accounts", "set", "ksnet-main", "--channel-key", "")
    assert refused.returncode == 2
    assert "channel_key" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert run("pg-accounts", "add", "x", "--kind", "sandbox", "--api-secret", "s").returncode == 2

    # routes
    mid = str(j("merchants", "create", "행복치과")[0]["id"])
    assert j("merchants", "pg-routes", mid) == [
        {"merchant_id": mid, "primary": "default", "secondary": None}
    ]
    routes = j("merchants", "pg-routes", mid, "--primary", "ksnet-main", "--secondary", "backup-pg")
    assert (routes[0]["primary"], routes[0]["secondary"]) == ("ksnet-main", "backup-pg")
    busy = run("pg-accounts", "set", "backup-pg", "--disable")
    assert busy.returncode == 2
    assert "route of merchant" in busy.stderr
    assert j("merchants", "pg-routes", mid, "--no-secondary")[0]["secondary"] is None
    assert j("pg-accounts", "set", "backup-pg", "--disable")[0]["status"] == "disabled"
    assert run("merchants", "pg-routes", mid, "--secondary", "backup-pg").returncode == 2
    assert j("pg-accounts", "show", "ksnet-main")[0]["name"] == "KSNET"

    seen = "\n".join(outputs)
    for canary in (API_SECRET, WEBHOOK_SECRET, ENV_SECRET):
        assert canary not in seen
    key = tmp_path / "var" / "pg-accounts.key"
    assert key.stat().st_mode & 0o777 == 0o600

    async def in_clear() -> list[str]:
        db = Database(db_url)
        try:
            return await stored(db, [API_SECRET, WEBHOOK_SECRET, ENV_SECRET])
        finally:
            await db.close()

    assert asyncio.run(in_clear()) == []
