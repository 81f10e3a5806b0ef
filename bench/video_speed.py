"""Speed and memory of the video tab's pipeline (``avdemo.videomap.localize_video``) on this machine.

Speed: a generated 10 s, 640x360, 25 fps clip with a map on every frame; end-to-end time over the clip's
duration (below 1 = faster than real time) per model, split into decode, audio features, model, overlay
and encode, for the exact float32 pipeline and the fast one (shared audio pass + bfloat16), each against
a plain per-frame loop measured in the same run (batch of one, PIL resize, scipy spectrogram, matplotlib
colours). Models: preset names (random weights: the cost does not depend on them) or ``default`` (the
shipped checkpoint).
Memory: resident memory (RSS) of a fresh process with the app's imports and a loaded model (at rest), and
its peak while a generated 60 s 1080p clip goes through ``localize_video`` with the default limits.

    python -m bench.video_speed [--presets default cpu paper] [--threads 2] [--memory]
    (--presets --memory: memory only)
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from avdemo.config import preset
from avdemo.media import write_mp4
from avdemo.model import AVLocalizer
from avdemo.videomap import VideoMapConfig, localize_video

STAGES = ("decode", "audio", "model", "overlay", "encode")


def scene(seconds: float, width: int, height: int, fps: float):
    """Frames of a bright disc circling over a gradient (compresses like real footage, unlike noise)."""
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    background = np.stack([xx / width * 160, yy / height * 160, np.full_like(xx, 60)], -1).astype(np.uint8)
    r = height / 8
    for i in range(int(seconds * fps)):
        angle = 2 * np.pi * i / (4 * fps)
        cx, cy = width / 2 + width / 4 * np.cos(angle), height / 2 + height / 4 * np.sin(angle)
        frame = background.copy()
        frame[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = (250, 220, 40)
        yield frame


def make_clip(path: Path, seconds: float, width: int, height: int, fps: float = 25.0) -> Path:
    """An H.264 + stereo AAC clip: the scene above with a 440 Hz tone that beeps twice a second."""
    rate = 44100
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    return write_mp4(path, scene(seconds, width, height, fps), fps, np.stack([tone, tone], 1).astype(np.float32), rate)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def plain_loop(model: AVLocalizer, clip: Path, out: Path) -> float:
    """The baseline: every frame on its own (PIL resize, scipy spectrogram of its centred window, a forward
    pass of one, matplotlib colours), written with the same encoder. Returns seconds."""
    import matplotlib
    import scipy.signal
    from PIL import Image

    from avdemo.audio import window_indices
    from avdemo.media import iter_frames, probe, read_audio

    start = time.perf_counter()
    acfg, size = model.cfg.audio, model.cfg.image_size
    wav, rate = read_audio(clip)
    mono = np.asarray(wav, np.float32).mean(1) if np.ndim(wav) > 1 else np.asarray(wav, np.float32)
    wav16 = scipy.signal.resample_poly(mono, acfg.sample_rate, rate).astype(np.float32)
    cmap = matplotlib.colormaps["jet"]
    mean, std = model.pixel_mean[0, :, 0, 0].numpy(), model.pixel_std[0, :, 0, 0].numpy()

    def frames():
        for t, frame in iter_frames(clip, 1, 640):
            small = np.asarray(Image.fromarray(frame).resize((size, size), Image.BICUBIC), np.float32) / 255
            image = torch.from_numpy(((small - mean) / std).transpose(2, 0, 1))[None]
            window = wav16[window_indices(len(wav16), np.array([t]), acfg)[0]]
            _, _, spec = scipy.signal.spectrogram(window, acfg.sample_rate, nperseg=acfg.nperseg,
                                                  noverlap=acfg.noverlap)
            spec = torch.from_numpy(np.log(spec + acfg.log_eps) / acfg.log_scale).float()[None, None]
            with torch.inference_mode():
                s_map = model(image, spec)["maps"][0].numpy()
            s_map = np.asarray(Image.fromarray(s_map).resize(frame.shape[1::-1], Image.BILINEAR))
            s_map = (s_map - s_map.min()) / max(float(s_map.max() - s_map.min()), 1e-6)
            colour = cmap(s_map)[..., :3] * 255
            yield (0.5 * frame + 0.5 * colour).astype(np.uint8)

    write_mp4(out, frames(), probe(clip).fps, wav, rate)
    return time.perf_counter() - start


def load(name: str) -> AVLocalizer:
    if name == "default":
        from avdemo.checkpoints import load_model
        return load_model(Path(__file__).resolve().parents[1] / "checkpoints" / "default.safetensors")
    torch.manual_seed(0)
    return AVLocalizer(preset(name)).eval()


FAST = dict(audio_pass="shared", precision="bfloat16")


def speed(presets: list[str], folder: Path) -> None:
    if not presets:
        return
    clip = make_clip(folder / "clip-640x360.mp4", 10.0, 640, 360)
    print(f"clip: 10 s, 640x360, 25 fps (250 frames), map on every frame; {torch.get_num_threads()} threads")
    print("(cpu s: CPU time of this process; on a shared, busy machine wall time exceeds cpu s / threads)")
    print(f"{'model':8} {'pipeline':8} {'total s':>8} {'x real time':>11} {'vs plain':>9} {'cpu s':>8}  "
          + " ".join(f"{s:>8}" for s in STAGES))
    for name in presets:
        model = load(name)
        localize_video(model, clip, VideoMapConfig(max_duration_s=10.5), out_path=folder / "warmup.mp4")
        cpu = time.process_time()
        plain = plain_loop(model, clip, folder / "plain.mp4")
        cpu = time.process_time() - cpu
        print(f"{name:8} {'plain':8} {plain:8.1f} {plain / 10.0:11.2f} {1.0:9.2f} {cpu:8.1f}")
        exact = None
        for label, options in (("exact", {}), ("fast", FAST)):
            cpu = time.process_time()
            result = localize_video(model, clip, VideoMapConfig(max_duration_s=10.5, **options),
                                    out_path=folder / f"{name}-{label}.mp4")
            cpu = time.process_time() - cpu
            s = result.seconds
            print(f"{name:8} {label:8} {s['total']:8.1f} {s['total'] / 10.0:11.2f} {s['total'] / plain:9.2f} "
                  f"{cpu:8.1f}  " + " ".join(f"{s[k]:8.2f}" for k in STAGES))
            if exact is None:
                exact = result.maps_lowres
            else:
                deviation = np.abs(result.maps_lowres - exact)
                same_peak = np.mean(result.maps_lowres.reshape(len(exact), -1).argmax(1)
                                    == exact.reshape(len(exact), -1).argmax(1))
                print(f"{'':17} fast vs exact maps: max |dS| {deviation.max():.3f}, mean {deviation.mean():.4f}, "
                      f"same peak cell {100 * same_peak:.0f}% of frames")


def memory_child(clip: str) -> None:
    """Run in a fresh process: RSS at rest (app imports + model), then the peak through a 60 s clip."""
    import gradio  # noqa: F401  (the app's imports count towards its memory at rest)
    import avdemo.ui.video_tab  # noqa: F401

    torch.set_num_threads(2)
    model = AVLocalizer(preset("cpu")).eval()
    rest = rss_mb()
    with tempfile.TemporaryDirectory() as folder:
        result = localize_video(model, clip, VideoMapConfig(), out_path=Path(folder) / "map.mp4")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rest_mb": rest, "peak_mb": peak, "frames": len(result.times_s), "notes": result.notes,
                      "seconds": result.seconds}))


def memory(folder: Path) -> None:
    clip = make_clip(folder / "clip-1080p.mp4", 60.0, 1920, 1080)
    out = subprocess.run([sys.executable, "-m", "bench.video_speed", "--memory-child", str(clip)],
                         capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    s = report["seconds"]
    print(f"memory, cpu preset, 60 s 1920x1080 25 fps clip, default limits ({report['notes']}):")
    print(f"  RSS at rest {report['rest_mb']:.0f} MB, peak {report['peak_mb']:.0f} MB "
          f"(+{report['peak_mb'] - report['rest_mb']:.0f} MB); {report['frames']} frames in {s['total']:.1f} s "
          f"(" + ", ".join(f"{k} {s[k]:.1f}" for k in STAGES) + ")")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=["default", "cpu", "paper"],
                        help="preset names or 'default' (the shipped checkpoint); none: memory only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory", action="store_true", help="also measure RSS with a 60 s 1080p clip")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child)
        return
    with tempfile.TemporaryDirectory() as folder:
        speed(args.presets, Path(folder))
        if args.memory:
            memory(Path(folder))


if __name__ == "__main__":
    main()
