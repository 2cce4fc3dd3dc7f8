"""Who may use the vault socket, and for what (issue #26, deliverable 6).

Peers are told apart by the kernel (``SO_PEERCRED``, ``SO_PEERGROUPS``): these tests
connect from child processes running as other users (``nobody``, ``daemon``) — the
suite runs as root — with a stdlib-only client, so the uid and groups the server sees
are real. Also: the audit ``who`` comes from the peer, idle and silent connections are
closed, and connections above the cap are refused at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ivr.settings import load_settings
from tests.vault.test_server import RawConn
from tests.vault.vault_helpers import CANARY, RecordingGateway
from vault.access import ROLE_OPS, PeerPolicy, Role, actor, authorize
from vault.errors import OperationNotAllowed, PeerNotAllowed, VaultBusy
from vault.forwarding import Order
from vault.protocol import OPERATIONS
from vault.remote import RemoteVault
from vault.server import VaultServer
from vault.service import LocalVault

pytestmark = pytest.mark.anyio

NOBODY = pwd.getpwnam("nobody")
DAEMON = pwd.getpwnam("daemon")
GROUP = 43210  # a group no account has: only a child given it holds it
SYSTEM_PYTHON = "/usr/bin/python3"  # stdlib only: runs as any user
other_users = pytest.mark.skipif(
    os.getuid() != 0 or not Path(SYSTEM_PYTHON).exists() or sys.platform != "linux",
    reason="connecting as other users needs root, Linux and /usr/bin/python3",
)

# The child: connect, read the greeting, send each request, read each reply; print what
# came back (None where the server closed the connection) and its own pid.
CLIENT = r"""
import json, os, socket, struct, sys
path, requests = sys.argv[1], json.loads(sys.argv[2])
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(path)
def recv_exactly(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data
def frame():
    head = recv_exactly(4)
    if head is None:
        return None
    body = recv_exactly(struct.unpack(">I", head)[0])
    return None if body is None else json.loads(body)
out = [frame()]
if out[0] is not None and out[0]["ok"]:
    for request in requests:
        body = json.dumps(request).encode()
        s.sendall(struct.pack(">I", len(body)) + body)
        out.append(frame())
else:
    out.append(frame())  # after a refusal: None when the server closed
print(json.dumps({"pid": os.getpid(), "frames": out}))
"""

CARD = {"pan": CANARY.pan, "expiry": CANARY.expiry, "birth": CANARY.birth}


def tokenize(who: str = "flow:registration") -> dict[str, Any]:
    return {"op": "tokenize", "args": {"merchant_id": "mer_1", "card": CARD, "who": who}}


STATUS = {"op": "status", "args": {}}
AUDIT = {"op": "audit", "args": {"token": None, "limit": 10}}


@pytest.fixture
def kek_kind() -> str:
    return "file"  # access control does not depend on the KEK provider


@pytest.fixture
def shared_dir(socket_dir: Path) -> Path:
    """The socket's parent, reachable by other users (as an operator's /run/… would be)."""
    os.chmod(socket_dir, 0o711)  # noqa: S103 - traverse only, as the server makes its own
    return socket_dir


def serve(vault: LocalVault, socket_dir: Path, policy: PeerPolicy, **kw: Any) -> VaultServer:
    return VaultServer(vault, socket_dir / "run" / "vault.sock", max_frame_bytes=4096,
                       body_timeout_s=0.5, policy=policy, **kw)  # fmt: skip


@pytest.fixture
async def server(vault: LocalVault, shared_dir: Path) -> AsyncIterator[VaultServer]:
    """Engine role: nobody; admin role: root (this process)."""
    policy = PeerPolicy(engine_uids=frozenset({NOBODY.pw_uid}), admin_uids=frozenset({0}))
    srv = serve(vault, shared_dir, policy)
    await srv.start()
    yield srv
    await srv.close()


async def as_user(
    path: Path,
    user: pwd.struct_passwd,
    requests: list[dict[str, Any]],
    *,
    groups: tuple[int, ...] = (),
    gid: int | None = None,
) -> tuple[int, list[dict[str, Any] | None]]:
    """Run the stdlib client as ``user`` (exactly these supplementary ``groups``)."""
    proc = await asyncio.create_subprocess_exec(
        SYSTEM_PYTHON, "-I", "-c", CLIENT, str(path), json.dumps(requests),
        user=user.pw_uid, group=user.pw_gid if gid is None else gid, extra_groups=list(groups),
        cwd="/", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    return int(result["pid"]), list(result["frames"])


def error_id(frame: dict[str, Any] | None) -> str:
    assert frame is not None
    assert frame["ok"] is False, frame
    return str(frame["error"]["id"])


# --------------------------------------------------------------------------- roles


@other_users
async def test_a_user_with_no_role_is_refused_at_once(
    server: VaultServer, vault: LocalVault
) -> None:
    assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o666  # the peer check admits
    assert stat.S_IMODE(os.stat(server.path.parent).st_mode) == 0o711
    started = time.monotonic()
    _pid, frames = await as_user(server.path, DAEMON, [tokenize(), STATUS])
    assert error_id(frames[0]) == PeerNotAllowed.error_id  # the greeting is the refusal
    assert frames[1] is None  # and the connection is closed: no request is read
    assert time.monotonic() - started < 5
    assert server.refusals[PeerNotAllowed.error_id] == 1
    assert server.active == 0
    assert (await vault.status()).records == 0


@other_users
async def test_the_engine_role_cannot_read_the_audit_log_or_the_status(
    server: VaultServer, vault: LocalVault
) -> None:
    _pid, frames = await as_user(server.path, NOBODY, [tokenize(), AUDIT, STATUS, STATUS])
    greeting, stored, audit, status, again = frames
    assert greeting is not None
    assert greeting["result"] == {"protocol": 1, "user": "nobody", "roles": ["engine"]}
    assert stored is not None
    assert stored["ok"] is True
    assert error_id(audit) == OperationNotAllowed.error_id
    assert error_id(status) == OperationNotAllowed.error_id
    assert error_id(again) == OperationNotAllowed.error_id  # the connection stays usable
    assert server.refusals[OperationNotAllowed.error_id] == 3
    assert (await vault.status()).records == 1


@other_users
async def test_the_admin_role_cannot_store_decrypt_or_charge(
    server: VaultServer, vault: LocalVault, gateway: RecordingGateway
) -> None:
    """Root is only admin here (the engine role is nobody's)."""
    meta = await vault.tokenize("mer_1", CANARY, who="setup")
    remote = RemoteVault(server.path, max_frame_bytes=4096)
    try:
        with pytest.raises(OperationNotAllowed):
            await remote.tokenize("mer_1", CANARY, who="admin")
        with pytest.raises(OperationNotAllowed):
            await remote.metadata(meta.token, "mer_1")
        with pytest.raises(OperationNotAllowed):
            await remote.issue_billing_key(meta.token, "mer_1", password2="12",
                                           customer_uid="c", who="admin", why="x")  # fmt: skip
        with pytest.raises(OperationNotAllowed):
            await remote.keyed_charge(meta.token, "mer_1", password2="12",
                                      order=Order("o1", 1000, "n", 0), who="admin",
                                      why="x")  # fmt: skip
        assert (await remote.status()).records == 1
        assert [e.action for e in await remote.audit(token=meta.token)] == ["tokenize"]
        await remote.delete(meta.token, "mer_1", who="ops", why="erase request")
        [erased, _stored] = await remote.audit(token=meta.token)
        assert (erased.action, erased.who) == ("delete", "admin:root (ops)")
    finally:
        await remote.close()
    assert gateway.received == []  # nothing reached the PG


@other_users
async def test_who_is_taken_from_the_peer_not_the_request(
    server: VaultServer, vault: LocalVault
) -> None:
    pid, frames = await as_user(server.path, NOBODY, [tokenize(who="admin:root")])
    stored = frames[1]
    assert stored is not None
    [entry] = await vault.audit(token=stored["result"]["token"])
    assert entry.who == "engine:nobody (admin:root)"  # the claim is only a sub-field
    assert entry.peer == f"uid={NOBODY.pw_uid},pid={pid}"


@other_users
async def test_roles_by_group(vault: LocalVault, shared_dir: Path) -> None:
    policy = PeerPolicy(engine_gids=frozenset({GROUP}), admin_uids=frozenset({0}))
    srv = serve(vault, shared_dir, policy)
    await srv.start()
    try:
        # a supplementary group (SO_PEERGROUPS) ...
        _pid, frames = await as_user(srv.path, NOBODY, [tokenize()], groups=(GROUP,))
        assert frames[1] is not None
        assert frames[1]["ok"] is True
        # ... or the primary one (SO_PEERCRED) grants the role
        _pid, frames = await as_user(srv.path, DAEMON, [tokenize()], gid=GROUP)
        assert frames[1] is not None
        assert frames[1]["ok"] is True
        # the same user without the group has no role
        _pid, frames = await as_user(srv.path, NOBODY, [tokenize()])
        assert error_id(frames[0]) == PeerNotAllowed.error_id
    finally:
        await srv.close()
    assert (await vault.status()).records == 2


# --------------------------------------------------------------------------- timeouts, cap


async def test_a_connection_that_never_asks_is_closed_after_the_handshake_timeout(
    vault: LocalVault, socket_dir: Path
) -> None:
    srv = serve(vault, socket_dir, PeerPolicy.default(), handshake_timeout_s=0.3,
                idle_timeout_s=30)  # fmt: skip
    await srv.start()
    try:
        conn = await RawConn.open(srv.path)  # greeted, then silent
        started = time.monotonic()
        assert await conn.closed_by_peer()
        assert 0.25 < time.monotonic() - started < 3
        conn.close()
        assert srv.active == 0
    finally:
        await srv.close()


async def test_an_idle_connection_is_closed_and_a_busy_one_is_not(
    vault: LocalVault, socket_dir: Path
) -> None:
    srv = serve(vault, socket_dir, PeerPolicy.default(), handshake_timeout_s=5,
                idle_timeout_s=0.5)  # fmt: skip
    await srv.start()
    status = json.dumps(STATUS).encode()
    try:
        busy = await RawConn.open(srv.path)
        idle = await RawConn.open(srv.path)
        assert (await idle.ask(status))["ok"] is True
        started = time.monotonic()

        async def keep_busy() -> int:
            answered = 0
            while time.monotonic() - started < 1.5:  # never 0.5 s without a request
                answered += (await busy.ask(status))["ok"] is True
                await asyncio.sleep(0.2)
            return answered

        pinging = asyncio.create_task(keep_busy())
        assert await idle.closed_by_peer()
        assert 0.4 < time.monotonic() - started < 3
        assert await pinging >= 6  # the busy one was served all along
        assert (await busy.ask(status))["ok"] is True
        busy.close()
        idle.close()
    finally:
        await srv.close()


async def test_connections_above_the_cap_are_refused_at_once(
    vault: LocalVault, socket_dir: Path
) -> None:
    srv = serve(vault, socket_dir, PeerPolicy.default(), max_connections=3)
    await srv.start()
    status = json.dumps(STATUS).encode()
    try:
        held = [await RawConn.open(srv.path) for _ in range(3)]
        started = time.monotonic()
        reader, writer = await asyncio.open_unix_connection(srv.path)
        extra = RawConn(reader, writer)
        assert (await extra.reply())["error"]["id"] == VaultBusy.error_id
        assert await extra.closed_by_peer()  # not queued: closed
        assert time.monotonic() - started < 1
        extra.close()
        remote = RemoteVault(srv.path)
        with pytest.raises(VaultBusy):
            await remote.status()
        assert srv.refusals[VaultBusy.error_id] == 2
        for conn in held:  # the three still work
            assert (await conn.ask(status))["ok"] is True
        held.pop().close()
        for _ in range(100):  # the server notices the close
            if srv.active < 3:
                break
            await asyncio.sleep(0.02)
        assert (await remote.status()).records == 0  # a slot is free again
        await remote.close()
        for conn in held:
            conn.close()
    finally:
        await srv.close()


async def test_the_client_does_not_reuse_a_connection_idle_past_its_limit(
    vault: LocalVault, socket_dir: Path
) -> None:
    srv = serve(vault, socket_dir, PeerPolicy.default(), idle_timeout_s=30)
    await srv.start()
    remote = RemoteVault(srv.path, max_idle_s=0.1)
    try:
        await remote.status()
        [(_r, first, _t)] = remote._idle
        await remote.status()  # at once: the same connection
        assert remote._idle[0][1] is first
        await asyncio.sleep(0.2)
        await remote.status()  # idle too long: a new one (the server would close it)
        assert remote._idle[0][1] is not first
    finally:
        await remote.close()
        await srv.close()


# --------------------------------------------------------------------------- the table


def test_every_operation_has_a_role_and_the_roles_are_disjoint_where_it_matters() -> None:
    assert set().union(*ROLE_OPS.values()) == set(OPERATIONS)
    card_ops = {"tokenize", "metadata", "issue_billing_key", "keyed_charge"}
    assert not card_ops & ROLE_OPS[Role.admin]  # an operator cannot store, read or charge
    assert not {"audit", "status"} & ROLE_OPS[Role.engine]
    with pytest.raises(OperationNotAllowed):
        authorize((), "status")
    assert authorize((Role.engine, Role.admin), "delete") is Role.engine
    assert authorize((Role.engine, Role.admin), "audit") is Role.admin


def test_the_policy_from_settings(tmp_path: Path) -> None:
    def policy(**env: str) -> PeerPolicy:
        s = load_settings(env={"ARSPAY_CONFIG": str(tmp_path / "none.toml"), **env})
        return PeerPolicy.from_settings(s.vault, own_uid=1234)

    default = policy()  # the vault's own user is the engine, root the admin
    assert default == PeerPolicy(engine_uids=frozenset({1234}), admin_uids=frozenset({0}))
    assert default.private_to(1234)  # so the socket stays 0600
    split = policy(ARSPAY_VAULT_ENGINE_UIDS="1001, 1002", ARSPAY_VAULT_ADMIN_GIDS="50")
    assert split.engine_uids == {1001, 1002}
    assert split.admin_gids == {50}
    assert not split.private_to(1234)
    by_group = policy(ARSPAY_VAULT_ENGINE_GIDS="1001")
    assert by_group.engine_uids == frozenset()  # the vault's own uid is not implied then
    none = policy(ARSPAY_VAULT_ADMIN_UIDS="")
    assert none.admin_uids == frozenset()


def test_the_audit_who_fits_its_column() -> None:
    from vault.access import Peer

    who = actor(Role.engine, Peer(pid=1, uid=NOBODY.pw_uid, gid=0), "x" * 128)
    assert len(who) == 128
    assert who.startswith("engine:nobody (xxx")
    assert who.endswith("…)")
