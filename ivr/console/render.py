"""Templates: one Jinja2 environment (autoescaped), the filters pages share, and
:func:`page` / :func:`fragment` to answer with HTML.

Times are shown in Asia/Seoul; amounts as ``12,345원`` / ``KRW 12,345``. A card is only
ever shown through :func:`card_label` (issuer, BIN6 with the rest masked, last 4).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ivr.console.access import Viewer

SEOUL = ZoneInfo("Asia/Seoul")
TEMPLATES = Path(__file__).parent / "templates"
STOP_POLLING = 286  # a fragment's status that stops htmx polling it (``every`` trigger)


def money(amount: int | None, lang: str = "ko") -> str:
    if amount is None:
        return "—"
    return f"{amount:,}원" if lang == "ko" else f"KRW {amount:,}"


def local(at: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return "—" if at is None else at.astimezone(SEOUL).strftime(fmt)


def card_label(bin6: str, last4: str, issuer: str = "") -> str:
    """``신한 411111******1111``: never more than BIN + last 4 (PCI DSS 3.4)."""
    masked = f"{bin6}{'*' * 6}{last4}"
    return f"{issuer} {masked}".strip()


def mask_mobile(mobile: str) -> str:
    """``010-****-5678``: a console needs to recognise a payer, not to dial one."""
    digits = "".join(c for c in mobile if c.isdigit())
    if len(digits) < 8:
        return "*" * len(digits)
    return f"{digits[:3]}-****-{digits[-4:]}"


def seconds_between(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    return f"{(end - start).total_seconds():.1f}s"


def make_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local"] = local
    env.filters["mobile"] = mask_mobile
    env.globals["card_label"] = card_label
    env.globals["seconds_between"] = seconds_between
    return env


ENV = make_env()


def _context(request: Request, viewer: Viewer | None, values: dict[str, Any]) -> dict[str, Any]:
    lang = viewer.lang if viewer is not None else values.get("lang", "ko")
    ctx: dict[str, Any] = {
        "request": request,
        "viewer": viewer,
        "lang": lang,
        "path": request.url.path,
        "money": lambda amount: money(amount, lang),
    }
    if viewer is not None:
        ctx["t"] = viewer.t
        ctx["st"] = viewer.st
        ctx["csrf"] = viewer.csrf
    ctx.update(values)
    return ctx


def page(
    request: Request,
    viewer: Viewer | None,
    template: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    html = ENV.get_template(template).render(_context(request, viewer, values))
    return HTMLResponse(html, status_code=status_code, headers=headers)


fragment = page  # the same, for a template that renders a piece of a page (htmx)
