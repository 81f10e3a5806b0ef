"""The app's loaded models: checkpoint choices and a small cache of loaded models (the app's only state)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from ..checkpoints import OFFICIAL_SUFFIXES, load_model
from ..model import AVLocalizer

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "default.safetensors"


def checkpoint_choices(folder: Path = CHECKPOINT_DIR) -> list[str]:
    """Checkpoints under ``folder`` (ours and the authors'), the default first."""
    found = sorted(str(p) for p in folder.iterdir()
                   if p.suffix == ".safetensors" or p.name.endswith(OFFICIAL_SUFFIXES))
    default = str(DEFAULT_CHECKPOINT)
    return [default] + [p for p in found if p != default] if default in found else found


@lru_cache(maxsize=3)
def get_model(path: str) -> AVLocalizer:
    """The model at ``path``, loaded once (on the GPU when there is one) and shared by all sessions
    (read-only use only)."""
    return load_model(path, device="cuda" if torch.cuda.is_available() else "cpu")
