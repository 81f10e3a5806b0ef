"""Heat-map speed of `model.localize` with the paper preset on this machine's CPU threads.

Reports frames/s for a batch of frames (each with its own 3 s audio window, as in a video), and the
ratio to the floor set by ResNet-18's FLOPs at 224 px over the measured float32 matmul rate.

    python -m bench.localize_speed [--threads 2] [--batch 16] [--preset paper]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from avdemo import AVLocalizer, preset


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def best_rate(fn, items: int, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return items / min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = preset(args.preset)
    model = AVLocalizer(cfg).eval().to(memory_format=torch.channels_last)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(args.batch, 360, 640, 3), dtype=np.uint8)
    windows = rng.uniform(-1, 1, size=(args.batch, cfg.audio.window_samples)).astype(np.float32)

    gflops_rate = matmul_gflops()
    r18 = torchvision.models.resnet18().eval()
    r18_flops = flops(lambda: r18(torch.zeros(1, 3, 224, 224)))
    floor_fps = gflops_rate * 1e9 / r18_flops
    with torch.inference_mode():
        model_flops = flops(lambda: model(torch.zeros(1, 3, cfg.image_size, cfg.image_size),
                                          torch.zeros(1, 1, *cfg.audio.spec_shape)))
    model_floor_fps = gflops_rate * 1e9 / model_flops

    own_audio = best_rate(lambda: model.localize(frames, windows, batch_size=args.batch), args.batch, args.repeats)
    shared_audio = best_rate(lambda: model.localize(frames, windows[:1], batch_size=args.batch), args.batch, args.repeats)

    print(f"threads {args.threads}, batch {args.batch}, preset {args.preset}, frames 640x360")
    print(f"float32 matmul: {gflops_rate:.0f} GFLOP/s")
    print(f"ResNet-18 @224: {r18_flops / 1e9:.2f} GFLOP -> floor {floor_fps:.1f} frames/s")
    print(f"this model per frame (stride-1 visual + audio tower): {model_flops / 1e9:.2f} GFLOP "
          f"-> floor {model_floor_fps:.1f} frames/s")
    print(f"localize, one audio window per frame: {own_audio:.1f} frames/s "
          f"= {own_audio / floor_fps:.2f} x the ResNet-18 floor, {own_audio / model_floor_fps:.2f} x this model's floor")
    print(f"localize, one audio window for all frames: {shared_audio:.1f} frames/s "
          f"= {shared_audio / floor_fps:.2f} x the ResNet-18 floor")


if __name__ == "__main__":
    main()
