"""The reverse-proxy example (deploy/nginx) and the logrotate config (deploy/logrotate):
``nginx -t`` and ``logrotate -d`` where installed, and structural checks everywhere."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ivr.settings import ApiSettings, load_settings
from tests.deploy.units import parse, value

DEPLOY = Path(__file__).parents[2] / "deploy"
NGINX = DEPLOY / "nginx" / "arspay.conf"
LOGROTATE = DEPLOY / "logrotate" / "arspay"


def blocks(text: str) -> list[str]:
    """The top-level ``name { ... }`` blocks, braces balanced."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            assert depth >= 0, "unbalanced }"
            if depth == 0:
                out.append(text[start : i + 1].strip())
                start = i + 1
    assert depth == 0, "unbalanced {"
    return out


def nginx_text() -> str:
    return "\n".join(line.split("#", 1)[0] for line in NGINX.read_text().splitlines())


def test_every_nginx_directive_is_terminated() -> None:
    for line in nginx_text().splitlines():
        line = line.strip()
        assert not line or line.endswith((";", "{", "}")), line


def test_the_tls_server_proxies_to_the_engine_with_forwarded_proto() -> None:
    text = nginx_text()
    servers = [b for b in blocks(text) if b.startswith("server")]
    tls = [s for s in servers if re.search(r"listen\s+443 ssl", s)]
    assert len(tls) == 1
    s = tls[0]
    assert re.search(r"ssl_certificate\s+\S+;", s)
    assert re.search(r"ssl_certificate_key\s+\S+;", s)
    protocols = re.search(r"ssl_protocols([^;]*);", s)
    assert protocols is not None
    assert set(protocols.group(1).split()) == {"TLSv1.2", "TLSv1.3"}
    assert re.search(r"proxy_set_header\s+X-Forwarded-Proto\s+https;", s)
    assert re.search(r"proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for;", s)
    for location in ("/console", "/"):
        assert re.search(
            rf"location {re.escape(location)} {{[^}}]*proxy_pass http://arspay_engine;", s
        )
    # Plain HTTP only redirects.
    plain = [x for x in servers if x not in tls]
    assert all("return 301 https://" in x and "proxy_pass" not in x for x in plain)


def test_the_proxy_matches_the_engine_settings() -> None:
    engine = load_settings(DEPLOY / "config" / "arspay.toml", env={})
    upstream = re.search(r"upstream arspay_engine {\s*server ([\d.]+):(\d+);", nginx_text())
    assert upstream is not None
    assert (upstream.group(1), int(upstream.group(2))) == (engine.api.host, engine.api.port)
    assert upstream.group(1) in engine.api.trusted_proxies  # it believes X-Forwarded-*
    size = re.search(r"client_max_body_size (\d+)m;", nginx_text())
    assert size is not None
    default_upload = ApiSettings.model_fields["max_upload_bytes"].default
    assert int(size.group(1)) * 1024 * 1024 >= max(engine.api.max_upload_bytes, default_upload)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_config(tmp_path: Path) -> None:  # pragma: no cover - no nginx here
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=t",
         "-keyout", str(key), "-out", str(cert), "-days", "1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    site = NGINX.read_text().replace("/etc/ssl/arspay/fullchain.pem", str(cert))
    site = site.replace("/etc/ssl/arspay/privkey.pem", str(key))
    site = site.replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{ include {tmp_path}/site.conf; }}\n"
    )
    done = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_logrotate_covers_every_log_the_units_write() -> None:
    text = LOGROTATE.read_text()
    patterns = re.findall(r"^(/\S+) {", text, re.M)
    for path in sorted((DEPLOY / "systemd").glob("*.service")):
        log = Path(value(parse(path), "StandardOutput").removeprefix("append:"))
        assert any(log.match(p) for p in patterns), log
    for stanza in blocks(text):
        assert "missingok" in stanza
        assert "compress" in stanza
        assert re.search(r"rotate \d+", stanza)


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate is not installed")
def test_logrotate_parses_the_config(tmp_path: Path) -> None:
    # The service users do not exist here: the `su` and `create` owners become root.
    text = re.sub(r"(su|create \d+) \S+ \S+", r"\1 root root", LOGROTATE.read_text())
    config = tmp_path / "arspay"
    config.write_text(text)
    done = subprocess.run(
        ["logrotate", "-d", "-s", str(tmp_path / "state"), str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    errors = [line for line in (done.stdout + done.stderr).splitlines() if "error" in line]
    assert errors == []
    assert done.stdout.count("rotating pattern") + done.stderr.count("rotating pattern") == 3
