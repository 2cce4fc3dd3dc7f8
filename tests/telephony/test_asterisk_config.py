"""The Asterisk configuration templates render from settings and the generated link
credentials (no Asterisk needed)."""

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
from ivr.telephony import credentials
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


def bare(tmp_path: Path, **env: str) -> Settings:
    """Defaults and ``env``; the var dir (and so the credentials file) in ``tmp_path``."""
    base = {
        "ARSPAY_CONFIG": str(tmp_path / "absent.toml"),
        "ARSPAY_PATHS_VAR_DIR": str(tmp_path / "var"),
    }
    return load_settings(env={**base, **env})


def settings(tmp_path: Path, **env: str) -> Settings:
    """:func:`bare` with generated link credentials, as `arspay asterisk render` makes."""
    s = bare(tmp_path, **env)
    credentials.generate(credentials.credentials_path(s))
    return s


def generated(s: Settings) -> dict[str, str]:
    return credentials.read_file(credentials.credentials_path(s))


def entries(text: str, section: str) -> list[tuple[str, str]]:
    """``key = value`` / ``key => value`` lines of one section, comments dropped."""
    out: list[tuple[str, str]] = []
    current = None
    for raw in text.splitlines():
        line = re.sub(r"(?<!\\);.*", "", raw).strip()
        if m := re.fullmatch(r"\[([^\]]+)\](\(.*\))?", line):
            current = m.group(1)
        elif current == section and line and not line.startswith("#"):  # not #include
            key, _, value = re.split(r"\s*(=>|=)\s*", line, maxsplit=1)
            out.append((key, value))
    return out


def options(text: str, section: str) -> dict[str, str]:
    return dict(entries(text, section))


DIDS = ["_0505XXXXXXX", "_0505XXXXXXXX", "_070XXXXXXXX", "_0[2-6]X."]


def test_every_conf_template_is_rendered_with_defaults(tmp_path: Path) -> None:
    s = settings(tmp_path)
    files = render(s)
    templates = {p.name for p in TEMPLATE_DIR.glob("*.conf")}
    assert set(files) == templates
    assert templates >= EXPECTED
    for name, text in files.items():
        assert not re.search(r"\$\{[a-z_]+\}", text), f"{name}: unfilled placeholder"
    assert options(files["pjsip.conf"], "transport-loopback")["bind"] == "127.0.0.1:5070"
    assert options(files["http.conf"], "general")["bindport"] == "8088"
    assert options(files["http.conf"], "general")["bindaddr"] == "127.0.0.1"
    creds = generated(s)
    assert options(files["ari.conf"], "arspay")["password"] == creds["ari_password"]
    assert "Stasis(arspay)" in files["extensions.conf"]
    # the secret is the AGI argument (agi_arg_1), never in the URL Asterisk logs
    assert f"AGI(agi://127.0.0.1:4573/arspay,{creds['agi_secret']})" in files["extensions.conf"]
    assert "AGI(agi://127.0.0.1:4573/arspay)" not in files["extensions.conf"]
    for name, text in files.items():
        if name not in {"ari.conf", "extensions.conf"}:
            assert creds["ari_password"] not in text, name
            assert creds["agi_secret"] not in text, name


