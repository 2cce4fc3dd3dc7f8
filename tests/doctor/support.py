"""A healthy deployment in a work directory — keys owner-only, the engine database at
head, the vault's created, the Asterisk config rendered, an ARI that answers — for the
doctor's tests to break one piece at a time."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import create_engine

from ivr.consent.keys import ConsentKeys
from ivr.doctor.files import mfa_key_path
from ivr.pg_accounts.store import accounts_key
from ivr.settings import Settings, load_settings
from ivr.store.sealing import SealingKey
from ivr.telephony import credentials
from ivr.telephony.asterisk_config import write
from vault import schema
from vault.factory import audit_key_file, init_keys


@dataclass
class Deployment:
    root: Path
    env: dict[str, str]
    asterisk_dir: Path

    @property
    def config(self) -> Path:
        return Path(self.env["ARSPAY_CONFIG"])

    @property
    def settings(self) -> Settings:
        return load_settings(env=self.env)

    @property
    def var(self) -> Path:
        return self.root / "var"


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def build(root: Path, sqlite_template: Path, ari_port: int) -> Deployment:
    var = root / "var"
    config = root / "arspay.toml"
    config.write_text('[sms]\nsender = "1588-1234"\n', encoding="utf-8")
    config.chmod(0o640)
    env = {
        "ARSPAY_CONFIG": str(config),
        "ARSPAY_PATHS_VAR_DIR": str(var),
        "ARSPAY_VAULT_KEY_FILE": str(var / "vault" / "kek.key"),
        "ARSPAY_VAULT_FINGERPRINT_KEY_FILE": str(var / "vault" / "fp.key"),
        "ARSPAY_ASTERISK_ARI_URL": f"http://127.0.0.1:{ari_port}",
    }
    d = Deployment(root, env, root / "asterisk-etc")
    settings = d.settings
    var.mkdir(parents=True)
    shutil.copy(sqlite_template, var / "arspay.db")
    init_keys(settings)
    engine = create_engine(f"sqlite:///{var / 'vault' / 'vault.db'}")
    with engine.begin() as conn:
        schema.create(conn)
    engine.dispose()
    for path in (accounts_key(settings.gateway, var).path, mfa_key_path(settings)):
        SealingKey(path, "test").seal(b"x", "t")  # made owner-only on first use
    ConsentKeys.from_settings(settings).load(create=True)
    audit_key_file(settings).create()
    credentials.generate(credentials.credentials_path(settings))
    write(settings, d.asterisk_dir)
    return d


@contextmanager
def fake_ari(settings: Settings, port: int) -> Iterator[None]:
    """An ARI that answers /ari/asterisk/info to the configured user and password."""
    password = credentials.resolve(settings).ari_password.get_secret_value()
    wanted = "Basic " + base64.b64encode(f"arspay:{password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.headers.get("Authorization") == wanted
            body = json.dumps({"system": {"version": "22.0.0"}}).encode() if ok else b"{}"
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
