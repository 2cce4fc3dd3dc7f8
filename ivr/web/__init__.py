"""The web layer: the app factory that serves the merchant API and the admin console
side by side, and the pieces both use.

Modules, one role each:
    app          ``create_app``: the API (ivr/api) with the console (ivr/console) mounted
    serve        uvicorn inside the engine's loop (the engine's ``api`` worker)
    deps         the view of the runtime's services both faces' handlers share
    edge         the middleware every request passes first; client address, cookies
    problems     RFC 9457 ``application/problem+json`` errors with stable ``code`` ids
    pagination   opaque cursors over ULID ids (newest first)
    views        table rows -> response models

Imports go one way: ``ivr.web.app`` → ``ivr.api`` / ``ivr.console`` → the shared modules
here → ``ivr.runtime`` and below. The API and the console never import each other.
"""
