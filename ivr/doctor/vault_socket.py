"""The vault's socket, for an engine whose vault runs apart (``vault.mode = "remote"``):
it answers, and gives this user the engine role. The vault speaks first (a greeting
with the peer's roles, or a refusal: ``vault/protocol.py``), so one read tells; nothing
is sent."""

from __future__ import annotations

import asyncio

from ivr.doctor.report import Finding, fail, ok, skip
from ivr.settings import Settings
from vault.errors import VaultError
from vault.protocol import read_frame

CHECK = "vault-socket"
GROUP_FIX = (
    "put the engine's user in the socket directory's group (usermod -aG arspay-vault "
    "arspay) and that group's gid in vault.engine_gids (ARSPAY_VAULT_ENGINE_GIDS)"
)


async def check_vault_socket(settings: Settings, timeout_s: float = 2.0) -> Finding:
    v = settings.vault
    if v.mode != "remote":
        return skip(CHECK, "vault.mode is local: the engine opens the vault itself")
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_unix_connection(v.socket)
            try:
                greeting = await read_frame(reader, v.max_frame_bytes)
            finally:
                writer.close()
    except FileNotFoundError:
        return fail(CHECK, f"no vault socket at {v.socket}", "systemctl start arspay-vault")
    except PermissionError:
        return fail(CHECK, f"this user may not reach {v.socket}", GROUP_FIX)
    except ConnectionRefusedError:
        return fail(
            CHECK,
            f"nothing listens on {v.socket} (a stale socket)",
            "systemctl restart arspay-vault",
        )
    except (OSError, TimeoutError, VaultError, asyncio.IncompleteReadError) as exc:
        return fail(
            CHECK,
            f"the vault at {v.socket} did not greet ({type(exc).__name__})",
            "see journalctl -u arspay-vault",
        )
    if greeting is None or greeting.get("ok") is not True:
        error = (greeting or {}).get("error")
        error_id = error.get("id") if isinstance(error, dict) else "no greeting"
        fix = GROUP_FIX if error_id == "vault-peer-not-allowed" else "retry; see the vault's log"
        return fail(CHECK, f"the vault at {v.socket} refuses this user ({error_id})", fix)
    result = greeting.get("result")
    roles = result.get("roles", []) if isinstance(result, dict) else []
    if "engine" not in roles:
        return fail(
            CHECK, f"the vault gives this user no engine role (roles: {roles or 'none'})", GROUP_FIX
        )
    return ok(CHECK, f"the vault answers on {v.socket} with the engine role")
