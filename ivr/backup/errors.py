"""The backup package's errors.

ArspayError
└── BackupError              backup-error              500 a snapshot or tool failed
    ├── ArchiveInvalid       backup-archive-invalid    422 not an archive this reads
    └── RestoreRefused       backup-restore-refused    409 target not fresh, or live
"""

from __future__ import annotations

from ivr.errors import ArspayError


class BackupError(ArspayError, error_id="backup-error"): ...


class ArchiveInvalid(BackupError, error_id="backup-archive-invalid", http_status=422): ...


class RestoreRefused(BackupError, error_id="backup-restore-refused", http_status=409): ...
