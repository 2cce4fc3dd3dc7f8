"""Backups: a consistent online snapshot of the engine's and the vault's databases in
one archive, checked without restoring, restored into a fresh place and checked there.

    errors.py      the package's error tree
    manifest.py    the archive's manifest: versions, revision, member hashes, key ids
    snapshot.py    one database -> one file: SQLite's backup API, pg_dump / pg_restore
    archive.py     the tar itself: written 0600 and atomically, read member by member
    create.py      ``arspay backup create``: snapshot both databases, write the archive
    verify.py      ``arspay backup verify``: hashes, integrity checks, known revisions
    restore.py     ``arspay backup restore``: unpack into a fresh place (never the live one)
    checks.py      the restored system checked: revision, db check, row counts, consent
                   chain, vault KEK ids and a decrypt sample

The archive never holds a key (KEK, fingerprint, audit or consent evidence key): the
manifest names the KEK ids its records need. It does hold encrypted card data and the
consent evidence, so it needs the same care as the databases (docs/backup.md).
"""
