"""The limits that keep a public app up for everyone: disk for uploads, the index build queue, memory for
loaded models, and per-visitor rates. Read from the environment in one place (``Limits.from_env``).

| variable | default | what |
|---|---|---|
| ``AVDEMO_MAX_UPLOADS_MB`` | 2048 | total size of the uploads folder; least recently used uploads go first |
| ``AVDEMO_MAX_DOWNLOAD_MB`` | 2048 | one uploaded (or downloaded) checkpoint file |
| ``AVDEMO_UPLOAD_TTL_H`` | 24 | an upload nobody used for this long is removed |
| ``AVDEMO_UPLOAD_INDEX_PAIRS`` | 0 | pairs of the dataset indexed for an uploaded model (0: all) |
| ``AVDEMO_MAX_LOADED_MODELS`` | 5 | models kept loaded at once (4 side by side and the default) |
| ``AVDEMO_MODEL_MEMORY_MB`` | 2048 | parameters of the loaded models, together (float32) |
| ``AVDEMO_UPLOADS_PER_HOUR`` | 10 | checkpoint uploads per visitor per hour |
| ``AVDEMO_HEAVY_PER_HOUR`` | 30 | video mappings and index builds per visitor per hour |
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields

from .errors import AVDemoError
from .fetch import DEFAULT_MAX_MB

ENV = {"max_uploads_mb": "AVDEMO_MAX_UPLOADS_MB", "max_file_mb": "AVDEMO_MAX_DOWNLOAD_MB",
       "upload_ttl_h": "AVDEMO_UPLOAD_TTL_H", "upload_index_pairs": "AVDEMO_UPLOAD_INDEX_PAIRS",
       "max_loaded_models": "AVDEMO_MAX_LOADED_MODELS", "model_memory_mb": "AVDEMO_MODEL_MEMORY_MB",
       "uploads_per_hour": "AVDEMO_UPLOADS_PER_HOUR", "heavy_per_hour": "AVDEMO_HEAVY_PER_HOUR"}


@dataclass(frozen=True)
class Limits:
    """Every limit of the app; ``from_env`` reads them (the module's table lists the variables)."""

    max_uploads_mb: float = 2048
    max_file_mb: float = DEFAULT_MAX_MB
    upload_ttl_h: float = 24
    upload_index_pairs: int = 0        # all: models side by side need the same pairs
    max_loaded_models: int = 5         # MAX_MODELS side by side, and the default
    model_memory_mb: float = 2048
    uploads_per_hour: int = 10
    heavy_per_hour: int = 30

    @classmethod
    def from_env(cls) -> Limits:
        values = {}
        for field in fields(cls):
            text = os.environ.get(ENV[field.name])
            if text is None or text == "":
                continue
            try:
                value = float(text) if field.type == "float" else int(text)
            except ValueError:
                raise AVDemoError(f"{ENV[field.name]}={text!r} is not a number") from None
            if value < 0:
                raise AVDemoError(f"{ENV[field.name]}={text!r} must not be negative")
            values[field.name] = value
        return cls(**values)
