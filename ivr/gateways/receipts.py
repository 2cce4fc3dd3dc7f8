"""Which receipt (매출전표) links a PG's answer may hand to the engine.

A receipt URL goes into the approval SMS and Alimtalk button, the console and the API,
so a PG answer must not be able to put an arbitrary link there (a spoofed or
compromised PG endpoint, a proxy). :func:`kept` keeps a URL only when:

* it is ``https`` on a host in :data:`RECEIPT_HOSTS` (the host itself or a subdomain):
  PortOne's own receipt pages and the Korean card PGs' slip pages; or
* it has exactly the origin (scheme, host, port) of the connector's configured
  ``base_url`` — the sandbox PG serves its own receipt pages, and a deployment that
  talks to a PortOne-compatible endpoint trusts that endpoint already;

and it is at most :data:`MAX_LEN` characters, with no credentials, spaces or control
characters. Anything else is dropped (the payment itself stands; only the link is lost).
"""

from __future__ import annotations

import logging
import re
from typing import Final
from urllib.parse import urlsplit

log = logging.getLogger("ivr.gateways.receipts")

MAX_LEN: Final = 500  # the column's length (payment_attempts.receipt_url)

# PortOne and the PGs it fronts (docs/portone.md "Receipts"); a subdomain matches too.
RECEIPT_HOSTS: Final[tuple[str, ...]] = (
    "iamport.kr",
    "portone.io",
    "inicis.com",
    "nicepay.co.kr",
    "kcp.co.kr",
    "tosspayments.com",
    "tosspayments.co.kr",
    "ksnet.co.kr",
    "kicc.co.kr",
    "easypay.co.kr",
    "danal.co.kr",
    "smartro.co.kr",
    "settlebank.co.kr",
    "kiwoompay.co.kr",
    "daoupay.com",
    "welcomepayments.co.kr",
    "kakaopay.com",
    "payco.com",
)

_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f\"'<>\\]")


def _origin(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    return scheme, host, port if port is not None else (443 if scheme == "https" else 80)


def kept(url: object, base_url: str = "") -> str | None:
    """``url`` when it is a receipt link the engine may show and send, else ``None``."""
    if not isinstance(url, str) or not url:
        return None
    if len(url) > MAX_LEN or _BAD_CHARS.search(url):
        log.warning("receipt url dropped: malformed")
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
        base = urlsplit(base_url) if base_url else None
        base_port = base.port if base is not None else None
    except ValueError:
        log.warning("receipt url dropped: malformed")
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower().rstrip(".")
    if not host or "@" in parts.netloc or scheme not in ("http", "https"):
        log.warning("receipt url dropped: not an http(s) URL with a plain host")
        return None
    if base is not None and base.hostname:
        own = _origin(base.scheme.lower(), base.hostname.lower(), base_port)
        if _origin(scheme, host, port) == own:
            return url
    if scheme == "https" and any(host == h or host.endswith("." + h) for h in RECEIPT_HOSTS):
        return url
    log.warning("receipt url dropped: host %s is not a known receipt host", host[:100])
    return None
