"""The admin console: server-rendered pages (Jinja2 + htmx, no front-end build) served
by the engine next to the REST API, at ``/console``.

* :mod:`.users` — console users, argon2id passwords, lockout;
* :mod:`.sessions` — server-side sessions (cookie token hashed), CSRF tokens;
* :mod:`.access` — who is looking (:class:`~.access.Viewer`), roles and scoping;
* :mod:`.web` — where the console is mounted and what its pages use (``ConsoleDeps``);
* :mod:`.app` — the ASGI app, security headers, error pages (mounted by ivr/web/app.py);
* :mod:`.pages` — one module per page group.

A merchant user sees its merchant's data only (another merchant's ids answer 404, as in
the API); an operator sees every merchant, the DID pool and the system's health. Pages
show at most BIN + last 4 of a card and never any digit a payer keyed.
"""
