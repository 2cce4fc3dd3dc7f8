"""Consent evidence (docs/product.md §4.3): an append-only ledger chained with a keyed
MAC, and signed checkpoints of its head, that a database admin cannot rewrite unnoticed
(docs/consent.md).

- ``records``  a record's canonical JSON and content hash
- ``keys``     the evidence key file (outside the database) and the checkpoint directory
- ``ledger``   appending (MAC'ed, serialized), sealing records from before keyed MACs,
               verifying
- ``chain``    the walk that checks every record, the seal and what it sealed
- ``evidence`` checkpoints (signed only over a chain that verifies, periodic in the
               engine) and the export with its signed attestation
"""
