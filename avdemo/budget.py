"""Memory for loaded models: a checkpoint's parameter size read without loading it, and an LRU cache of
loaded models bounded by their number and their parameters' size together."""
from __future__ import annotations

import json
import struct
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Generic, TypeVar

import torch

from .errors import AVDemoError
from .fetch import checkpoint_format

MB = 2**20
STATE_KEYS = ("model_state_dict", "state_dict", "model")    # where .pth files keep their weights
M = TypeVar("M")


def _safetensors_numels(path: Path) -> list[tuple[int, bool]]:
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return [(int(torch.Size(t["shape"]).numel()), t["dtype"].startswith(("F", "BF")))
            for name, t in header.items() if name != "__metadata__"]


def _torch_numels(path: Path) -> list[tuple[int, bool]]:
    obj = torch.load(path, map_location="cpu", mmap=True, weights_only=True)   # tensors stay on the disk
    state = next((obj[k] for k in STATE_KEYS if isinstance(obj, dict) and isinstance(obj.get(k), dict)), obj)
    return [(t.numel(), t.is_floating_point()) for t in state.values() if isinstance(t, torch.Tensor)]


def parameter_bytes(path: str | Path) -> int:
    """Bytes the checkpoint's tensors take once loaded (floating point as float32, as ``load_model`` keeps
    them), read from the file's header (safetensors) or a memory-mapped weights-only load (PyTorch zip
    files); the file's size for older PyTorch files, which cannot be memory-mapped."""
    path = Path(path)
    try:
        numels = _safetensors_numels(path) if checkpoint_format(path) == "safetensors" else _torch_numels(path)
    except Exception:  # noqa: BLE001 - a legacy or odd file: its size is the estimate; loading names the problem
        return path.stat().st_size
    return sum(n * 4 if floating else n * 8 for n, floating in numels)


class ModelCache(Generic[M]):
    """Models by checkpoint file, loaded by ``load``, at most ``max_models`` of them and ``budget_bytes`` of
    parameters together; the least recently used go first, except pinned ones (the app's default model).
    A model that would not fit beside the pinned ones is refused before it is loaded."""

    def __init__(self, load: Callable[[str], M], max_models: int, budget_bytes: int,
                 size: Callable[[str], int] = parameter_bytes) -> None:
        self.load, self.max_models, self.budget_bytes, self.size = load, max(1, max_models), budget_bytes, size
        self._models: OrderedDict[str, tuple[M, int]] = OrderedDict()
        self._pinned: set[str] = set()
        self._lock = threading.RLock()

    def pin(self, path: str) -> None:
        """Never evict the model of ``path``."""
        self._pinned.add(str(path))

    def loaded_bytes(self) -> int:
        return sum(size for _, size in self._models.values())

    def check(self, path: str) -> int:
        """The parameter bytes of ``path``, or an ``AVDemoError`` with the figures when they do not fit the
        budget left beside the pinned models."""
        need = self.size(path)
        with self._lock:
            pinned = sum(size for p, (_, size) in self._models.items() if p in self._pinned and p != str(path))
        if need > self.budget_bytes - pinned:
            raise AVDemoError(f"{Path(path).name}: its parameters need {need / MB:.0f} MB of memory (float32), "
                              f"but only {(self.budget_bytes - pinned) / MB:.0f} MB of the "
                              f"{self.budget_bytes / MB:.0f} MB model budget is left beside the default model's "
                              f"{pinned / MB:.0f} MB (AVDEMO_MODEL_MEMORY_MB)")
        return need

    def get(self, path: str) -> M:
        """The model of ``path``, loaded once (after ``check``), evicting the least recently used ones."""
        path = str(path)
        with self._lock:
            if path in self._models:
                self._models.move_to_end(path)
                return self._models[path][0]
            need = self.check(path)
            for old in [p for p in self._models if p not in self._pinned]:
                if len(self._models) < self.max_models and self.loaded_bytes() + need <= self.budget_bytes:
                    break
                del self._models[old]
            model = self.load(path)
            self._models[path] = (model, need)
            return model

    def __len__(self) -> int:
        return len(self._models)
