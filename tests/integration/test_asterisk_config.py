"""The Asterisk configuration templates render from settings (no Asterisk needed)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.errors import ConfigError
from ivr.settings import Settings, load_settings
from ivr.telephony.asterisk_config import TEMPLATE_DIR, render, write

EXPECTED = {
    "asterisk.conf",
    "modules.conf",
    "logger.conf",
    "pjsip.conf",
    "extensions.conf",
    "http.conf",
    "ari.conf",
    "rtp.conf",
    "manager.conf",
    "cdr.conf",
    "cel.conf",
}


def settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings(env={"ARSPAY_CONFIG": str(tmp_path / "absent.toml"), **env})


def entries(text: str, section: str) -> list[tuple[str, str]]:
    """``key = value`` / ``key => value`` lines of one section, comments dropped."""
    out: list[tuple[str, str]] = []
    current = None
    for raw in text.splitlines():
        line = re.sub(r"(?<!\\);.*", "", raw).strip()
        if m := re.fullmatch(r"\[([^\]]+)\](\(.*\))?", line):
            current = m.group(1)
        elif current == section and line:
            key, _, value = re.split(r"\s*(=>|=)\s*", line, maxsplit=1)
            out.append((key, value))
    return out


def options(text: str, section: str) -> dict[str, str]:
    return dict(entries(text, section))


DIDS = ["_0505XXXXXXX", "_0505XXXXXXXX", "_070XXXXXXXX", "_0[2-6]X."]


def test_every_conf_template_is_rendered_with_defaults(tmp_path: Path) -> None:
    files = render(settings(tmp_path))
    templates = {p.name for p in TEMPLATE_DIR.glob("*.conf")}
    assert set(files) == templates
    assert templates >= EXPECTED
    for name, text in files.items():
        assert not re.search(r"\$\{[a-z_]+\}", text), f"{name}: unfilled placeholder"
    assert options(files["pjsip.conf"], "transport-loopback")["bind"] == "127.0.0.1:5070"
    assert options(files["http.conf"], "general")["bindport"] == "8088"
    assert options(files["http.conf"], "general")["bindaddr"] == "127.0.0.1"
    assert options(files["ari.conf"], "arspay")["password"] == "arspay-dev-only"
    assert "Stasis(arspay)" in files["extensions.conf"]
    assert "AGI(agi://127.0.0.1:4573/arspay)" in files["extensions.conf"]


def test_custom_ports_and_password(tmp_path: Path) -> None:
    files = render(
        settings(
            tmp_path,
            ARSPAY_ASTERISK_ARI_URL="http://127.0.0.1:18088",
            ARSPAY_ASTERISK_ARI_USER="engine",
            ARSPAY_ASTERISK_ARI_PASSWORD="s3cret;with-semicolon",
            ARSPAY_ASTERISK_APP="arspay-test",
            ARSPAY_ASTERISK_SIP_PORT="15070",
            ARSPAY_ASTERISK_AGI_PORT="14573",
            ARSPAY_ASTERISK_RTP_START="20000",
            ARSPAY_ASTERISK_RTP_END="20999",
        )
    )
    assert options(files["pjsip.conf"], "transport-loopback")["bind"] == "127.0.0.1:15070"
    assert options(files["http.conf"], "general")["bindport"] == "18088"
    user = options(files["ari.conf"], "engine")
    assert user["password"] == r"s3cret\;with-semicolon"  # ';' would start a comment
    assert user["password_format"] == "plain"
    assert "arspay-dev-only" not in files["ari.conf"]
    rtp = options(files["rtp.conf"], "general")
    assert (rtp["rtpstart"], rtp["rtpend"], rtp["strictrtp"]) == ("20000", "20999", "no")
    stasis = entries(files["extensions.conf"], "arspay-stasis")
    agi = entries(files["extensions.conf"], "arspay-agi")
    for did in DIDS:
        assert ("exten", f"{did},1,Stasis(arspay-test)") in stasis
        assert ("exten", f"{did},1,AGI(agi://127.0.0.1:14573/arspay)") in agi
    # Same patterns in both contexts, each followed by Hangup.
    assert [v.split(",")[0] for k, v in stasis if k == "exten"] == [
        v.split(",")[0] for k, v in agi if k == "exten"
    ]
    assert [v for k, v in stasis if k == "same"] == ["n,Hangup()"] * len(stasis[::2])


def test_logger_never_logs_verbose_debug_or_dtmf(tmp_path: Path) -> None:
    files = render(settings(tmp_path))
    channels = options(files["logger.conf"], "logfiles")
    assert channels, "no log channels"
    for name, levels in channels.items():
        assert {lv.strip() for lv in levels.split(",")} <= {"notice", "warning", "error"}, name
    core = options(files["asterisk.conf"], "options")
    assert (core["verbose"], core["debug"]) == ("0", "0")
    assert "debug" not in options(files["pjsip.conf"], "global")
    # The SIP packet logger cannot even be switched on.
    assert ("noload", "res_pjsip_logger.so") in entries(files["modules.conf"], "modules")


def test_no_call_data_outside_our_database(tmp_path: Path) -> None:
    files = render(settings(tmp_path))
    assert options(files["cdr.conf"], "general")["enable"] == "no"
    assert options(files["cel.conf"], "general")["enable"] == "no"
    assert options(files["manager.conf"], "general")["enabled"] == "no"


def test_test_endpoints(tmp_path: Path) -> None:
    pjsip = render(settings(tmp_path))["pjsip.conf"]
    assert options(pjsip, "global")["endpoint_identifier_order"] == "header,ip,username"
    expected = {
        "sipp": ("arspay-stasis", "rfc4733"),
        "sipp-info": ("arspay-stasis", "info"),
        "sipp-agi": ("arspay-agi", "rfc4733"),
        "sipp-agi-info": ("arspay-agi", "info"),
    }
    for name, (context, dtmf) in expected.items():
        ep = options(pjsip, name)
        assert (ep["context"], ep["dtmf_mode"]) == (context, dtmf)
    assert options(pjsip, "sipp-by-ip")["match"] == "127.0.0.1"
    header = options(pjsip, "sipp-agi-info-by-header")
    assert header["match_header"] == "X-Arspay-Endpoint: sipp-agi-info"


def test_missing_placeholder_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "x.conf").write_text("[general]\nport = ${no_such_setting}\n")
    with pytest.raises(ConfigError, match="no_such_setting"):
        render(settings(tmp_path), template_dir=tmp_path)


def test_lone_dollar_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "x.conf").write_text("exten => s,1,Set(A=$5)\n")
    with pytest.raises(ConfigError, match=r"x\.conf"):
        render(settings(tmp_path), template_dir=tmp_path)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("ARSPAY_ASTERISK_APP", "bad,app"),
        ("ARSPAY_ASTERISK_ARI_USER", "a]b"),
        ("ARSPAY_ASTERISK_ARI_PASSWORD", "two\nlines"),
        ("ARSPAY_ASTERISK_ARI_URL", "https://127.0.0.1:8089"),
        ("ARSPAY_ASTERISK_RTP_START", "11000"),
    ],
)
def test_values_asterisk_would_misread_are_rejected(tmp_path: Path, var: str, value: str) -> None:
    with pytest.raises(ConfigError):
        render(settings(tmp_path, **{var: value}))


def test_write_uses_mode_0640(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    paths = write(settings(tmp_path), out)
    assert {p.name for p in paths} == {p.name for p in TEMPLATE_DIR.glob("*.conf")}
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == 0o640, p
    assert "arspay-dev-only" in (out / "ari.conf").read_text()


def test_cli_render(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSPAY_")}
    env.update(ARSPAY_CONFIG=str(tmp_path / "absent.toml"), ARSPAY_ASTERISK_SIP_PORT="5999")
    out = subprocess.run(
        [sys.executable, "-m", "ivr.cli", "asterisk", "render", "--out", str(tmp_path / "etc")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert str(tmp_path / "etc" / "pjsip.conf") in out.stdout.splitlines()
    assert "127.0.0.1:5999" in (tmp_path / "etc" / "pjsip.conf").read_text()
