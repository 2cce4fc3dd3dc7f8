"""The vault service: a :class:`LocalVault` behind a Unix socket (``arspay vault serve``).

Who may connect, and do what, is decided by the kernel's word on the peer
(:mod:`vault.access`): its uid and groups grant roles, each operation is allowed to
some roles only, and the audit ``who`` of a request is the role and the peer's user
(the identity the request states is kept in parentheses). A peer with no role, or one
arriving when ``max_connections`` are being served, gets one error frame and is closed at
once — nothing waits in a queue. An accepted connection gets a greeting frame and must
send its first request within ``handshake_timeout_s``, then each next one within
``idle_timeout_s``; a reply the peer does not read within ``idle_timeout_s`` also ends
it. Refusals are logged (peer uid/pid and error id) and counted in
:attr:`VaultServer.refusals`.

The socket file is created with mode 0600 (umask 0177 while binding, then ``chmod``) in
a 0700 directory when only the vault's own user (and root) holds a role; when the roles
name another uid or any gid it is 0666 in a directory others may traverse (0711): the
peer check is then what admits. The peer's uid and pid (``SO_PEERCRED``) go into every
audit row.

Each connection is served one request at a time (:mod:`vault.protocol`). A malformed
frame, an unknown operation, an operation the peer's roles do not allow or a badly typed
argument gets an error reply and the connection stays usable; an oversize frame gets an
error reply and the connection is closed (its body is never read, so the stream cannot
be resynchronised). A frame whose body does not arrive within ``body_timeout_s`` closes
the connection. None of this stops the server. Nothing from a request is ever logged but
ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

from vault import log
from vault.access import Peer, PeerPolicy, Role, actor, authorize, peer_of
from vault.errors import (
    ArspayError,
    FrameTooLarge,
    MalformedFrame,
    PeerNotAllowed,
    VaultBusy,
    VaultConfigError,
)
from vault.protocol import (
    OPERATIONS,
    PROTOCOL_VERSION,
    call_args,
    dump,
    encode_frame,
    parse_request,
    read_frame,
)
from vault.service import LocalVault
from vault.validation import check_text


def _error_reply(exc: ArspayError) -> dict[str, Any]:
    return {
        "ok": False,
        "error": {"id": exc.error_id, "message": exc.message, "status": exc.http_status},
    }


@dataclass(eq=False, repr=False)
class VaultServer:
    vault: LocalVault
    path: Path
    _: KW_ONLY
    max_frame_bytes: int = 65_536
    body_timeout_s: float = 10.0
    policy: PeerPolicy = field(default_factory=PeerPolicy.default)
    max_connections: int = 64
    handshake_timeout_s: float = 5.0
    idle_timeout_s: float = 60.0
    active: int = field(default=0, init=False)  # accepted connections being served
    refusals: Counter[str] = field(default_factory=Counter, init=False)  # by error id
    _server: asyncio.Server | None = field(default=None, init=False)
    _operations: dict[str, Callable[..., Awaitable[Any]]] = field(init=False)

    def __post_init__(self) -> None:
        # Every operation is the LocalVault method of its name (never ``reveal``, which
        # the protocol does not know), called with the request's checked arguments.
        self._operations = {op: getattr(self.vault, op) for op in OPERATIONS}

    # ------------------------------------------------------------------ lifetime

    async def start(self) -> None:
        shared = not self.policy.private_to(os.getuid())
        self.path.parent.mkdir(mode=0o711 if shared else 0o700, parents=True, exist_ok=True)
        if shared:  # other users must reach the socket: let them traverse, not list
            mode = stat.S_IMODE(self.path.parent.stat().st_mode)
            os.chmod(self.path.parent, mode | 0o011)  # noqa: S103 - traverse only, no list
        await self._clear_stale_socket()
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve_connection, self.path)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o666 if shared else 0o600)
        log.event("serve.start")

    async def _clear_stale_socket(self) -> None:
        try:
            st = self.path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise VaultConfigError(f"{self.path} exists and is not a socket")
        try:
            _reader, writer = await asyncio.open_unix_connection(self.path)
        except OSError:
            self.path.unlink()  # left by a process that died
            return
        writer.close()
        raise VaultConfigError(f"another vault is already serving on {self.path}")

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            log.event("serve.stop")

    # ------------------------------------------------------------------ connections

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = self._peer(writer)
        try:
            roles = self.policy.roles(peer)
            if not roles:
                await self._refuse(writer, peer, PeerNotAllowed("no role for this uid/gid"))
            elif self.active >= self.max_connections:
                await self._refuse(
                    writer, peer, VaultBusy("the vault serves its maximum of connections")
                )
            else:
                assert peer is not None  # an unknown peer holds no role
                self.active += 1
                try:
                    await self._serve(reader, writer, peer, roles)
                finally:
                    self.active -= 1
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass  # the peer went away, stalled mid-frame, idled, or does not read
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def _peer(self, writer: asyncio.StreamWriter) -> Peer | None:
        return peer_of(writer.get_extra_info("socket"))

    async def _refuse(
        self, writer: asyncio.StreamWriter, peer: Peer | None, exc: ArspayError
    ) -> None:
        """One error frame, then the caller closes: a refused peer holds nothing."""
        self.refusals[exc.error_id] += 1
        label = peer.label if peer else "unknown"
        log.event("refused", level=logging.WARNING, peer=label, error_id=exc.error_id)
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            async with asyncio.timeout(1):
                await self._send(writer, _error_reply(exc))

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
        roles: tuple[Role, ...],
    ) -> None:
        greeting = {"protocol": PROTOCOL_VERSION, "user": peer.user, "roles": list(roles)}
        # Small and bounded (a user name is at most 32 characters): never above the limit.
        writer.write(encode_frame({"ok": True, "result": greeting}))
        async with asyncio.timeout(self.idle_timeout_s):
            await writer.drain()
        wait, phase = self.handshake_timeout_s, "handshake"
        while True:
            try:
                async with asyncio.timeout(wait):
                    message = await read_frame(
                        reader, self.max_frame_bytes, body_timeout_s=self.body_timeout_s
                    )
            except FrameTooLarge as exc:
                log.event("frame", level=logging.WARNING, peer=peer.label, error_id=exc.error_id)
                await self._send(writer, _error_reply(exc))
                break
            except MalformedFrame as exc:
                log.event("frame", level=logging.WARNING, peer=peer.label, error_id=exc.error_id)
                await self._send(writer, _error_reply(exc))
                wait, phase = self.idle_timeout_s, "idle"
                continue
            except TimeoutError:
                log.event(f"{phase}-timeout", peer=peer.label)
                break
            if message is None:
                break
            await self._send(writer, await self._dispatch(message, peer, roles))
            wait, phase = self.idle_timeout_s, "idle"

    async def _send(self, writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
        frame = encode_frame(reply)
        if len(frame) - 4 > self.max_frame_bytes:
            frame = encode_frame(
                _error_reply(FrameTooLarge("reply is above the frame limit; ask for less"))
            )
        writer.write(frame)
        async with asyncio.timeout(self.idle_timeout_s):  # a peer that never reads
            await writer.drain()

    async def _dispatch(
        self, message: dict[str, Any], peer: Peer, roles: tuple[Role, ...]
    ) -> dict[str, Any]:
        op = "?"
        try:
            op, args = parse_request(message)
            role = authorize(roles, op)
            kwargs = call_args(args)
            if "who" in kwargs:  # audited: the role and the peer's user, the claim kept
                check_text("who", kwargs["who"], 128)
                kwargs.update(who=actor(role, peer, kwargs["who"]), peer=peer.label)
            result = await self._operations[op](**kwargs)
            return {"ok": True, "result": dump(result)}
        except ArspayError as exc:
            log.event(f"op.{op}", level=logging.WARNING, peer=peer.label, error_id=exc.error_id)
            if exc.error_id == "vault-operation-not-allowed":
                self.refusals[exc.error_id] += 1
            return _error_reply(exc)
        except Exception:
            log.event(f"op.{op}", level=logging.ERROR, peer=peer.label, error_id="internal-error")
            return {
                "ok": False,
                "error": {"id": "internal-error", "message": "internal vault error", "status": 500},
            }
