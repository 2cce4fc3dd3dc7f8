"""The card vault: the only code that ever sees a plaintext card number after capture.

Cards are stored with envelope encryption (a random AES-256-GCM data key per record,
wrapped by a versioned KEK held in a PKCS#11 token or a 0600 key file), behind random
tokens; decrypts are audited (who, when, why — in a log chained with a keyed MAC and
checkpointed, :mod:`vault.audit_chain`) and happen only to forward a card to the
payment gateway, or to answer whether a keyed birth date matches the stored one (yes or
no, never the value; ``verify_birth``). The engine reaches the vault through
:class:`vault.client.VaultClient` — in-process (:class:`vault.service.LocalVault`) or
over the ``arspay vault serve`` Unix socket (:class:`vault.remote.RemoteVault`). See
docs/vault.md.
"""
