"""The app's limits in force (``avdemo.limits``): the upload store, the loaded models, the build queue and
the per-visitor rate limiters, one of each for the app, and the visitor a Gradio request comes from. The
hooks in the tabs call these."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import gradio as gr
import torch

from ..budget import MB, ModelCache
from ..buildqueue import BuildQueue
from ..cache import cache_root
from ..checkpoints import load_model
from ..index import default_cache_dir
from ..limits import Limits
from ..model import AVLocalizer
from ..ratelimit import RateLimiter
from ..uploads import UploadStore

LIMITS = Limits.from_env()
BUILDS = BuildQueue()
UPLOAD_RATE = RateLimiter("checkpoint uploads", LIMITS.uploads_per_hour)
HEAVY_RATE = RateLimiter("video mappings and index builds", LIMITS.heavy_per_hour)
HEAVY = dict(concurrency_id="heavy", concurrency_limit=1)     # a Gradio event's queue settings: one at a time


def _load(path: str) -> AVLocalizer:
    return load_model(path, device="cuda" if torch.cuda.is_available() else "cpu")


MODELS: ModelCache[AVLocalizer] = ModelCache(_load, LIMITS.max_loaded_models, int(LIMITS.model_memory_mb * MB))


@lru_cache(maxsize=1)
def upload_store() -> UploadStore:
    """The store of ``$AVDEMO_CACHE/uploads`` (made on first use: the cache folder is read then)."""
    return UploadStore(cache_root() / "uploads", default_cache_dir(), LIMITS)


def keep_default(path: str) -> None:
    """The app's default model (the checkpoint file ``path``) is never unloaded, and what it shares with an
    upload (its indexes) is never removed."""
    MODELS.pin(path)
    upload_store().protect(Path(path))


def visitor(request: gr.Request | None) -> str:
    """Who sends an event: its browser session (or API client); "app" for the app's own jobs."""
    return getattr(request, "session_hash", None) or "app"
