"""Errors of the Alimtalk package.

    ArspayError
    └── AlimtalkError            anything this package raises on purpose
        └── AlimtalkAnswerError  the provider answered in a shape we do not know

Provider outcomes (refused, down, unknown) are not exceptions: they are
:mod:`~ivr.notify.alimtalk.contract` values the dispatcher acts on. Messages name the
provider and the cause (status, result code), never the recipient or the parameters.
"""

from __future__ import annotations

from ivr.errors import ArspayError


class AlimtalkError(ArspayError, error_id="alimtalk-error", http_status=502): ...


class AlimtalkAnswerError(AlimtalkError, error_id="alimtalk-bad-answer", http_status=502): ...
