"""The merchant REST API (PRODUCT section 9), served by the engine process.

Modules, one role each:
    problems     RFC 9457 ``application/problem+json`` errors with stable ``code`` ids
    auth         Bearer API keys and the per-key rate limit
    idempotency  ``Idempotency-Key``: stored responses, 409 on a concurrent duplicate
    route        the route class that runs auth, rate limit and idempotency around handlers
    pagination   opaque cursors over ULID ids (newest first)
    schemas      request and response models (the OpenAPI document is built from them)
    views        table rows -> response models
    routes/      one module per resource
    app          ``create_app(ApiDeps)`` and ``serve`` (uvicorn inside the engine's loop)
"""
