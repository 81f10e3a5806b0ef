"""Plot a run's curves from its metrics.csv: ``python -m train.plot runs/cpu [--out curves.png]``."""
from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from avdemo.cache import atomic_write  # noqa: E402

PANELS = {  # panel title -> tags drawn in it
    "loss": ("train/loss_L", "train/loss_A"),
    "throughput (samples/s)": ("speed/samples_per_s",),
    "validation localization (%)": ("val/localization.ciou_success", "val/localization.pointing_game",
                                    "val/localization.adaptive_ciou_success"),
    "validation retrieval R@1 (%)": ("val/retrieval.class.audio_to_image.R@1",
                                     "val/retrieval.class.image_to_audio.R@1"),
}


def read_metrics(csv_path: Path) -> dict[str, tuple[list[int], list[float]]]:
    """tag -> (steps, values) from a ``step,tag,value`` CSV."""
    series: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    with csv_path.open(newline="") as f:
        for row in csv.DictReader(f):
            steps, values = series[row["tag"]]
            steps.append(int(row["step"]))
            values.append(float(row["value"]))
    return dict(series)


def plot_metrics(csv_path: Path, out_path: Path) -> Path:
    """One panel per group of ``PANELS``; tags absent from the run are skipped."""
    series = read_metrics(csv_path)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 3.6))
    for ax, (title, tags) in zip(axes, PANELS.items()):
        for tag in tags:
            if tag in series:
                ax.plot(*series[tag], label=tag.split("/", 1)[1], marker="." if tag.startswith("val/") else None)
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(out_path, lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)
    return out_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.plot", description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder (with metrics.csv) or the CSV itself")
    parser.add_argument("--out", type=Path, default=None, help="default: <run>/curves.png")
    args = parser.parse_args(argv)
    csv_path = args.run / "metrics.csv" if args.run.is_dir() else args.run
    if not csv_path.is_file():
        print(f"error: {csv_path} not found", file=sys.stderr)
        return 2
    print(f"wrote {plot_metrics(csv_path, args.out or csv_path.with_name('curves.png'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
