"""Asterisk: the deployed configuration against what ``arspay asterisk render`` makes of
the settings now (``scripts/asterisk start`` replaces the config directory with exactly
those files), and ARI answering with the configured user and password."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

from ivr.doctor.report import Finding, fail, ok, skip, warn
from ivr.errors import ConfigError
from ivr.settings import Settings
from ivr.telephony import credentials
from ivr.telephony.asterisk_config import render

DRIFT_CHECK = "asterisk-config"
ARI_CHECK = "ari"
DEFAULT_DIR = Path("/etc/asterisk")


def check_drift(settings: Settings, deployed: Path) -> Finding:
    """Files are compared whole; only their names are reported (they hold secrets)."""
    fix = f"arspay asterisk render --out {deployed}, then asterisk -rx 'core reload'"
    try:
        wanted = render(settings)
    except ConfigError as exc:
        return fail(
            DRIFT_CHECK, f"cannot render the Asterisk config: {exc.message}", "see the message"
        )
    if not deployed.is_dir():
        return warn(
            DRIFT_CHECK,
            f"no deployed Asterisk config at {deployed}",
            f"{fix}; or name the directory: arspay doctor --asterisk-dir DIR",
        )
    missing, changed, unreadable = [], [], []
    for name, text in sorted(wanted.items()):
        path = deployed / name
        try:
            current = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            missing.append(name)
            continue
        except PermissionError:
            unreadable.append(name)
            continue
        except UnicodeDecodeError:
            changed.append(name)
            continue
        if current != text:
            changed.append(name)
    if missing or changed:
        parts = [f"differ: {', '.join(changed)}"] if changed else []
        parts += [f"missing: {', '.join(missing)}"] if missing else []
        return fail(DRIFT_CHECK, f"{deployed} drifted from the settings ({'; '.join(parts)})", fix)
    extra = sorted(p.name for p in deployed.glob("*.conf") if p.name not in wanted)
    if extra:
        return warn(
            DRIFT_CHECK,
            f"{deployed} also holds files arspay does not write: {', '.join(extra)}",
            "remove them (a module may load one); scripts/asterisk start deploys ours only",
        )
    if unreadable:
        return warn(
            DRIFT_CHECK,
            f"cannot read {', '.join(unreadable)} in {deployed} as this user",
            "add the engine's user to the group asterisk (usermod -aG asterisk arspay)",
        )
    return ok(DRIFT_CHECK, f"{deployed} matches the rendered config ({len(wanted)} files)")


def check_ari(settings: Settings, timeout_s: float = 2.0) -> Finding:
    a = settings.asterisk
    if not a.ari_enabled:
        return skip(ARI_CHECK, "asterisk.ari_enabled is off (FastAGI only)")
    try:
        password = credentials.resolve(settings).ari_password.get_secret_value()
    except ConfigError as exc:
        return fail(ARI_CHECK, exc.message, "arspay asterisk credentials")
    url = a.ari_url.rstrip("/") + "/ari/asterisk/info"
    token = base64.b64encode(f"{a.ari_user}:{password}".encode()).decode()
    # asterisk.ari_url: http only (checked by the renderer).
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            return fail(
                ARI_CHECK,
                f"ARI at {a.ari_url} refuses user {a.ari_user!r} (401)",
                "render the Asterisk config from these settings and reload Asterisk",
            )
        return fail(ARI_CHECK, f"ARI at {a.ari_url} answers HTTP {exc.code}", "see Asterisk's log")
    except (OSError, ValueError) as exc:  # URLError, timeouts, a body that is not JSON
        reason = getattr(exc, "reason", exc)
        return fail(
            ARI_CHECK,
            f"ARI at {a.ari_url} does not answer: {reason}",
            "start Asterisk (systemctl start asterisk); check asterisk.ari_url and http.conf",
        )
    system = body.get("system") if isinstance(body, dict) else None
    version = system.get("version") if isinstance(system, dict) else "?"
    return ok(ARI_CHECK, f"ARI answers at {a.ari_url} (Asterisk {version})")
