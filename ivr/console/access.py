"""Who is looking at a page, and the two FastAPI dependencies every page uses:

* :func:`viewer` — the logged-in user (else :class:`LoginRequired`, which the app turns
  into a redirect to the login page, or ``HX-Redirect`` for an htmx request);
* :func:`writer` — the same, for a POST: the session's CSRF token must come with it
  (form field ``csrf_token`` or header ``X-CSRF-Token``) and a browser-sent ``Origin``
  must be this site; otherwise :class:`CsrfRefused` (403), before the handler runs.

Scoping: a merchant user's :attr:`Viewer.scope` is its merchant id, an operator's is
``None`` (every merchant). :meth:`Viewer.own` answers 404 for another merchant's object,
as the API does, so ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from ivr.console.errors import ConsoleError, Forbidden
from ivr.console.i18n import Lang, pick, status, text
from ivr.console.sessions import Current
from ivr.console.users import User
from ivr.console.web import ConsoleDeps
from ivr.errors import NotFound
from ivr.web.edge import secure_cookies

SESSION_COOKIE = "arspay_console"
LANG_COOKIE = "arspay_lang"


class LoginRequired(ConsoleError, error_id="login-required", http_status=401): ...


class CsrfRefused(ConsoleError, error_id="csrf-refused", http_status=403): ...


@dataclass(frozen=True, slots=True)
class Viewer:
    user: User
    csrf: str
    lang: Lang

    @property
    def scope(self) -> str | None:
        """The merchant whose data this viewer may see; ``None``: all (operator)."""
        return None if self.user.is_operator else self.user.merchant_id

    @property
    def actor(self) -> str:
        return self.user.actor

    def own(self, merchant_id: str | None, what: str = "object") -> None:
        """404 unless this viewer may see an object of ``merchant_id``."""
        if self.scope is not None and merchant_id != self.scope:
            raise NotFound(f"{what} not found")

    def operator_only(self) -> None:
        if not self.user.is_operator:
            raise Forbidden("operators only")

    def t(self, key: str, **values: object) -> str:
        return text(self.lang, key, **values)

    def st(self, value: str | None) -> str:
        return status(self.lang, value)


def console_deps(request: Request) -> ConsoleDeps:
    deps: ConsoleDeps = request.app.state.console
    return deps


def language(request: Request) -> Lang:
    deps = console_deps(request)
    return pick(request.cookies.get(LANG_COOKIE), deps.settings.console.language)


async def viewer(request: Request) -> Viewer:
    deps = console_deps(request)
    current = await deps.sessions.current(request.cookies.get(SESSION_COOKIE))
    if current is None:
        raise LoginRequired("log in first")
    found = Viewer(current.user, current.csrf, language(request))
    request.state.viewer = found
    return found


def cookies_secure(request: Request) -> bool:
    """Whether the console's cookies are ``Secure`` (``console.secure_cookies``)."""
    settings = console_deps(request).settings
    return secure_cookies(request, settings.console.secure_cookies, settings.api.host)


def same_origin(request: Request) -> bool:
    """A browser-sent ``Origin`` (or, lacking one, ``Referer``) names this host."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return True  # non-browser clients; the CSRF token still has to match
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def writer(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Viewer:
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not same_origin(request) or not Current(who.user, who.csrf).csrf_ok(sent):
        raise CsrfRefused("missing or wrong CSRF token")
    return who


Reader = Annotated[Viewer, Depends(viewer)]
Writer = Annotated[Viewer, Depends(writer)]
Deps = Annotated[ConsoleDeps, Depends(console_deps)]
