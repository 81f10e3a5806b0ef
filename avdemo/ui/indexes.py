"""The app's datasets and their indexes: which split folders can be chosen (by name: the page and the API
never see a server folder), and each (model, dataset) index, prepared in the background (the embedded
split generated first when missing), one at a time, and then shared by all sessions (read-only).

The page asks ``ready_index`` (never waits) and shows ``build_status`` while it is not ready; the API's
handlers ask ``get_index``, which waits for it."""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from ..errors import AVDemoError
from ..index import SampleIndex, ensure_index
from .inputs import shown
from .models import ModelHandle, model_at

EMBEDDED_SPLITS = ("test", "val", "openset")
_DATASETS: dict[str, Path] = {}    # name shown to users -> resolved folder
_BUILDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index")   # one job at a time, in order
_JOBS: dict[tuple, Future] = {}      # (what, ...) -> its result, e.g. ("index", checkpoint file, folder)
_JOBS_LOCK = threading.Lock()


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
    return ensure_index(path, folder, model=model_at(path))


def in_background(key: tuple, fn: Callable[..., Any], *args: Any) -> Future:
    """The job ``key`` (``fn(*args)``), queued once behind the others; a failed one is tried again."""
    with _JOBS_LOCK:
        job = _JOBS.get(key)
        if job is None or (job.done() and job.exception() is not None):
            job = _JOBS[key] = _BUILDER.submit(fn, *args)
    return job


def _job(model: ModelHandle, dataset: str) -> Future:
    folder = dataset_folder(dataset)
    return in_background(("index", model.path, str(folder)), _prepare, model.path, folder)


def ready_index(model: ModelHandle, dataset: str) -> SampleIndex | None:
    """The index of ``dataset`` under ``model`` when it is ready; else None, its preparation queued (a
    failed preparation raises its error)."""
    job = _job(model, dataset)
    return job.result() if job.done() else None


def get_index(model: ModelHandle, dataset: str) -> SampleIndex:
    """The index of the dataset named ``dataset`` under ``model``, waiting for its preparation (minutes
    when it is built for the first time)."""
    return _job(model, dataset).result()


def get_indexes(models: list[ModelHandle], dataset: str) -> list[SampleIndex]:
    """Every picked model's index of the dataset, in the models' order."""
    return [get_index(m, dataset) for m in models]


def build_status(models: list[ModelHandle], dataset: str) -> str:
    """What is being prepared for the page, and how far it has got (the running stages' progress bars);
    empty when every picked model's index of ``dataset`` is ready."""
    waiting, failed = [], []
    for model in models:
        job = _job(model, dataset)
        if not job.done():
            waiting.append(model.label)
        elif job.exception() is not None:
            failed.append(f"⚠️ {model.label}: {job.exception()}")
    if not waiting:
        return "  \n".join(failed)
    bars = [bar for bar in list(getattr(tqdm, "_instances", [])) if bar.total and not bar.disable]
    stages = ", ".join(f"{bar.desc or 'working'} {bar.n}/{bar.total} ({100 * bar.n / bar.total:.0f} %)"
                       for bar in bars)
    return "  \n".join([f"⏳ Preparing the **{dataset}** index of **{', '.join(waiting)}** in the background (the "
                        f"first time: minutes): {stages or 'starting'}. This tab fills itself when it is ready; "
                        f"the video tab works meanwhile.", *failed])
