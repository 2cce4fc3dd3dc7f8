"""Interactive API docs at ``/docs`` — off unless ``api.docs_enabled``.

The page runs Swagger UI from files packaged with arspay (``static/swagger-ui``,
vendored from the ``swagger-ui-dist`` package: see ``static/VENDORED.md``), never from
a CDN: the docs share the console's origin, so a script fetched from elsewhere could
act as any logged-in console user. Each file is pinned by its SHA-384 in
:data:`ASSETS` and the page names it with Subresource Integrity, so a changed file is
refused by the browser (and by ``tests/api/test_api_edge.py``, which checks the pins
against the files). The page's CSP allows scripts and styles from this site only; its
starter (``docs-init.js``) loads this engine's ``/openapi.json`` and nothing else.
``/openapi.json`` itself is always served.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse, HTMLResponse, Response

STATIC = Path(__file__).parent / "static"
PREFIX = "/docs/assets"

# file under STATIC -> its Subresource Integrity value (sha384, base64)
ASSETS: dict[str, str] = {
    "swagger-ui/swagger-ui.css":
        "sha384-z/AtSaOHGn5MJ5auAHXUypohywlIWLBZo1jeGmhdpVIbCnFhxAH92cwdV41oyINc",
    "swagger-ui/swagger-ui-bundle.js":
        "sha384-fUpRgC19yPykTqzdrUbdAg8NTiu16NEKf9U12J+IJWCg8/1mEI8f2+PEIz60Wyd+",
    "docs-init.js":
        "sha384-xHdnBstMstPZrtKOPkg7OJRFdCEQ1VH9670BpT6PpTv+QT5dE8CuqwyjOqmlJqg3",
}  # fmt: skip
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _tag(name: str) -> str:
    src = escape(f"{PREFIX}/{name}")
    sri = escape(ASSETS[name])
    if name.endswith(".css"):
        return f'<link rel="stylesheet" href="{src}" integrity="{sri}" crossorigin="anonymous">'
    return f'<script src="{src}" integrity="{sri}" crossorigin="anonymous"></script>'


def page() -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>arspay API</title>\n"
        f"{_tag('swagger-ui/swagger-ui.css')}\n</head>\n<body>\n"
        '<div id="swagger-ui"></div>\n'
        f"{_tag('swagger-ui/swagger-ui-bundle.js')}\n{_tag('docs-init.js')}\n"
        "</body>\n</html>\n"
    )


def router() -> APIRouter:
    """``/docs`` and its pinned assets (nothing else under ``static`` is served)."""
    r = APIRouter(include_in_schema=False)
    html = page()

    @r.get("/docs")
    async def docs() -> Response:
        return HTMLResponse(html, headers={**HEADERS, "Cache-Control": "no-store"})

    @r.get(PREFIX + "/{name:path}")
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            return Response(status_code=404)
        return FileResponse(
            STATIC / name,
            media_type=_TYPES[Path(name).suffix],
            headers={**HEADERS, "Cache-Control": "public, max-age=86400"},
        )

    return r
