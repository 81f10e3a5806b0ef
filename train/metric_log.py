"""A run's metrics: ``metrics.csv`` (step, tag, value) and, when TensorBoard is installed, its events."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

from avdemo.cache import atomic_write


class MetricLog:
    """metrics.csv (step, tag, value) and, when TensorBoard is installed, its events; on resume, rows after
    the checkpoint go."""

    def __init__(self, out_dir: Path, resume_step: int | None):
        self.csv_path = out_dir / "metrics.csv"
        rows = []
        if resume_step is not None and self.csv_path.exists():
            with self.csv_path.open(newline="") as f:
                rows = [r for r in csv.reader(f) if len(r) == 3 and r[0].isdigit() and int(r[0]) <= resume_step]
        atomic_write(self.csv_path, lambda p: p.write_text(
            "".join(f"{s},{t},{v}\n" for s, t, v in [("step", "tag", "value")] + rows)))
        self.file = self.csv_path.open("a")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.tb = None
            print(f"TensorBoard is not installed: metrics go to {self.csv_path} only "
                  f"(pip install -r requirements-train.txt for TensorBoard event files)", file=sys.stderr)
            return
        # TensorBoard hides earlier events from steps >= purge_step: those of a previous run, or logged
        # after the checkpoint that this run resumes from
        self.tb = SummaryWriter(str(out_dir / "tb"), purge_step=0 if resume_step is None else resume_step + 1)

    def log(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.file.write(f"{step},{tag},{value:.6g}\n")
            if self.tb is not None:
                self.tb.add_scalar(tag, value, step)
        self.file.flush()

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()
