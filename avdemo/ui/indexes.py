"""The app's datasets and their indexes: which split folders can be chosen, and each (model, dataset)
index, built on first use and then shared by all sessions (read-only)."""
from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from ..index import SampleIndex, ensure_index
from ..model import AVLocalizer
from .models import checkpoint_file, get_model, model_at

EMBEDDED_SPLITS = ("test", "val", "openset")
_LOCK = threading.Lock()      # one index build at a time; concurrent requests wait for it


def dataset_choices(default: str | Path) -> list[tuple[str, str]]:
    """(label, resolved folder) of the datasets to offer: ``default`` and the embedded evaluation
    splits already generated."""
    from ..data.splits import default_root

    embedded = default_root()
    folders = [Path(default)] + [embedded / s for s in EMBEDDED_SPLITS if (embedded / s / "vggss.json").is_file()]
    seen: dict[str, str] = {}
    for folder in folders:
        key = str(folder.resolve())
        label = f"embedded {folder.name} split" if folder.resolve().parent == embedded.resolve() else str(folder)
        seen.setdefault(key, label)
    return [(label, key) for key, label in seen.items()]


@lru_cache(maxsize=4)
def _index(path: str, dataset: str) -> SampleIndex:
    return ensure_index(path, dataset, model=model_at(path))


def get_index(checkpoint: str, dataset: str) -> SampleIndex:
    """The index of ``dataset`` under the picker choice ``checkpoint`` (built first when the disk cache
    has none)."""
    with _LOCK:
        return _index(checkpoint_file(checkpoint), str(dataset))


def model_and_index(checkpoint: str, dataset: str) -> tuple[AVLocalizer, SampleIndex]:
    return get_model(checkpoint), get_index(checkpoint, dataset)
