"""The console's ASGI app, mounted at ``/console`` by the web app (ivr/web/app.py).

Every answer carries strict security headers (a CSP allowing only this site's scripts
and styles, no framing, referrers only within the site, ``no-store``). Errors become a page in the
viewer's language with the API's status codes; an expired session sends a page to
the login form and an htmx request to it via ``HX-Redirect``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from ivr.console.access import CsrfRefused, LoginRequired, language
from ivr.console.i18n import text
from ivr.console.render import page
from ivr.console.web import ConsoleDeps, url
from ivr.errors import ArspayError

log = logging.getLogger("arspay.console")

STATIC = Path(__file__).parent / "static"

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make Chromium send "Origin: null"
    "Cache-Control": "no-store",
}


def create_console(deps: ConsoleDeps) -> FastAPI:
    from ivr.console.pages import ROUTERS

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = deps
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            response = await call_next(request)
        except Exception as exc:  # a bug in a page: an error page, not a dropped socket
            response = await error_page(request, exc)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    async def login_required(request: Request, exc: Exception) -> Response:
        target = url("/login") + "?next=" + quote(request.url.path, safe="/")
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    async def error_page(request: Request, exc: Exception) -> Response:
        lang = language(request)
        viewer = getattr(request.state, "viewer", None)
        if isinstance(exc, CsrfRefused):
            status, message = 403, text(lang, "error.csrf")
        elif isinstance(exc, RequestValidationError):
            status, message = 422, text(lang, "error.invalid")
        elif isinstance(exc, StarletteHTTPException):
            status = exc.status_code
            message = text(lang, "error.not_found" if status == 404 else "error.generic")
        elif isinstance(exc, ArspayError):
            status = exc.http_status
            message = exc.message if status < 500 else text(lang, "error.generic")
            if status == 404:
                message = text(lang, "error.not_found")
            elif status == 403:
                message = text(lang, "error.forbidden")
        else:
            log.error("console page failed: %s %s (%s)", request.method, request.url.path,
                      type(exc).__name__, exc_info=exc)  # fmt: skip
            status, message = 500, text(lang, "error.generic")
        template = "fragments/error.html" if request.headers.get("hx-request") else "error.html"
        return page(request, viewer, template, status_code=status, message=message, lang=lang)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(ArspayError, error_page)
    app.add_exception_handler(StarletteHTTPException, error_page)
    app.add_exception_handler(RequestValidationError, error_page)
    return app
