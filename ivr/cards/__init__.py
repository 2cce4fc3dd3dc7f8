"""Registered cards (engine side: tokens and masked data only).

- ``service``        the card row's life cycle (attach, list, delete = vault erase)
- ``verification``   the durable per-card limit on wrong birth dates in payment calls
- ``billing_keys``   deleting a deleted card's billing key at the PG
- ``sweep``          erasing vault records no card refers to
"""
