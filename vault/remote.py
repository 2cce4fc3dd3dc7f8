"""``RemoteVault``: the :class:`~vault.client.VaultClient` that talks to
``arspay vault serve`` over its Unix socket.

Up to ``pool_size`` connections are kept open and used one request at a time each; a
connection idle longer than ``max_idle_s`` (keep it below the server's
``vault.idle_timeout_s``, after which the server closes it) is not reused. A new
connection first reads the server's greeting: a refusal (``vault-peer-not-allowed``,
``vault-busy``) is raised as that error. Nothing is retried: a tokenize or a charge that
may have reached the vault must not be sent twice, so a broken connection is a
:class:`~vault.errors.VaultUnavailable` for the caller to resolve. Errors the server
reports come back as the same vault error classes (by ``error_id``); ids this client
does not know become :class:`~vault.errors.RemoteError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import KW_ONLY, InitVar, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vault.card import CardData
from vault.errors import BY_ID, FrameTooLarge, RemoteError, VaultError, VaultUnavailable
from vault.forwarding import BillingKeyResult, ChargeResult, Order, Route
from vault.models import AuditEntry, BirthCheck, CardMetadata, TokenRef, VaultStatus
from vault.protocol import PROTOCOL_VERSION, encode_frame, load, read_frame, wire_args

_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _rebuild(error: Any) -> VaultError:
    if not isinstance(error, dict):
        return RemoteError("the vault replied with a malformed error")
    error_id = str(error.get("id", "vault-error"))
    message = str(error.get("message", ""))
    cls = BY_ID.get(error_id)
    if cls is not None:
        return cls(message)
    status = error.get("status")
    return RemoteError(message, error_id, status if isinstance(status, int) else 500)


@dataclass(eq=False, repr=False)
class RemoteVault:
    path: Path
    _: KW_ONLY
    max_frame_bytes: int = 65_536
    pool_size: InitVar[int] = 8
    timeout_s: float = 60.0
    max_idle_s: float = 30.0
    _slots: asyncio.Semaphore = field(init=False)
    _idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = field(
        default_factory=list, init=False
    )

    def __post_init__(self, pool_size: int) -> None:
        self._slots = asyncio.Semaphore(pool_size)

    async def _connect(self) -> _Conn:
        while self._idle:
            reader, writer, since = self._idle.pop()
            fresh = time.monotonic() - since < self.max_idle_s
            if fresh and not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        try:
            reader, writer = await asyncio.open_unix_connection(self.path)
        except OSError as exc:
            raise VaultUnavailable(f"cannot reach the vault socket ({exc.strerror})") from None
        await self._greeted(reader, writer)
        return reader, writer

    async def _greeted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read the server's greeting; a refusal is raised as its error (closed)."""
        try:
            async with asyncio.timeout(min(self.timeout_s, 10.0)):
                greeting = await read_frame(reader, self.max_frame_bytes)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, VaultError) as exc:
            writer.close()
            raise VaultUnavailable(f"no greeting from the vault ({type(exc).__name__})") from None
        if greeting is None or greeting.get("ok") is not True:
            writer.close()
            if greeting is None:
                raise VaultUnavailable("the vault closed the connection at once")
            raise _rebuild(greeting.get("error"))
        result = greeting.get("result")
        if not isinstance(result, dict) or result.get("protocol") != PROTOCOL_VERSION:
            writer.close()
            raise VaultUnavailable("the vault speaks another protocol version")

    async def call(self, op: str, /, **kwargs: Any) -> Any:
        """One request, ``kwargs`` as the :class:`~vault.client.VaultClient` method takes
        them; the reply's ``result`` or the rebuilt error."""
        args = wire_args(kwargs)
        async with self._slots:
            reader, writer = await self._connect()
            try:
                async with asyncio.timeout(self.timeout_s):
                    writer.write(encode_frame({"op": op, "args": args}))
                    await writer.drain()
                    reply = await read_frame(reader, self.max_frame_bytes)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, VaultError) as exc:
                writer.close()
                raise VaultUnavailable(
                    f"vault connection failed during {op} ({type(exc).__name__})"
                ) from None
            except BaseException:
                writer.close()
                raise
            if reply is None:
                writer.close()
                raise VaultUnavailable(f"the vault closed the connection during {op}")
            error = reply.get("error")
            if isinstance(error, dict) and error.get("id") == FrameTooLarge.error_id:
                writer.close()  # the server closes after an oversize frame
            else:
                self._idle.append((reader, writer, time.monotonic()))
        if reply.get("ok") is True:
            return reply.get("result")
        raise _rebuild(reply.get("error"))

    # ------------------------------------------------------------------ VaultClient
    # Each method sends its keyword arguments as they are (vault.protocol.wire_args) and
    # loads the result into the type it returns.

    async def tokenize(self, merchant_id: str, card: CardData, *, who: str) -> CardMetadata:
        result = await self.call("tokenize", merchant_id=merchant_id, card=card, who=who)
        return load(CardMetadata, result)

    async def metadata(self, token: str, merchant_id: str) -> CardMetadata:
        return load(CardMetadata, await self.call("metadata", token=token, merchant_id=merchant_id))

    async def issue_billing_key(
        self, token: str, merchant_id: str, *, password2: str, customer_uid: str, who: str,
        why: str, route: Route | None = None,
    ) -> BillingKeyResult:  # fmt: skip
        result = await self.call("issue_billing_key", token=token, merchant_id=merchant_id,
                                 password2=password2, customer_uid=customer_uid, who=who,
                                 why=why, route=route)  # fmt: skip
        return load(BillingKeyResult, result)

    async def keyed_charge(
        self, token: str, merchant_id: str, *, password2: str, order: Order, who: str,
        why: str, route: Route | None = None,
    ) -> ChargeResult:  # fmt: skip
        result = await self.call("keyed_charge", token=token, merchant_id=merchant_id,
                                 password2=password2, order=order, who=who, why=why,
                                 route=route)  # fmt: skip
        return load(ChargeResult, result)

    async def verify_birth(
        self, token: str, merchant_id: str, *, birth: str, who: str, why: str
    ) -> BirthCheck:
        result = await self.call("verify_birth", token=token, merchant_id=merchant_id,
                                 birth=birth, who=who, why=why)  # fmt: skip
        check = load(BirthCheck, result)
        if type(check.matched) is not bool:  # 1, "true": not an answer to act on
            raise RemoteError("the vault replied with a malformed birth check")
        return check

    async def delete(self, token: str, merchant_id: str, *, who: str, why: str) -> None:
        await self.call("delete", token=token, merchant_id=merchant_id, who=who, why=why)

    async def audit(self, *, token: str | None = None, limit: int = 50) -> list[AuditEntry]:
        result = await self.call("audit", token=token, limit=limit)
        if not isinstance(result, list):
            raise RemoteError("the vault replied with a malformed audit list")
        return [load(AuditEntry, r) for r in result]

    async def tokens(
        self, *, created_before: datetime, after: str = "", limit: int = 500
    ) -> list[TokenRef]:
        result = await self.call("tokens", created_before=created_before, after=after, limit=limit)
        if not isinstance(result, list):
            raise RemoteError("the vault replied with a malformed token list")
        return [load(TokenRef, r) for r in result]

    async def status(self) -> VaultStatus:
        return load(VaultStatus, await self.call("status"))

    async def ping(self) -> None:
        """Raise :class:`VaultUnavailable` unless the vault greets a new connection now
        (its socket is there, its process answers, and it grants this peer a role):
        the engine's readiness check. Opens its own connection, outside the pool."""
        try:
            reader, writer = await asyncio.open_unix_connection(self.path)
        except OSError as exc:
            raise VaultUnavailable(f"cannot reach the vault socket ({exc.strerror})") from None
        try:
            await self._greeted(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def close(self) -> None:
        while self._idle:
            _reader, writer, _since = self._idle.pop()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
