"""The prompts package's errors.

    ArspayError
    └── PromptError            unknown prompt id, missing/extra/bad value, no audio file
        ├── ManifestError      prompts/manifest is malformed (also a ConfigError)
        └── AudioError         espeak-ng or sox missing or failed, a bad recording

Messages name prompt ids, placeholders, segment names and files — never the values
passed to a prompt.
"""

from __future__ import annotations

from ivr.errors import ArspayError, ConfigError


class PromptError(ArspayError, error_id="prompt-error"): ...


class ManifestError(PromptError, ConfigError, error_id="prompt-manifest-error"):
    """A bad manifest line; the message starts with ``file:line:``."""


class AudioError(PromptError, error_id="prompt-audio-error"): ...
