"""The vault's error tree. Every error has a stable kebab-case ``error_id`` (sent as is
over the vault socket and written to logs) and an HTTP-style status.

    VaultError                      vault-error                  500
    ├── VaultConfigError            vault-config-error           500 keys/token/db unusable
    │   └── KeyFileInsecure         vault-key-file-insecure      500 key file mode not 0600
    ├── InvalidCard (InvalidInput)  invalid-card                 422 card data failed checks
    │   ├── InvalidCardNumber       invalid-card-number          422 length or Luhn
    │   ├── InvalidExpiry           invalid-card-expiry          422 not MMYY, or past
    │   ├── InvalidBirthOrBrn       invalid-birth-or-brn         422 date / BRN check digit
    │   └── InvalidPassword         invalid-card-password        422 not 2 digits
    ├── InvalidRequest              vault-invalid-request        400 bad argument or request
    │   ├── MalformedFrame          vault-malformed-frame        400 not a JSON object frame
    │   ├── FrameTooLarge           vault-frame-too-large        413 above max_frame_bytes
    │   └── UnknownOperation        vault-unknown-operation      400 no such operation
    ├── TokenNotFound (NotFound)    vault-token-not-found        404 not for this merchant
    ├── VerifyLimited               vault-verify-limited         429 too many birth checks
    ├── IntegrityFailure            vault-integrity-failure      500 stored data not authentic
    │   ├── RecordTampered          vault-record-tampered        500 ciphertext/nonce/AAD
    │   ├── KeyUnwrapFailed         vault-key-unwrap-failed      500 wrapped key or wrong KEK
    │   └── AuditChainBroken        vault-audit-chain-broken     500 audit log fails its MACs
    ├── CheckpointRefused           vault-checkpoint-refused     422 not a checkpoint of ours
    ├── KekError                    vault-kek-error              500
    │   ├── KekNotFound             vault-kek-not-found          500 no KEK with that id
    │   ├── KekUnavailable          vault-kek-unavailable        503 the HSM / token failed
    │   └── RotationIncomplete      vault-rotation-incomplete    500 data keys left unwrapped
    ├── GatewayNotConfigured        vault-gateway-not-configured 503 no CardGateway
    ├── GatewayFailed               vault-gateway-failed         502 gateway raised non-arspay
    ├── GatewayHostRefused          vault-gateway-host-refused   403 route host not allowed
    ├── AccessDenied                vault-access-denied          403 socket peer refused
    │   ├── PeerNotAllowed          vault-peer-not-allowed       403 no role for its uid/gids
    │   └── OperationNotAllowed     vault-operation-not-allowed  403 op not in its roles
    ├── VaultUnavailable            vault-unavailable            503 service unreachable
    │   └── VaultBusy               vault-busy                   503 connection cap reached
    └── RemoteError                 (the server's error id)          an id unknown here

:class:`VaultError` derives from :class:`ArspayError` (with :class:`InvalidInput` and
:class:`NotFound`, defined here and re-exported by :mod:`ivr.errors` as the engine's
root), so the engine handles vault errors as its own.

Messages never contain card data, passwords, keys or free text from a request: they
name fields and ids only. :data:`BY_ID` maps an ``error_id`` back to its class (the
remote client rebuilds the server's errors with it).
"""

from __future__ import annotations


class ArspayError(Exception):
    """Base of every error raised on purpose by arspay, the engine's and the vault's.

    It lives here, at the bottom of the dependency graph, because the vault imports
    nothing from the engine while the engine must still catch a vault error as one of
    its own (``except ArspayError``, an invalid card as :class:`InvalidInput`):
    :mod:`ivr.errors` re-exports these three classes as the root of its tree.

    A subclass names its id and status as class keywords,
    ``class RecordTampered(IntegrityFailure, error_id="vault-record-tampered")``; a
    status left out is the base's (the first base's, in method resolution order)."""

    error_id = "internal-error"
    http_status = 500

    def __init_subclass__(
        cls, *, error_id: str | None = None, http_status: int | None = None
    ) -> None:
        super().__init_subclass__()
        if error_id is not None:
            cls.error_id = error_id
        if http_status is not None:
            cls.http_status = http_status

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ArspayError, error_id="invalid-input", http_status=422):
    """Bad input from a merchant, a CSV, the CLI or a caller's keypad."""


