"""A run's evaluations: the validation split every ``eval_every`` steps, keeping the best weights by
``select_metric``, and the test split once, on the selected weights, for the final card."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from avdemo.benchmarks import load_vggss
from avdemo.checkpoints import save_model
from avdemo.errors import AVDemoError
from avdemo.evaluate import card_test_metrics, evaluate, full_report, load_benchmark
from avdemo.model import AVLocalizer

from .config import TrainConfig


def flatten(report: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested report -> {"localization.ciou": 41.2, ...} (numbers only)."""
    out: dict[str, float] = {}
    for key, value in report.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def selection_score(metrics: dict[str, float], keys: tuple[str, ...]) -> float:
    missing = [k for k in keys if k not in metrics]
    if missing:
        raise AVDemoError(f"select_metric {missing} not in the evaluation report; available: {sorted(metrics)}")
    return float(sum(metrics[k] for k in keys))


class Validation:
    """The validation split (rank 0, when the run has one) and the best weights so far, written to
    ``<out_dir>/best.safetensors`` with their card."""

    def __init__(self, cfg: TrainConfig, out_dir: Path, is_main: bool):
        self.cfg, self.path = cfg, out_dir / "best.safetensors"
        self.samples = load_vggss(cfg.split_dir(cfg.val_split)) if is_main and cfg.val_split is not None else None
        self.best_score, self.best_step = -math.inf, -1

    def due(self, step: int) -> bool:
        """Whether this process validates after ``step``: every ``eval_every`` steps and after the last."""
        return self.samples is not None and (step % self.cfg.eval_every == 0 or step == self.cfg.steps)

    def validate(self, model: AVLocalizer, step: int, provenance: Callable[[], dict[str, Any]]) -> dict[str, float]:
        """Evaluate; keep the weights, with ``provenance()`` in their card, if they are the best so far.
        Returns the flattened metrics."""
        report, _ = evaluate(model, self.samples, batch_size=self.cfg.eval_batch_size, progress=False)
        report.pop("per_sample")
        metrics = flatten(report)
        score = selection_score(metrics, self.cfg.select_metric)
        if score > self.best_score:
            self.best_score, self.best_step = score, step
            save_model(model, self.path, card={"provenance": provenance(), "metrics": {"val": report}})
        return metrics


def final_test_metrics(model: AVLocalizer, cfg: TrainConfig) -> dict[str, Any]:
    """The final card's test metrics on ``cfg.test_split`` (with its negatives; on our data also what
    training saw, from the training split's ``vggss.json``)."""
    samples = load_benchmark("embedded", cfg.split_dir(cfg.test_split))
    train_meta = cfg.split_dir(cfg.train_split) / "vggss.json"
    ours = train_meta.is_file() and all("picture_media" in s.meta for s in samples if s.sounding)
    report = full_report(model, samples, train_meta if ours else None, batch_size=cfg.eval_batch_size)
    return card_test_metrics(model, samples, report, batch_size=cfg.eval_batch_size)
