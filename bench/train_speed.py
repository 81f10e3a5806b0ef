"""Training throughput of ``python -m train``, against the ResNet-18 floor of this machine.

    python bench/train_speed.py --preset cpu --threads 2 --steps 12            # the CPU recipe, 2 cores
    python bench/train_speed.py --preset paper --device cuda --steps 30        # the paper preset on a GPU
    python bench/train_speed.py --preset lite --ablations scratch_resnet18 lite   # named recipes

For each loss variant (1x1, 2x2 and 3x3 views, or the named ablation recipes) it runs the real training
loop (data loader, views, loss, optimiser) for a few steps on a dataset in the VGG-SS layout (``--root``,
or synthetic clips of the preset's size written to a temp folder) and reads samples/s and the share of
step time spent waiting for data from the run's metrics.csv (first ``--skip`` steps dropped). The floor
is the forward + backward FLOPs of both towers for one sample's views (3 x ``torch.utils.flop_counter``'s
forward count) over the dense matmul rate measured before and after each variant (bf16 when autocast is
on, else float32), so that the fraction of the floor stays meaningful on a shared machine.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avdemo.cache import atomic_write  # noqa: E402
from avdemo.model import AVLocalizer  # noqa: E402
from train.config import ABLATIONS, VISION_ABLATIONS, TRAIN_VIEWS, ablation, load_config  # noqa: E402
from train.loop import Trainer  # noqa: E402
from train.model_setup import use_bf16  # noqa: E402

VARIANTS = {"1x1 (original pair)": TRAIN_VIEWS[:1], "2x2 (+ augmented)": TRAIN_VIEWS[:2],
            "3x3 (full method)": TRAIN_VIEWS}


def write_synthetic(root: Path, n: int, image_side: int, seconds: float) -> None:
    """n random frames (image_side px) with 16 kHz noise clips, in the VGG-SS layout."""
    rng = np.random.default_rng(0)
    (root / "frames").mkdir(parents=True)
    (root / "audio").mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (image_side, image_side, 3), dtype=np.uint8)).save(
            root / "frames" / f"c{i:05d}.jpg", quality=90)
        sf.write(root / "audio" / f"c{i:05d}.wav", (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32),
                 16000, subtype="PCM_16")
    (root / "vggss.json").write_text(json.dumps([{"file": f"c{i:05d}"} for i in range(n)]))


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int = 2048, seconds: float = 2.0) -> float:
    """Dense matmul FLOP/s."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def flops_per_sample(model: AVLocalizer, image_views: int, audio_views: int, extra_audio: float = 0.0) -> float:
    """Forward + backward FLOPs of both towers for one sample's views, plus ``extra_audio`` audio windows (a
    sample's share of the batch's extra negatives): 3 x the forward count (FlopCounterMode counts the
    backward of grouped convolutions as if they were dense, 40x too much for EfficientNet's)."""
    s = model.cfg.image_size
    f, t = model.cfg.audio.spec_shape
    with torch.no_grad(), FlopCounterMode(display=False) as visual:
        model.encode_image(torch.randn(1, 3, s, s))
    with torch.no_grad(), FlopCounterMode(display=False) as audio:
        model.encode_audio(torch.randn(1, 1, f, t))
    return 3.0 * (image_views * visual.get_total_flops() + (audio_views + extra_audio) * audio.get_total_flops())


def measure(cfg, steps: int, skip: int) -> tuple[float, float]:
    """(samples/s, data-wait share) of a short real run, from its metrics.csv."""
    Trainer(cfg, command="bench").run(stop_after=steps)
    with (Path(cfg.out_dir) / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) > skip]
    speed = [float(r["value"]) for r in rows if r["tag"] == "speed/samples_per_s"]
    wait = [float(r["value"]) for r in rows if r["tag"] == "speed/data_wait"]
    return len(speed) / sum(1 / s for s in speed), float(np.mean(wait))     # harmonic mean = total rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--root", type=Path, help="a training folder in the VGG-SS layout (default: synthetic)")
    parser.add_argument("--clips", type=int, default=512, help="synthetic clips to write")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--skip", type=int, default=2, help="warm-up steps left out of the averages")
    parser.add_argument("--override", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--ablations", nargs="+", choices=[*ABLATIONS, *VISION_ABLATIONS],
                        help="measure these ablation variants of the preset instead of the 1x1 / 2x2 / 3x3 views")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = load_config(args.preset, args.override)
        if args.root is None:
            write_synthetic(tmp / "data" / "train", args.clips, round(base.model.image_size * 1.25),
                            max(1.0, base.model.audio.window_s))
            root, split = tmp / "data", "train"
        else:
            root, split = args.root.parent, args.root.name
        feats = tmp / "feats.npy"              # neighbours from the first step (random features)
        n = len(json.loads((root / split / "vggss.json").read_text()))
        np.save(feats, np.random.default_rng(0).standard_normal((n, 16)).astype(np.float32))
        base = dataclasses.replace(base, data_root=str(root), train_split=split, val_split=None, test_split=None,
                                   device=args.device, neighbour_features=str(feats), log_every=1,
                                   save_every=10 ** 9)
        device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                              else "cpu")
        bf16 = use_bf16(base.amp, device)
        rate_dtype = torch.bfloat16 if bf16 else torch.float32
        cpu_name = f"CPU ({torch.backends.cpu.get_cpu_capability()})"
        name = torch.cuda.get_device_name() if device.type == "cuda" else cpu_name
        results = {"preset": args.preset, "device": name, "threads": torch.get_num_threads(), "bf16_autocast": bf16,
                   "batch_size": base.batch_size, "num_workers": base.num_workers, "variants": {}}
        print(f"{name}, {results['threads']} threads, bf16 autocast {bf16}, batch {base.batch_size}, "
              f"{base.num_workers} loader workers")
        print(f"{'variant':26s} {'samples/s':>10s} {'data wait':>10s} {'GFLOP/sample':>13s} {'matmul GFLOP/s':>15s} "
              f"{'floor/s':>9s} {'of floor':>9s}")
        variants = {name: ablation(base, name) for name in args.ablations} if args.ablations else {
            name: dataclasses.replace(base, image_views=views, audio_views=views) for name, views in VARIANTS.items()}
        for k, (variant, cfg) in enumerate(variants.items()):
            cfg = dataclasses.replace(cfg, out_dir=str(tmp / f"run{k}"))
            model = AVLocalizer(cfg.model_config)
            before = matmul_rate(device, rate_dtype)
            speed, wait = measure(cfg, args.steps, args.skip)
            rate = (before + matmul_rate(device, rate_dtype)) / 2     # the machine may be shared
            flops = flops_per_sample(model, len(cfg.image_views), len(cfg.audio_views),
                                     cfg.extra_negatives / cfg.batch_size)
            floor = rate / flops
            results["variants"][variant] = {"samples_per_s": speed, "data_wait": wait, "gflop_per_sample": flops / 1e9,
                                            "matmul_gflops": rate / 1e9, "floor_samples_per_s": floor,
                                            "fraction_of_floor": speed / floor}
            print(f"{variant:26s} {speed:10.1f} {wait:10.1%} {flops / 1e9:13.2f} {rate / 1e9:15.0f} {floor:9.1f} "
                  f"{speed / floor:9.1%}", flush=True)
    if args.out:
        atomic_write(args.out, lambda p: p.write_text(json.dumps(results, indent=2)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
