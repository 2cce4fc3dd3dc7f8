"""Render the Asterisk configuration in ``asterisk-config/`` from :class:`Settings`.

Every ``*.conf`` there is a :class:`string.Template`: ``${name}`` is filled from the
``asterisk`` settings (see :func:`values`), ``$$`` is a literal ``$``. A placeholder with
no value, or a value Asterisk's config parser would misread, is a
:class:`~ivr.errors.ConfigError`. The ARI password and the FastAGI secret come from
:mod:`ivr.telephony.credentials` (checked: no development values outside
``engine.dev_mode``); ``ari.conf`` and ``extensions.conf`` carry them, so files are
written with mode 0640. With ``asterisk.softphone`` on, the templates in ``softphone/``
are rendered too (the account of :mod:`ivr.telephony.softphone`, its password generated
on first use); with it off they are not, and a stale copy in the output is removed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

from ivr.errors import ConfigError
from ivr.settings import Settings
from ivr.telephony import softphone
from ivr.telephony.credentials import Credentials, checked

TEMPLATE_DIR = Path(__file__).parents[2] / "asterisk-config"
SOFTPHONE_DIR = "softphone"  # under the template directory: rendered only when it is on
FILE_MODE = 0o640

# Names that become config section names or dialplan arguments: no brackets, commas,
# semicolons or spaces.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_AGI_ARG = re.compile(r"[A-Za-z0-9_-]{1,128}")


def _name(key: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ConfigError(f"asterisk.{key}: use letters, digits, '_', '.', '-' only")
    return value


def _value(key: str, value: str) -> str:
    """A value on the right of ``=``: one line; ``;`` would start a comment, so escape it."""
    if not value or any(ord(c) < 32 or c == "\x7f" for c in value) or value != value.strip():
        raise ConfigError(f"asterisk.{key}: must be non-empty, one line, no surrounding spaces")
    return value.replace(";", r"\;")


def _agi_secret(value: str) -> str:
    """A dialplan application argument: no ',', ')', '$', ';', quotes or spaces."""
    if not _AGI_ARG.fullmatch(value):
        raise ConfigError("asterisk.agi_secret: use 1-128 of A-Z, a-z, 0-9, '_', '-'")
    return value


def _http_port(ari_url: str) -> int:
    url = urlsplit(ari_url)
    if url.scheme != "http" or not url.hostname:
        # TLS for ARI is not part of the rendered config; put a TLS proxy in front instead.
        raise ConfigError("asterisk.ari_url: must be http://host[:port]")
    try:
        return url.port or 80
    except ValueError:
        raise ConfigError("asterisk.ari_url: invalid port") from None


def values(settings: Settings, credentials: Credentials | None = None) -> dict[str, str]:
    """The placeholder values the templates may use; ``credentials`` default to
    :func:`~ivr.telephony.credentials.checked` ones."""
    a = settings.asterisk
    if a.rtp_start >= a.rtp_end:
        raise ConfigError("asterisk.rtp_start must be below asterisk.rtp_end")
    creds = credentials or checked(settings)
    return {
        "app": _name("app", a.app),
        "ari_user": _name("ari_user", a.ari_user),
        "ari_password": _value("ari_password", creds.ari_password.get_secret_value()),
        # The AGI argument (agi_arg_1), never part of the agi:// URL: Asterisk writes the
        # URL into its WARNING lines when the engine cannot be reached.
        "agi_secret": _agi_secret(creds.agi_secret.get_secret_value()),
        "http_port": str(_http_port(a.ari_url)),
        "sip_port": str(a.sip_port),
        "agi_port": str(a.agi_port),
        "rtp_start": str(a.rtp_start),
        "rtp_end": str(a.rtp_end),
    }


def softphone_values(settings: Settings, account: softphone.Account) -> dict[str, str]:
    """The placeholders of the softphone templates."""
    if account.host == "0.0.0.0":  # noqa: S104 - refused: RTP needs one address
        raise ConfigError("asterisk.softphone_bind: one address of this machine, not 0.0.0.0")
    caller_id = (
        f"callerid = <{account.caller_id}>"
        if account.caller_id
        else "; callerid: not set (asterisk.softphone_caller_id): the number the phone sends"
    )
    return {
        "softphone_user": _name("softphone_user", account.user),
        "softphone_password": _value("softphone password", account.password.get_secret_value()),
        "softphone_bind": account.host,
        "softphone_port": str(account.port),
        "softphone_callerid": caller_id,
    }


def _fill(templates: list[Path], subst: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in templates:
        try:
            out[path.name] = Template(path.read_text(encoding="utf-8")).substitute(subst)
        except KeyError as exc:
            raise ConfigError(f"{path.name}: no value for placeholder ${{{exc.args[0]}}}") from None
        except ValueError as exc:  # a lone "$": write "$$" for a literal dollar sign
            raise ConfigError(f"{path.name}: {exc}") from None
    return out


def render(
    settings: Settings,
    template_dir: Path = TEMPLATE_DIR,
    credentials: Credentials | None = None,
) -> dict[str, str]:
    """File name -> rendered text, for every ``*.conf`` in ``template_dir`` (and in its
    ``softphone/`` when ``asterisk.softphone`` is on)."""
    subst = values(settings, credentials)
    templates = sorted(template_dir.glob("*.conf"))
    if not templates:
        raise ConfigError(f"{template_dir}: no Asterisk config templates")
    out = _fill(templates, subst)
    if settings.asterisk.softphone:
        extra = softphone_values(settings, softphone.ensure(settings))
        out |= _fill(sorted((template_dir / SOFTPHONE_DIR).glob("*.conf")), subst | extra)
    return out


def write(
    settings: Settings,
    out_dir: Path,
    template_dir: Path = TEMPLATE_DIR,
    credentials: Credentials | None = None,
) -> list[Path]:
    """Render into ``out_dir`` (created if needed); files get mode 0640. Returns the paths."""
    files = render(settings, template_dir, credentials)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (template_dir / SOFTPHONE_DIR).glob("*.conf"):
        if stale.name not in files:
            (out_dir / stale.name).unlink(missing_ok=True)
    written: list[Path] = []
    for name, text in files.items():
        path = out_dir / name
        # Create with 0640 so the secrets are never readable by others, not even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), FILE_MODE)
            fh.write(text)
        written.append(path)
    return written
