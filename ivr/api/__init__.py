"""The merchant REST API (docs/product.md §9), served by the engine process.

Modules, one role each:
    auth         Bearer API keys and the per-key rate limit
    idempotency  ``Idempotency-Key``: stored responses, 409 on a concurrent duplicate
    route        the route class that runs auth, rate limit and idempotency around handlers
    schemas      request and response models (the OpenAPI document is built from them)
    routes/      one module per resource
    app          ``create_api(ApiDeps)`` and its OpenAPI document
    deps         ``ApiDeps``: the view of the runtime's services the handlers use

Shared with the console, in ivr/web: problems, pagination, views, the edge middleware;
the app factory that mounts both and serves them is ivr/web/app.py.
"""
