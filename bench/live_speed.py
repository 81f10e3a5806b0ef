"""Live tab speed: a recorded clip fed through the live tab's own code path, as fast as it goes.

Every frame of the clip is a camera frame (JPEG-decoded as Gradio decodes the browser's frames, mapped by
``LiveSession.map_frame``, the overlay JPEG-encoded as the output image is); every ``--chunk-s`` of its
sound is a microphone chunk (``LiveSession.add_sound``: ring buffer + audio tower). Frames and chunks run
in one thread here, one after the other, so the figure is a lower bound for the app, where they run in
two stream handlers. Reports maps per second of server-side compute and the time per stage.

    python -m bench.live_speed [--checkpoint checkpoints/default.safetensors] [--clip examples/pair.mp4]
                               [--threads 2] [--size 640x480] [--seconds 8]
"""
from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
import torchaudio.functional as AF
from PIL import Image

from avdemo import load_model
from avdemo.live import LiveConfig, LiveSession
from avdemo.media import iter_frames, probe, read_audio


def jpeg(frame: np.ndarray, quality: int = 80) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="checkpoints/default.safetensors")
    parser.add_argument("--clip", default="examples/pair.mp4")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", default="640x480", help="camera frame size WxH (the clip's frames are resized)")
    parser.add_argument("--seconds", type=float, default=8.0, help="how much of the clip to feed")
    parser.add_argument("--chunk-s", type=float, default=LiveConfig().sound_every_s)
    parser.add_argument("--mic-rate", type=int, default=48000, help="the microphone's sample rate")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))

    model = load_model(args.checkpoint)
    info = probe(args.clip)
    wav, rate = read_audio(args.clip)
    wav = torch.as_tensor(np.asarray(wav, np.float32)).reshape(len(wav), -1).mean(1)
    mic = AF.resample(wav, rate, args.mic_rate).numpy()
    mic_pcm = (np.clip(mic, -1, 1) * 32767).astype(np.int16)         # what the browser sends
    frames = [(t, jpeg(np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BILINEAR))))
              for t, f in iter_frames(args.clip) if t < args.seconds]

    session = LiveSession()
    chunk = round(args.chunk_s * args.mic_rate)
    session.add_sound([model], mic_pcm[:chunk], args.mic_rate)          # warm-up, not timed
    session.map_frame(model, np.asarray(Image.open(io.BytesIO(frames[0][1])).convert("RGB")))
    session = LiveSession()
    seconds = {"jpeg decode": 0.0, "audio (ring + tower)": 0.0, "map (tower + overlay)": 0.0, "jpeg encode": 0.0}
    fed, chunks = 0, 0
    start = time.perf_counter()
    for t, data in frames:
        while fed < min(len(mic_pcm), round(t * args.mic_rate)):
            tick = time.perf_counter()
            session.add_sound([model], mic_pcm[fed:fed + chunk], args.mic_rate)
            seconds["audio (ring + tower)"] += time.perf_counter() - tick
            fed, chunks = fed + chunk, chunks + 1
        tick = time.perf_counter()
        frame = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        seconds["jpeg decode"] += (mid := time.perf_counter()) - tick
        mapped = session.map_frame(model, frame)
        seconds["map (tower + overlay)"] += (tock := time.perf_counter()) - mid
        jpeg(mapped.overlay, quality=75)
        seconds["jpeg encode"] += time.perf_counter() - tock
    total = time.perf_counter() - start

    n = len(frames)
    print(f"{args.checkpoint}: {model.cfg.image_size} px, {model.cfg.audio.window_s:g} s window; "
          f"{n} frames {width}x{height} (mapped at {mapped.frame.shape[1]}x{mapped.frame.shape[0]}), "
          f"{chunks} microphone chunks of {args.chunk_s:g} s at {args.mic_rate} Hz; {args.threads} threads; "
          f"{info.duration_s:.1f} s clip {args.clip}")
    print(f"maps per second (server-side compute, frames and chunks in one thread): {n / total:.1f}")
    print("  " + ", ".join(f"{k} {1000 * v / n:.1f} ms" for k, v in seconds.items()) + " per frame")


if __name__ == "__main__":
    main()