def test_missing_or_development_credentials_are_not_rendered(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no asterisk\.ari_password"):
        render(bare(tmp_path))
    with pytest.raises(ConfigError, match="is the published development value"):
        render(bare(tmp_path, ARSPAY_ASTERISK_ARI_PASSWORD="arspay-dev-only",
                    ARSPAY_ASTERISK_AGI_SECRET="a-real-agi-secret-value"))  # fmt: skip
    dev = render(bare(tmp_path, ARSPAY_ENGINE_DEV_MODE="true"))  # asked for explicitly
    assert options(dev["ari.conf"], "arspay")["password"] == "arspay-dev-only"


def test_custom_ports_and_password(tmp_path: Path) -> None:
    files = render(
        settings(
            tmp_path,
            ARSPAY_ASTERISK_ARI_URL="http://127.0.0.1:18088",
            ARSPAY_ASTERISK_ARI_USER="engine",
            ARSPAY_ASTERISK_ARI_PASSWORD="s3cret;with-semicolon",
            ARSPAY_ASTERISK_AGI_SECRET="-Agi_secret-of-this-box",
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
        assert (
            "exten",
            f"{did},1,AGI(agi://127.0.0.1:14573/arspay,-Agi_secret-of-this-box)",
        ) in agi
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
    # the softphone account is found by its user name before the loopback address
    assert options(pjsip, "global")["endpoint_identifier_order"] == "header,username,ip"
    # the password-less test endpoints answer this machine only, whatever the transport
    acl = entries(pjsip, "arspay-loopback")
    assert ("deny", "0.0.0.0/0.0.0.0") in acl
    assert ("permit", "127.0.0.1/255.255.255.255") in acl
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


def test_the_softphone_account_is_rendered_only_when_it_is_on(tmp_path: Path) -> None:
    from ivr.telephony import softphone

    off = render(settings(tmp_path))
    assert "pjsip_softphone.conf" not in off
    assert "#tryinclude pjsip_softphone.conf" in off["pjsip.conf"]

    on = settings(tmp_path, ARSPAY_ASTERISK_SOFTPHONE="true",
                  ARSPAY_ASTERISK_SOFTPHONE_CALLER_ID="01012345678")  # fmt: skip
    conf = render(on)["pjsip_softphone.conf"]
    account = softphone.ensure(on)
    password = account.password.get_secret_value()
    assert len(password) >= 20
    assert password not in repr(account)
    path = softphone.password_path(on)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert options(conf, "transport-softphone")["bind"] == "127.0.0.1:5080"
    endpoint = options(conf, "softphone")
    assert (endpoint["context"], endpoint["auth"], endpoint["callerid"]) == (
        "arspay-stasis", "softphone-auth", "<01012345678>",
    )  # fmt: skip
    assert endpoint["media_address"] == "127.0.0.1"
    auth = options(conf, "softphone-auth")
    assert (auth["username"], auth["password"]) == ("softphone", password)
    assert render(on)["pjsip_softphone.conf"] == conf  # the password is generated once

    lan = settings(tmp_path, ARSPAY_ASTERISK_SOFTPHONE="true",
                   ARSPAY_ASTERISK_SOFTPHONE_BIND="192.168.0.10")  # fmt: skip
    conf = render(lan)["pjsip_softphone.conf"]
    assert options(conf, "transport-softphone")["bind"] == "192.168.0.10:5080"
    assert options(conf, "softphone")["media_address"] == "192.168.0.10"
    assert "callerid" not in options(conf, "softphone")

    out = tmp_path / "etc"
    write(on, out)
    assert (out / "pjsip_softphone.conf").exists()
    write(settings(tmp_path), out)  # turned off: no stale account left behind
    assert not (out / "pjsip_softphone.conf").exists()


@pytest.mark.parametrize("bind", ["::1", "lan", "0.0.0.0"])  # noqa: S104 - refused
def test_the_softphone_binds_one_ipv4_address(tmp_path: Path, bind: str) -> None:
    with pytest.raises(ConfigError, match="softphone_bind"):
        render(settings(tmp_path, ARSPAY_ASTERISK_SOFTPHONE="true",
                        ARSPAY_ASTERISK_SOFTPHONE_BIND=bind))  # fmt: skip


@pytest.mark.parametrize("number", ["010-1234-5678", "abc", "0101"])
def test_the_softphone_caller_id_is_digits(tmp_path: Path, number: str) -> None:
    with pytest.raises(ConfigError, match="softphone_caller_id"):
        bare(tmp_path, ARSPAY_ASTERISK_SOFTPHONE_CALLER_ID=number)


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
        ("ARSPAY_ASTERISK_ARI_PASSWORD", "two\nlines-and-long-enough"),
        ("ARSPAY_ASTERISK_AGI_SECRET", "with,comma-long-enough"),
        ("ARSPAY_ASTERISK_AGI_SECRET", "with)paren-long-enough"),
        ("ARSPAY_ASTERISK_ARI_URL", "https://127.0.0.1:8089"),
        ("ARSPAY_ASTERISK_RTP_START", "11000"),
    ],
)
def test_values_asterisk_would_misread_are_rejected(tmp_path: Path, var: str, value: str) -> None:
    with pytest.raises(ConfigError):
        render(settings(tmp_path, **{var: value}))


def test_write_uses_mode_0640(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    s = settings(tmp_path)
    paths = write(s, out)
    assert {p.name for p in paths} == {p.name for p in TEMPLATE_DIR.glob("*.conf")}
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == 0o640, p
    creds = generated(s)
    assert creds["ari_password"] in (out / "ari.conf").read_text()
    assert creds["agi_secret"] in (out / "extensions.conf").read_text()


def _box_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """This process's environment without its ``ARSPAY_*`` settings: a fresh box in
    ``tmp_path`` (no config file), with ``settings`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARSPAY_")}
    return env | {
        "ARSPAY_CONFIG": str(tmp_path / "absent.toml"),
        "ARSPAY_PATHS_VAR_DIR": str(tmp_path / "var"),
        **settings,
    }


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ivr.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_cli_render_generates_the_credentials_asterisk_and_the_engine_share(
    tmp_path: Path,
) -> None:
    """A fresh box: `arspay asterisk render` makes a random ARI password and AGI secret
    (0600 file), renders them, and the engine's settings resolve the very same ones."""
    env = _box_env(tmp_path, ARSPAY_ASTERISK_SIP_PORT="5999")
    out = _cli(env, "asterisk", "render", "--out", str(tmp_path / "etc"))
    assert out.returncode == 0, out.stderr
    assert str(tmp_path / "etc" / "pjsip.conf") in out.stdout.splitlines()
    assert "127.0.0.1:5999" in (tmp_path / "etc" / "pjsip.conf").read_text()
    path = tmp_path / "var" / "asterisk" / "credentials.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    creds = credentials.read_file(path)
    ari_conf = (tmp_path / "etc" / "ari.conf").read_text()
    extensions = (tmp_path / "etc" / "extensions.conf").read_text()
    assert options(ari_conf, "arspay")["password"] == creds["ari_password"]
    assert extensions.count(f"/arspay,{creds['agi_secret']})") == 6  # every DID pattern
    assert "arspay-dev-only" not in ari_conf + extensions
    for secret in creds.values():  # nothing printed
        assert secret not in out.stdout + out.stderr
    engine = credentials.checked(load_settings(env=env))  # what the engine will use
    assert engine.ari_password.get_secret_value() == creds["ari_password"]
    assert engine.agi_secret.get_secret_value() == creds["agi_secret"]
    # rendering again keeps them (Asterisk and a running engine still agree)
    assert _cli(env, "asterisk", "render", "--out", str(tmp_path / "etc")).returncode == 0
    assert credentials.read_file(path) == creds
    kept = _cli(env, "--json", "asterisk", "credentials")
    assert kept.returncode == 0, kept.stderr
    assert '"status": "kept"' in kept.stdout
    rotated = _cli(env, "--json", "asterisk", "credentials", "--rotate")
    assert '"status": "rotated"' in rotated.stdout
    assert credentials.read_file(path) != creds
    for secret in [*creds.values(), *credentials.read_file(path).values()]:
        assert secret not in kept.stdout + rotated.stdout


def test_engine_run_refuses_the_development_password(tmp_path: Path) -> None:
    env = _box_env(tmp_path, ARSPAY_ASTERISK_ARI_PASSWORD="arspay-dev-only")
    out = _cli(env, "engine", "run", "--no-build-prompts")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "ari_password is the published development value" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "var" / "arspay.db").exists()  # refused before anything started


def test_engine_run_in_dev_mode_says_so(tmp_path: Path) -> None:
    env = _box_env(
        tmp_path,
        ARSPAY_ENGINE_DEV_MODE="true",
        ARSPAY_API_ENABLED="false",
        ARSPAY_ASTERISK_ARI_URL="http://127.0.0.1:9",  # nothing answers: it keeps retrying
        ARSPAY_ASTERISK_AGI_PORT="14599",
    )
    with subprocess.Popen(
        [sys.executable, "-m", "ivr.cli", "engine", "run", "--no-build-prompts"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stderr is not None
            first = proc.stderr.readline()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert first.startswith("warning: engine.dev_mode is on"), first
