"""The vault service: a :class:`LocalVault` behind a Unix socket (``arspay vault serve``).

The socket file is created with mode 0600 (umask 0177 while binding, then ``chmod``) in
a 0700 directory, so only the vault's own user (and root) can connect; the peer's uid
and pid (``SO_PEERCRED``) go into every audit row beside the identity the caller states.

Each connection is served one request at a time (:mod:`vault.protocol`). A malformed
frame, an unknown operation or a badly typed argument gets an error reply and the
connection stays usable; an oversize frame gets an error reply and the connection is
closed (its body is never read, so the stream cannot be resynchronised). A frame whose
body does not arrive within ``body_timeout_s`` closes the connection. None of this
stops the server. Nothing from a request is ever logged but ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ivr.errors import ArspayError
from vault import log
from vault.card import CardData
from vault.errors import FrameTooLarge, InvalidRequest, MalformedFrame, VaultConfigError
from vault.protocol import dump, encode_frame, parse_request, read_frame
from vault.service import LocalVault

Handler = Callable[[dict[str, Any], str], Awaitable[Any]]


def peer_of(writer: asyncio.StreamWriter) -> str:
    sock = writer.get_extra_info("socket")
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return "unknown"
    pid, uid, _gid = struct.unpack("3i", raw)
    return f"uid={uid},pid={pid}"


def _error_reply(exc: ArspayError) -> dict[str, Any]:
    return {
        "ok": False,
        "error": {"id": exc.error_id, "message": exc.message, "status": exc.http_status},
    }


class VaultServer:
    def __init__(
        self,
        vault: LocalVault,
        path: Path,
        *,
        max_frame_bytes: int = 65_536,
        body_timeout_s: float = 10.0,
    ) -> None:
        self.vault = vault
        self.path = path
        self.max_frame_bytes = max_frame_bytes
        self.body_timeout_s = body_timeout_s
        self._server: asyncio.Server | None = None
        self._handlers: dict[str, Handler] = {
            "tokenize": self._tokenize,
            "metadata": self._metadata,
            "issue_billing_key": self._issue_billing_key,
            "keyed_charge": self._keyed_charge,
            "verify_birth": self._verify_birth,
            "delete": self._delete,
            "audit": self._audit,
            "tokens": self._tokens,
            "status": self._status,
        }

    # ------------------------------------------------------------------ lifetime

    async def start(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        await self._clear_stale_socket()
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve_connection, self.path)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
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
        peer = peer_of(writer)
        try:
            while True:
                try:
                    message = await read_frame(
                        reader, self.max_frame_bytes, body_timeout_s=self.body_timeout_s
                    )
                except FrameTooLarge as exc:
                    log.event("frame", level=logging.WARNING, peer=peer, error_id=exc.error_id)
                    await self._send(writer, _error_reply(exc))
                    break
                except MalformedFrame as exc:
                    log.event("frame", level=logging.WARNING, peer=peer, error_id=exc.error_id)
                    await self._send(writer, _error_reply(exc))
                    continue
                if message is None:
                    break
                await self._send(writer, await self._dispatch(message, peer))
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass  # the peer went away or stalled mid-frame: drop the connection
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _send(self, writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
        frame = encode_frame(reply)
        if len(frame) - 4 > self.max_frame_bytes:
            frame = encode_frame(
                _error_reply(FrameTooLarge("reply is above the frame limit; ask for less"))
            )
        writer.write(frame)
        await writer.drain()

    async def _dispatch(self, message: dict[str, Any], peer: str) -> dict[str, Any]:
        op = "?"
        try:
            op, args = parse_request(message)
            result = await self._handlers[op](args, peer)
            return {"ok": True, "result": dump(result)}
        except ArspayError as exc:
            log.event(f"op.{op}", level=logging.WARNING, peer=peer, error_id=exc.error_id)
            return _error_reply(exc)
        except Exception:
            log.event(f"op.{op}", level=logging.ERROR, peer=peer, error_id="internal-error")
            return {
                "ok": False,
                "error": {"id": "internal-error", "message": "internal vault error", "status": 500},
            }

    # ------------------------------------------------------------------ operations

    async def _tokenize(self, a: dict[str, Any], peer: str) -> Any:
        card = CardData(**a["card"])
        return await self.vault.tokenize(a["merchant_id"], card, who=a["who"], peer=peer)

    async def _metadata(self, a: dict[str, Any], peer: str) -> Any:
        return await self.vault.metadata(a["token"], a["merchant_id"])

    async def _issue_billing_key(self, a: dict[str, Any], peer: str) -> Any:
        return await self.vault.issue_billing_key(
            a["token"],
            a["merchant_id"],
            password2=a["password2"],
            customer_uid=a["customer_uid"],
            who=a["who"],
            why=a["why"],
            peer=peer,
        )

    async def _keyed_charge(self, a: dict[str, Any], peer: str) -> Any:
        return await self.vault.keyed_charge(
            a["token"],
            a["merchant_id"],
            password2=a["password2"],
            order_id=a["order_id"],
            amount=a["amount"],
            order_name=a["order_name"],
            installment_months=a["installment_months"],
            who=a["who"],
            why=a["why"],
            peer=peer,
        )

    async def _verify_birth(self, a: dict[str, Any], peer: str) -> Any:
        return await self.vault.verify_birth(
            a["token"], a["merchant_id"], birth=a["birth"], who=a["who"], why=a["why"], peer=peer
        )

    async def _delete(self, a: dict[str, Any], peer: str) -> Any:
        await self.vault.delete(a["token"], a["merchant_id"], who=a["who"], why=a["why"], peer=peer)
        return None

    async def _audit(self, a: dict[str, Any], peer: str) -> Any:
        return await self.vault.audit(token=a["token"], limit=a["limit"])

    async def _tokens(self, a: dict[str, Any], peer: str) -> Any:
        try:
            created_before = datetime.fromisoformat(a["created_before"])
        except ValueError:
            raise InvalidRequest("created_before is not an ISO 8601 time") from None
        return await self.vault.tokens(
            created_before=created_before, after=a["after"], limit=a["limit"]
        )

    async def _status(self, a: dict[str, Any], peer: str) -> Any:
        return await self.vault.status()
