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
from .guards import BUILDS, HEAVY_RATE, LIMITS
from .inputs import shown
from .models import ModelHandle, model_at, uploads_dir

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


def _key(model: ModelHandle, dataset: str) -> tuple:
    return "index", model.path, str(dataset_folder(dataset))


def _job(model: ModelHandle, dataset: str, owner: str = "app") -> Future:
    key = _key(model, dataset)
    return in_background(key, _prepare, key[1], Path(key[2]), owner=owner)


def cancel_index(model: ModelHandle, dataset: str, owner: str) -> bool:
    """Cancel ``owner``'s preparation of the index of ``dataset`` under ``model``; whether one was."""
    return BUILDS.cancel(_key(model, dataset), owner)


def ready_index(model: ModelHandle, dataset: str, owner: str = "app") -> SampleIndex | None:
    """The index of ``dataset`` under ``model`` when it is ready; else None, its preparation queued for
    ``owner`` (a failed preparation raises its error)."""
    job = _job(model, dataset, owner)
    return job.result() if job.done() else None


def get_index(model: ModelHandle, dataset: str) -> SampleIndex:
    """The index of the dataset named ``dataset`` under ``model``, waiting for its preparation (minutes
    when it is built for the first time)."""
    return _job(model, dataset).result()


def get_indexes(models: list[ModelHandle], dataset: str) -> list[SampleIndex]:
    """Every picked model's index of the dataset, in the models' order; a clear error when they do not
    cover the same pairs (an upload indexed on a subset, ``AVDEMO_UPLOAD_INDEX_PAIRS``, beside another
    model): the tabs set the models' samples side by side."""
    indexes = [get_index(m, dataset) for m in models]
    for model, index in zip(models[1:], indexes[1:]):
        if index.ids != indexes[0].ids:
            raise AVDemoError(f"models: {model.label} is indexed on {len(index)} of the dataset's pairs and "
                              f"{models[0].label} on {len(indexes[0])}; side by side they need the same pairs "
                              f"(uploads are indexed on at most AVDEMO_UPLOAD_INDEX_PAIRS pairs: set it to 0 for "
                              f"all of them), so pick them one at a time")
    return indexes


def build_status(models: list[ModelHandle], dataset: str) -> str:
    """What is being prepared for the page, and how far it has got (the running stages' progress bars);
    empty when every picked model's index of ``dataset`` is ready."""
    running = ", ".join(f"{desc or 'working'} {n}/{total} ({100 * n / total:.0f} %)"
                        for desc, n, total in running_bars()) or "starting"
    lines = []
    for model in models:
        job = _job(model, dataset)
        if job.done():
            if job.exception() is not None:
                lines.append(f"⚠️ {model.label}: {job.exception()}")
            continue
        place = BUILDS.position(_key(model, dataset))   # waiting behind other builds: the bars are theirs
        stage = f"number {place} in the build queue (one build at a time, visitors in turn)" if place else running
        pairs = upload_pairs(model.path)
        subset = f" (an uploaded model: at most {pairs} pairs of the dataset, evenly spaced)" if pairs else ""
        lines.append(f"⏳ Preparing the **{dataset}** index of **{model.label}**{subset} in the background (the "
                     f"first time: minutes): {stage}.")
    if any(line.startswith("⏳") for line in lines):
        lines.append("The tabs fill themselves when every index is ready; the video tab works meanwhile.")
    return "  \n".join(lines)


def running_bars() -> list[tuple[str, int, int]]:
    """(description, done, total) of the running tqdm bars; a bar another thread is still constructing (already
    registered, its attributes not yet set) is left out."""
    bars = []
    for bar in list(getattr(tqdm, "_instances", [])):
        total = getattr(bar, "total", None)
        if total and not getattr(bar, "disable", True):
            bars.append((getattr(bar, "desc", ""), getattr(bar, "n", 0), total))
    return bars
