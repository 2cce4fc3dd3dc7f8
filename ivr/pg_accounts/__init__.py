"""PG accounts per merchant (#27): the accounts cards are registered at, a merchant's
primary and secondary, the gateways they open with a circuit breaker each, and moving
cards from one account to another.

* :mod:`ivr.pg_accounts.model` — :class:`Account` (secrets never in its repr) and
  ``default``, the ``[gateway]`` settings' account.
* :mod:`ivr.pg_accounts.store` — :class:`PgAccounts`: create, change, disable, list
  (secrets sealed under ``gateway.accounts_key_file``), and merchants' routes.
"""
