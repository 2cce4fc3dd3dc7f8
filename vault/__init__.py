"""The card vault: the only code that ever sees a plaintext card number after capture.

Envelope encryption (AES-256-GCM data keys wrapped by a KEK in PKCS#11 or a key file),
random tokens, audited decrypts and PG forwarding arrive with the vault issue (#4); until
then the engine stores no card data at all.
"""
