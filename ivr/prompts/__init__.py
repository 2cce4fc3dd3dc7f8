"""Voice prompts: the manifest (prompt id → Korean text), Korean readouts, and the audio
Asterisk plays.

    book = PromptBook.from_settings(settings.prompts)
    book.text("pay.details", product="임플란트", amount=53000)
        # "임플란트 결제 금액은 오만 삼천원입니다."
    await book.render("pay.details", product="임플란트", amount=53000)
        # ["arspay/g/…", "arspay/s/pay.details.0", "arspay/n/5", "arspay/n/man",
        #  "arspay/n/3", "arspay/n/cheon", "arspay/s/pay.details.1"]

Modules: ``manifest`` (parse, validate), ``slots`` (placeholder readers), ``korean``
(pure number/digit readings), ``segments`` (segment names), ``audio`` (espeak-ng,
sox), ``store`` (the sounds dir as a cache), ``book`` (the API the flows use).
Errors (``errors``): PromptError ⊃ ManifestError (also a ConfigError), AudioError.
"""

from __future__ import annotations

from ivr.prompts.book import BuildReport, PromptBook
from ivr.prompts.errors import AudioError, ManifestError, PromptError
from ivr.prompts.korean import Reading, read_digits, read_number

__all__ = [
    "AudioError",
    "BuildReport",
    "ManifestError",
    "PromptBook",
    "PromptError",
    "Reading",
    "read_digits",
    "read_number",
]
