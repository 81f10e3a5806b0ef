"""A run's checkpoints: ``latest.pt`` (everything needed to resume to the same result), written atomically,
and read back only under the same configuration; the final weights' storage dtype."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avdemo.cache import atomic_write
from avdemo.errors import AVDemoError

from .config import TrainConfig
from .views import EmbeddingBank, NeighbourTable

RESUME_MAY_CHANGE = {"out_dir", "steps", "num_workers", "cache_frames", "log_every", "save_every", "eval_batch_size",
                     "final_path", "device", "image_views_on"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
COUNTERS = ("step", "epoch", "batch", "best_score", "best_step", "train_time_s")   # a run's position and best


@dataclasses.dataclass(frozen=True)
class Resumable:
    """What a checkpoint restores besides the counters."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    bank: EmbeddingBank | None


def remove_stale_temp_files(out_dir: Path) -> None:
    """Temp files of writes interrupted by a kill (``atomic_write`` names them ``.<name>.*.tmp``)."""
    for tmp in out_dir.glob(".*.tmp"):
        tmp.unlink()


def save_latest(path: Path, cfg: TrainConfig, counters: dict[str, Any], commands: list[str], parts: Resumable,
                neighbours: NeighbourTable | None) -> None:
    """Write ``latest.pt``: the counters, config, weights, optimiser, schedule, RNG states, the kNN bank
    and tables, and the commands that ran so far."""
    state = {**counters, "config": json.dumps(cfg.to_dict()), "model": parts.model.state_dict(),
             "optimizer": parts.optimizer.state_dict(), "scheduler": parts.scheduler.state_dict(),
             "rng_cpu": torch.get_rng_state(), "commands": json.dumps(commands)}
    if torch.cuda.is_available():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    if parts.bank is not None:
        state["bank"] = parts.bank.state_dict()
    if neighbours is not None:
        state["neighbours"] = torch.from_numpy(np.stack([neighbours.image, neighbours.audio]))
    atomic_write(path, lambda p: torch.save(state, p))


def load_latest(path: Path, cfg: TrainConfig, parts: Resumable
                ) -> tuple[dict[str, Any], list[str], NeighbourTable | None]:
    """Restore ``parts`` and the RNG states from ``latest.pt``; returns its ``COUNTERS``, the commands that
    ran so far and the kNN tables (None before the first). Refuses a checkpoint of another configuration
    (only ``RESUME_MAY_CHANGE`` may differ)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = TrainConfig.from_dict(json.loads(state["config"]))
    changed = sorted(f.name for f in dataclasses.fields(TrainConfig)
                     if getattr(saved, f.name) != getattr(cfg, f.name) and f.name not in RESUME_MAY_CHANGE)
    if changed:
        raise AVDemoError(f"{path} was written with another configuration ({', '.join(changed)} differ); "
                          f"resume with the same config (only {', '.join(sorted(RESUME_MAY_CHANGE))} may "
                          f"change) or use another out_dir")
    parts.model.load_state_dict(state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_cpu"])
    if "rng_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    if parts.bank is not None:
        parts.bank.load_state_dict(state["bank"])
    neighbours = NeighbourTable(*state["neighbours"].numpy()) if "neighbours" in state else None
    return {k: state[k] for k in COUNTERS}, json.loads(state.get("commands", "[]")), neighbours


def round_weights(model: nn.Module, dtype: str) -> None:
    """Round the floating-point weights to the storage dtype (``DTYPES``) in place, keeping their dtype."""
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.to(DTYPES[dtype]))