class NotFound(ArspayError, error_id="not-found", http_status=404):
    """The object does not exist or is not the asker's."""


class VaultError(ArspayError, error_id="vault-error"):
    """Base of every error the vault raises on purpose."""


class VaultConfigError(VaultError, error_id="vault-config-error"): ...


class KeyFileInsecure(VaultConfigError, error_id="vault-key-file-insecure"): ...


class InvalidCard(VaultError, InvalidInput, error_id="invalid-card", http_status=422): ...


class InvalidCardNumber(InvalidCard, error_id="invalid-card-number"): ...


class InvalidExpiry(InvalidCard, error_id="invalid-card-expiry"): ...


class InvalidBirthOrBrn(InvalidCard, error_id="invalid-birth-or-brn"): ...


class InvalidPassword(InvalidCard, error_id="invalid-card-password"): ...


class InvalidRequest(VaultError, error_id="vault-invalid-request", http_status=400): ...


class MalformedFrame(InvalidRequest, error_id="vault-malformed-frame"): ...


class FrameTooLarge(InvalidRequest, error_id="vault-frame-too-large", http_status=413): ...


class UnknownOperation(InvalidRequest, error_id="vault-unknown-operation"): ...


class TokenNotFound(VaultError, NotFound, error_id="vault-token-not-found", http_status=404): ...


class VerifyLimited(VaultError, error_id="vault-verify-limited", http_status=429):
    """The vault's own ceiling on knowledge-factor checks of one card was reached: it
    stops answering (it would otherwise be an oracle for the stored birth date)."""


class IntegrityFailure(VaultError, error_id="vault-integrity-failure"): ...


class RecordTampered(IntegrityFailure, error_id="vault-record-tampered"): ...


class KeyUnwrapFailed(IntegrityFailure, error_id="vault-key-unwrap-failed"): ...


class AuditChainBroken(IntegrityFailure, error_id="vault-audit-chain-broken"):
    """The audit log does not verify (so no checkpoint is signed over it)."""


class CheckpointRefused(VaultError, error_id="vault-checkpoint-refused", http_status=422):
    """A checkpoint document that is malformed, or not signed by this deployment's key."""


class KekError(VaultError, error_id="vault-kek-error"): ...


class KekNotFound(KekError, error_id="vault-kek-not-found"): ...


class KekUnavailable(KekError, error_id="vault-kek-unavailable", http_status=503): ...


class RotationIncomplete(KekError, error_id="vault-rotation-incomplete"):
    def __init__(self, message: str, failed: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.failed = failed  # tokens whose data key did not unwrap


class GatewayNotConfigured(
    VaultError, error_id="vault-gateway-not-configured", http_status=503
): ...


class GatewayFailed(VaultError, error_id="vault-gateway-failed", http_status=502): ...


class GatewayHostRefused(VaultError, error_id="vault-gateway-host-refused", http_status=403):
    """A forwarding route names a host not on ``vault.gateway_hosts``, or plain HTTP to a
    host that is not loopback: the card is not decrypted (:mod:`vault.gateway_hosts`)."""


class AccessDenied(VaultError, error_id="vault-access-denied", http_status=403):
    """The socket peer's credentials (uid, gids) do not allow what it asked."""


class PeerNotAllowed(AccessDenied, error_id="vault-peer-not-allowed"): ...


class OperationNotAllowed(AccessDenied, error_id="vault-operation-not-allowed"): ...


class VaultUnavailable(VaultError, error_id="vault-unavailable", http_status=503): ...


class VaultBusy(VaultUnavailable, error_id="vault-busy"): ...


class RemoteError(VaultError):
    """An error the server reported whose id this client has no class for."""

    def __init__(self, message: str, error_id: str = "vault-error", http_status: int = 500) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.http_status = http_status


def _collect(cls: type[VaultError]) -> dict[str, type[VaultError]]:
    out = {cls.error_id: cls}
    for sub in cls.__subclasses__():
        if sub is not RemoteError:
            out.update(_collect(sub))
    return out


BY_ID: dict[str, type[VaultError]] = _collect(VaultError)
"""Every vault error class by its ``error_id``."""
