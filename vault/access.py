"""Who may do what on the vault socket: roles granted by the peer's credentials.

The kernel tells the server who connected (``SO_PEERCRED``: pid, uid, gid; and
``SO_PEERGROUPS``: the supplementary groups), as they were at ``connect()`` — a request
cannot claim them. :class:`PeerPolicy` grants roles by uid or gid (``vault.engine_uids``,
``engine_gids``, ``admin_uids``, ``admin_gids``); a peer with no role is refused at once.
Each operation is allowed to the roles in :data:`ROLE_OPS` and no others:

=====================  ======  =====  ================================================
operation              engine  admin  who needs it
=====================  ======  =====  ================================================
``tokenize``           yes            a call stores the card it captured
``metadata``           yes            masked metadata of a stored card (read-only)
``issue_billing_key``  yes            a registration call asks the PG through the vault
``keyed_charge``       yes            a one-time charge of a stored card
``verify_birth``       yes            a payment call's knowledge factor: does the keyed
                                      birth date match? (yes or no, never the value)
``delete``             yes     yes    failed registrations, deleted cards, the orphan
                                      sweep; ``arspay cards delete`` / ``sweep-orphans``
``tokens``             yes     yes    the orphan sweep (engine worker and the CLI)
``audit``                      yes    the decrypt log: for operators, not the engine
``status``                     yes    KEKs and counts: for operators
=====================  ======  =====  ================================================

The admin role cannot store, decrypt or charge a card; the engine cannot read the audit
log. An operation missing from the table is refused to everyone (a test fails when an
operation is added to the protocol without a row). The audit ``who`` of a request is
:func:`actor`: the role and the peer's user name, with the identity the request states
kept only as a sub-field in parentheses.
"""

from __future__ import annotations

import errno
import functools
import os
import pwd
import socket
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from vault.errors import OperationNotAllowed

if TYPE_CHECKING:
    from vault.config import VaultSettings


class Role(StrEnum):
    engine = "engine"
    admin = "admin"


ROLE_OPS: Final[Mapping[Role, frozenset[str]]] = {
    Role.engine: frozenset(
        {
            "tokenize",
            "metadata",
            "issue_billing_key",
            "keyed_charge",
            "verify_birth",
            "delete",
            "tokens",
        }
    ),
    Role.admin: frozenset({"delete", "tokens", "audit", "status"}),
}
"""The operations each role may call (see the module table)."""

WHO_MAX: Final = 128  # the audit log's ``who`` column
_UCRED: Final = struct.Struct("iII")  # struct ucred: pid_t pid; uid_t uid; gid_t gid
# Python does not name SO_PEERGROUPS (Linux 4.13+); its number is 59 on every Linux arch.
_SO_PEERGROUPS: Final = getattr(socket, "SO_PEERGROUPS", 59 if sys.platform == "linux" else 0)


@functools.lru_cache(maxsize=256)
def user_name(uid: int) -> str:
    """The account name of ``uid`` (``uid<N>`` when it has none)."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"
    return name if name.isprintable() and 0 < len(name) <= 32 else f"uid{uid}"


@dataclass(frozen=True)
class Peer:
    """The process at the other end of a connection, as the kernel saw it at connect."""

    pid: int
    uid: int
    gid: int
    groups: frozenset[int] = frozenset()

    @property
    def gids(self) -> frozenset[int]:
        return self.groups | {self.gid}

    @property
    def user(self) -> str:
        return user_name(self.uid)

    @property
    def label(self) -> str:
        """``uid=…,pid=…``: the audit log's ``peer`` column and log lines."""
        return f"uid={self.uid},pid={self.pid}"


def _groups(sock: socket.socket) -> frozenset[int]:
    if not _SO_PEERGROUPS:
        return frozenset()
    for count in (64, 65536):
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, 4 * count)
        except OSError as exc:
            if exc.errno == errno.ERANGE:
                continue  # more groups than the buffer holds: ask again with room for all
            return frozenset()
        n = len(raw) // 4
        return frozenset(struct.unpack(f"{n}I", raw[: 4 * n]))
    return frozenset()


def peer_of(sock: Any) -> Peer | None:
    """The peer of a connected Unix socket, or None when the kernel does not say."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except (OSError, AttributeError):
        return None
    pid, uid, gid = _UCRED.unpack(raw)
    return Peer(pid=pid, uid=uid, gid=gid, groups=_groups(sock))


@dataclass(frozen=True)
class PeerPolicy:
    """Roles by uid and gid. :meth:`from_settings` fills in the defaults."""

    engine_uids: frozenset[int] = frozenset()
    engine_gids: frozenset[int] = frozenset()
    admin_uids: frozenset[int] = frozenset()
    admin_gids: frozenset[int] = frozenset()

    @classmethod
    def default(cls, own_uid: int | None = None) -> PeerPolicy:
        """The engine role for the vault's own uid, the admin role for root."""
        return cls(engine_uids=frozenset({os.getuid() if own_uid is None else own_uid}),
                   admin_uids=frozenset({0}))  # fmt: skip

    @classmethod
    def from_settings(cls, vault: VaultSettings, own_uid: int | None = None) -> PeerPolicy:
        """``vault.engine_uids`` and ``engine_gids`` both empty: the engine role goes to
        the uid the vault runs as (``own_uid``, default this process's)."""
        engine_uids = set(vault.engine_uids)
        if not engine_uids and not vault.engine_gids:
            engine_uids = {os.getuid() if own_uid is None else own_uid}
        return cls(
            engine_uids=frozenset(engine_uids),
            engine_gids=frozenset(vault.engine_gids),
            admin_uids=frozenset(vault.admin_uids),
            admin_gids=frozenset(vault.admin_gids),
        )

    def roles(self, peer: Peer | None) -> tuple[Role, ...]:
        """The peer's roles, in :class:`Role` order; none for an unknown peer."""
        if peer is None:
            return ()
        held = {
            Role.engine: peer.uid in self.engine_uids or bool(peer.gids & self.engine_gids),
            Role.admin: peer.uid in self.admin_uids or bool(peer.gids & self.admin_gids),
        }
        return tuple(role for role in Role if held[role])

    def private_to(self, uid: int) -> bool:
        """Nobody but ``uid`` (and root, whom file modes do not stop) holds a role: the
        socket can stay 0600."""
        return (self.engine_uids | self.admin_uids) <= {uid, 0} and not (
            self.engine_gids or self.admin_gids
        )


def authorize(roles: tuple[Role, ...], op: str) -> Role:
    """The first of ``roles`` that may call ``op``; :class:`OperationNotAllowed` if none."""
    for role in roles:
        if op in ROLE_OPS[role]:
            return role
    held = ", ".join(roles) or "none"
    raise OperationNotAllowed(f"operation {op} is not allowed for this peer (roles: {held})")


def actor(role: Role, peer: Peer, claimed: str) -> str:
    """The audit ``who``: ``<role>:<user> (<claimed>)``, at most :data:`WHO_MAX` long.
    The role and user come from the kernel; ``claimed`` (already checked) is only kept."""
    head = f"{role}:{peer.user}"
    room = WHO_MAX - len(head) - 3
    if len(claimed) > room:
        claimed = claimed[: room - 1] + "…"
    return f"{head} ({claimed})"
