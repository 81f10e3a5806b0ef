"""The app's datasets and their indexes: which split folders can be chosen (by name: the page and the API
never see a server folder), and each (model, dataset) index, prepared in the background (the embedded
split generated first when missing), one at a time, and then shared by all sessions (read-only).

The page asks ``ready_index`` (never waits) and shows ``build_status`` while it is not ready; the API's
handlers ask ``get_index``, which waits for it."""
from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from ..errors import AVDemoError
from ..index import SampleIndex, ensure_index
from ..model import AVLocalizer
from .inputs import shown
from .guards import BUILDS, HEAVY_RATE, LIMITS
from .models import checkpoint_file, get_model, model_at, uploads_dir

EMBEDDED_SPLITS = ("test", "val", "openset")
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


def _prepare(path: str, folder: Path) -> SampleIndex:
    """The index of ``folder`` under the checkpoint file ``path``: the embedded split generated first
    when it is missing, then the index loaded from the disk cache or built."""
    from ..data.splits import default_root, ensure_split

    if folder.parent == default_root().resolve() and not (folder / "vggss.json").is_file():
        ensure_split(folder.name, folder.parent)
    return ensure_index(path, folder, model=model_at(path), max_pairs=upload_pairs(path))


def upload_pairs(path: str) -> int | None:
    """How many pairs an index of the checkpoint file ``path`` covers: a subset for an upload
    (``AVDEMO_UPLOAD_INDEX_PAIRS``; 0 is all of them), the whole dataset otherwise."""
    return (LIMITS.upload_index_pairs or None) if Path(path).is_relative_to(uploads_dir()) else None


def in_background(key: tuple, fn: Callable[..., Any], *args: Any, owner: str = "app") -> Future:
    """The job ``key`` (``fn(*args)``), queued once for ``owner`` (a visitor's new job counts against their
    rate limit; ``guards.BUILDS`` serves visitors in turn); a failed or cancelled one is tried again."""
    admit = None if owner == "app" else lambda: HEAVY_RATE.check(owner)
    return BUILDS.submit(key, fn, *args, owner=owner, admit=admit)


def _key(checkpoint: str, dataset: str) -> tuple:
    return "index", checkpoint_file(checkpoint), str(dataset_folder(dataset))


def _job(checkpoint: str, dataset: str, owner: str = "app") -> Future:
    key = _key(checkpoint, dataset)
    return in_background(key, _prepare, key[1], Path(key[2]), owner=owner)


def cancel_index(checkpoint: str, dataset: str, owner: str) -> bool:
    """Cancel ``owner``'s preparation of the index of ``dataset`` under ``checkpoint``; whether one was."""
    return BUILDS.cancel(_key(checkpoint, dataset), owner)


def ready_index(checkpoint: str, dataset: str, owner: str = "app") -> SampleIndex | None:
    """The index of ``dataset`` under ``checkpoint`` when it is ready; else None, its preparation queued
    for ``owner`` (a failed preparation raises its error)."""
    job = _job(checkpoint, dataset, owner)
    return job.result() if job.done() else None


def get_index(checkpoint: str, dataset: str) -> SampleIndex:
    """The index of the dataset named ``dataset`` under the picker choice ``checkpoint``, waiting for its
    preparation (minutes when it is built for the first time)."""
    return _job(checkpoint, dataset).result()


def build_status(checkpoint: str, dataset: str) -> str:
    """What is being prepared for the page, and how far it has got (the running stages' progress bars);
    empty when the index of ``dataset`` under ``checkpoint`` is ready."""
    job = _job(checkpoint, dataset)
    if job.done():
        return "" if job.exception() is None else f"⚠️ {job.exception()}"
    bars = [bar for bar in list(getattr(tqdm, "_instances", [])) if bar.total and not bar.disable]
    stages = ", ".join(f"{bar.desc or 'working'} {bar.n}/{bar.total} ({100 * bar.n / bar.total:.0f} %)"
                       for bar in bars)
    place = BUILDS.position(_key(checkpoint, dataset))
    if place:                                       # waiting behind other builds: their bars are not this one's
        stages = f"number {place} in the build queue (one build at a time, visitors in turn)"
    pairs = upload_pairs(checkpoint_file(checkpoint))
    subset = f" (an uploaded model: at most {pairs} pairs of the dataset, evenly spaced)" if pairs else ""
    return (f"⏳ Preparing the **{dataset}** index of **{checkpoint}**{subset} in the background (the first time: "
            f"minutes): {stages or 'starting'}. This tab fills itself when it is ready; the video tab works "
            f"meanwhile.")


def model_and_index(checkpoint: str, dataset: str) -> tuple[AVLocalizer, SampleIndex]:
    return get_model(checkpoint), get_index(checkpoint, dataset)
