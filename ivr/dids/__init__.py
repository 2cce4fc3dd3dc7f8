"""The virtual-number (DID) pool: import numbers, lease (DID, mobile) pairs, release,
expire. ``pool.DidPool`` is the service; ``numbers`` parses operator input."""
