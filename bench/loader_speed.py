"""What one loader worker delivers with the image views made in the workers or on the device.

    python bench/loader_speed.py --root data_cache/embedded/train --preset paper
    python bench/loader_speed.py --root data_cache/embedded/train --preset paper --device cuda

On one CPU thread (a loader worker's share), it builds the items of ``--batches`` training batches with
``ViewDataset`` both ways (``image_views_on``): ``loader`` (every frame resized or augmented with
torchvision in the worker) and ``device`` (the worker hands over cached frames). Then it times the work
that moves, the batched views (``ImageAugment.views``: resizes and augmentation), on ``--device``
with all its threads. Prints samples/s per worker both ways, their ratio, and the device's samples/s.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avdemo.cache import atomic_write  # noqa: E402
from train.augment import ImageAugment  # noqa: E402
from train.config import load_config  # noqa: E402
from train.data import ClipStore, TrainBatchSampler, ViewDataset, list_clips  # noqa: E402
from train.views import NeighbourTable, cached_side  # noqa: E402


def worker_rate(dataset: ViewDataset, batches: list) -> float:
    """Samples/s of building these batches' items on this thread."""
    t0 = time.perf_counter()
    for batch in batches:
        for item in batch:
            dataset[item]
    return sum(map(len, batches)) / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="a training folder in the VGG-SS layout")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--clips", type=int, default=1024, help="clips to decode and cache")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--override", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    cfg = load_config(args.preset, args.override)
    size, side = cfg.model.image_size, cached_side(cfg.model.image_size, cfg.image_aug)
    clips = list_clips(args.root)[: args.clips]
    store = ClipStore(clips, side, cfg.model.audio, cache=True)
    sampler = TrainBatchSampler(len(store), cfg.batch_size, cfg.seed)
    rng = np.random.default_rng(0)
    sampler.neighbours = NeighbourTable(rng.integers(len(store), size=(len(store), 8)),
                                        rng.integers(len(store), size=(len(store), 8)))
    batches = [b for _, b in zip(range(args.batches), iter(sampler))]
    in_loader, on_device = ViewDataset(store, cfg), ViewDataset(store, cfg, images_on_device=True)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    worker_rate(in_loader, batches[:1])                                   # warm-up
    before = worker_rate(in_loader, batches)
    now = worker_rate(on_device, batches)
    torch.set_num_threads(threads)

    device = torch.device(args.device)
    augment = ImageAugment(cfg.image_aug, size)
    frames = torch.stack([torch.stack([store.get(i)[0]] * len(cfg.image_views)) for i, *_ in batches[0]]).to(device)

    def device_views() -> None:
        augment.views(frames, list(cfg.image_views), torch.Generator().manual_seed(0))
        if device.type == "cuda":
            torch.cuda.synchronize()

    device_views()
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 3.0:
        device_views()
        reps += 1
    device_rate = reps * cfg.batch_size / (time.perf_counter() - t0)

    results = {"preset": args.preset, "image_views": list(cfg.image_views), "audio_views": list(cfg.audio_views),
               "image_size": size, "cached_side": side, "batch_size": cfg.batch_size,
               "worker_samples_per_s": {"loader": before, "device": now},
               "worker_speedup": now / before, "device": str(device), "device_threads": threads,
               "device_views_samples_per_s": device_rate}
    print(f"{args.preset}: image views {', '.join(cfg.image_views)} at {size} px (cached {side} px), audio views "
          f"{', '.join(cfg.audio_views)}")
    print(f"one loader worker: {before:.0f} samples/s with the image views made in the worker, {now:.0f} with "
          f"them on the device ({now / before:.1f}x)")
    print(f"the batched image views on {device} ({threads} threads): {device_rate:.0f} samples/s")
    if args.out:
        atomic_write(args.out, lambda p: p.write_text(json.dumps(results, indent=2)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
