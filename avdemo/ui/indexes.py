"""The app's datasets and their indexes: which split folders can be chosen (by name: the page and the API
never see a server folder), and each (model, dataset) index, built on first use and then shared by all
sessions (read-only)."""
from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from ..index import SampleIndex, ensure_index
from ..model import AVLocalizer
from ..errors import AVDemoError
from .inputs import shown
from .models import checkpoint_file, get_model, model_at

EMBEDDED_SPLITS = ("test", "val", "openset")
_LOCK = threading.Lock()      # one index build at a time; concurrent requests wait for it
_DATASETS: dict[str, Path] = {}    # name shown to users -> resolved folder


def _name(folder: Path, embedded: Path) -> str:
    if folder.parent == embedded:
        return f"embedded {folder.name} split"
    name = folder.name
    if _DATASETS.get(name, folder) != folder:
        name = f"{folder.parent.name}/{folder.name}"
    return name


def dataset_choices(default: str | Path) -> list[str]:
    """The names of the datasets to offer: ``default`` first, then the embedded evaluation splits already
    generated; each name is registered for ``dataset_folder``."""
    from ..data.splits import default_root

    embedded = default_root().resolve()
    folders = [Path(default)] + [embedded / s for s in EMBEDDED_SPLITS if (embedded / s / "vggss.json").is_file()]
    names: list[str] = []
    for folder in (f.resolve() for f in folders):
        name = next((n for n, f in _DATASETS.items() if f == folder), None) or _name(folder, embedded)
        _DATASETS[name] = folder
        if name not in names:
            names.append(name)
    return names


def dataset_folder(name: str) -> Path:
    """The folder a dataset name stands for; a clear error for any other name."""
    if not isinstance(name, str) or name not in _DATASETS:
        raise AVDemoError(f"dataset: {shown(name)} is not one of the datasets ({', '.join(_DATASETS)})")
    return _DATASETS[name]


@lru_cache(maxsize=4)
def _index(path: str, dataset: str) -> SampleIndex:
    return ensure_index(path, dataset, model=model_at(path))


def get_index(checkpoint: str, dataset: str) -> SampleIndex:
    """The index of the dataset named ``dataset`` under the picker choice ``checkpoint`` (built first when
    the disk cache has none)."""
    folder = dataset_folder(dataset)
    with _LOCK:
        return _index(checkpoint_file(checkpoint), str(folder))


def model_and_index(checkpoint: str, dataset: str) -> tuple[AVLocalizer, SampleIndex]:
    return get_model(checkpoint), get_index(checkpoint, dataset)
