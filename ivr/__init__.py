"""arspay engine: ARS (IVR) automatic card payment on Asterisk.

Sub-packages, one capability each:

- ``settings``  typed, frozen configuration (defaults -> arspay.toml -> ARSPAY_* env)
- ``store``     SQLAlchemy tables, the database handle, Alembic migrations
- ``domain``    state machines and ids shared by every service
- ``dids``      the virtual-number (DID) pool and its leases (docs/product.md §2)
- ``merchants`` merchants, API keys, customers
- ``requests``  call requests (registration / payment)
- ``consent``   the MAC-chained, checkpointed consent ledger (docs/product.md §4.3)
- ``cli``       the ``arspay`` command
"""

__version__ = "0.1.0"
