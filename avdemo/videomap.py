"""Heat maps on a whole video: every output frame with the audio window centred on it, as an MP4.

Streaming, so that no more than a batch of frames is ever in memory:
1. map: decode frames (every ``stride``-th, longest side <= ``max_side``), cut the model-length
   audio window centred on each frame's time, run ``model.localize`` (BN folded into the convs) in
   batches, keep the low-res maps and scores;
2. draw: upsample each frame's map, normalise (per frame, per clip or absolute), colour, blend, and
   encode H.264 + AAC with the sound heard. Per frame and absolute: each batch right after step 1 (one
   pass over the file); per clip, whose range is known only after step 1: a second pass decodes the frames
   again.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Union

import numpy as np
import torch

from .audio import audio_windows, to_model_rate
from .errors import AVDemoError
from .media import VideoInfo, frame_at, iter_frames, probe, read_audio, scaled_size, write_mp4
from .model import AVLocalizer, bf16_is_fast, fold_batch_norms, upsample_maps
from .overlay import NORMALISATIONS, normalise, overlay, value_range

# None: the video's own sound; "silence" / "noise"; a path to another clip or sound file; (wav, rate).
AudioChoice = Union[None, str, Path, tuple]
Progress = Callable[[float, str], None]
MAP_SHARE = 0.8              # fraction of the progress bar for pass 1 (the model dominates)


@dataclass(frozen=True)
class VideoMapConfig:
    """How a video is mapped and drawn, and the limits that keep a CPU server responsive."""

    stride: int = 1                          # map every stride-th frame; the output has those frames
    normalisation: str = "frame"             # see overlay.NORMALISATIONS
    colormap: str = "jet"
    opacity: float = 0.5
    contour_threshold: float | None = None   # outline of {normalised map >= threshold}
    max_duration_s: float = 60.0             # longer videos are refused
    max_side: int = 640                      # frames are downscaled to this longest side
    audio: AudioChoice = None                # the sound paired with the frames (counterfactuals)
    window_mode: str = "tile"                # ends of the clip: "tile" (wrap around, as the reference
                                             # tiles short clips) or "pad" (silence)
    noise_dbfs: float = -20.0                # RMS level of the "noise" counterfactual (white noise)
    batch_size: int = 16
    audio_pass: str = "exact"                # "exact": every frame's window through the audio tower;
                                             # "shared": one pass per batch over the span its windows
                                             # cover, each window max-pooled from its own columns
                                             # (faster, approximate; see shared_audio_vectors)
    precision: str = "float32"               # or "bfloat16": the towers under bf16 autocast (about 2x
                                             # faster on CPUs with AVX-512 bf16 and on GPUs; maps differ
                                             # by ~1e-2)


@dataclass
class VideoMapResult:
    """The overlay video and, per output frame, what the model saw and heard."""

    video_path: Path            # the MP4, inside a folder the caller owns (and deletes)
    times_s: np.ndarray         # (N,) time of each output frame in the source, seconds
    peak: np.ndarray            # (N,) max of S
    mean: np.ndarray            # (N,) mean of S over the map cells
    s_L: np.ndarray             # (N,)
    s_A: np.ndarray             # (N,)
    loudness_db: np.ndarray     # (N,) RMS of the audio window heard with the frame, dBFS (floor -100)
    maps_lowres: np.ndarray     # (N, h, w) raw S at the feature map's resolution
    clip_range: tuple[float, float]   # (min, max) of S over the clip
    fps: float                  # frame rate of the output
    frame_size: tuple[int, int]  # (H, W) of the frames the maps were drawn on
    audio_label: str            # what was heard: "original", "silence", "noise", a file name
    notes: list[str] = field(default_factory=list)   # limits applied, e.g. downscaling
    seconds: dict[str, float] = field(default_factory=dict)  # time per stage: decode, audio, model,
                                                              # overlay, encode, and the total


def check_config(cfg: VideoMapConfig) -> None:
    if cfg.normalisation not in NORMALISATIONS:
        raise AVDemoError(f"unknown normalisation {cfg.normalisation!r}; choose one of {sorted(NORMALISATIONS)}")
    if cfg.stride < 1:
        raise AVDemoError(f"frame stride must be 1 or more; got {cfg.stride}")
    if cfg.window_mode not in ("tile", "pad"):
        raise AVDemoError(f"unknown window mode {cfg.window_mode!r}; use 'tile' or 'pad'")
    if cfg.precision not in PRECISIONS:
        raise AVDemoError(f"unknown precision {cfg.precision!r}; use one of {', '.join(PRECISIONS)}")
    if cfg.audio_pass not in AUDIO_PASSES:
        raise AVDemoError(f"unknown audio pass {cfg.audio_pass!r}; use one of {', '.join(AUDIO_PASSES)}")


def check_limits(info: VideoInfo, path: Path, cfg: VideoMapConfig) -> list[str]:
    """Refuse videos over the duration cap; say what the resolution cap does."""
    if info.duration_s > cfg.max_duration_s + 0.5:
        raise AVDemoError(f"{path.name!r} is {info.duration_s:.1f} s long; this app maps videos of at most "
                          f"{cfg.max_duration_s:g} s: trim it and upload it again")
    w, h = scaled_size(info.width, info.height, cfg.max_side)
    if (w, h) != (info.width, info.height):
        return [f"frames downscaled from {info.width}x{info.height} to {w}x{h} (cap: {cfg.max_side} px)"]
    return []


def fit_length(wav: np.ndarray, n: int, mode: str) -> np.ndarray:
    """(T,) or (T, C) audio made ``n`` samples long: repeated ("tile") or zero-padded ("pad"), or cut."""
    if len(wav) >= n:
        return wav[:n]
    if mode == "tile":
        return np.take(wav, np.arange(n) % len(wav), axis=0)
    return np.concatenate([wav, np.zeros((n - len(wav),) + wav.shape[1:], wav.dtype)])


def paired_sound(path: Path, info: VideoInfo, cfg: VideoMapConfig) -> tuple[np.ndarray, int, str]:
    """The sound heard with the frames, as long as the video: (wav (T,) or (T, C), sample rate, label)."""
    choice = cfg.audio
    rate, channels = info.sample_rate or 16000, info.channels or 1
    n = max(1, round(info.duration_s * rate))
    if choice is None:
        if not info.has_audio:
            raise AVDemoError(f"{path.name!r} has no audio track; choose the 'silence' counterfactual to see "
                              "its maps without sound, or pair it with another sound")
        wav, rate = read_audio(path)
        label = "original"
    elif isinstance(choice, str) and choice in ("silence", "noise"):
        shape = (n,) if channels == 1 else (n, channels)
        if choice == "silence":
            wav = np.zeros(shape, np.float32)
        else:
            level = 10 ** (cfg.noise_dbfs / 20)
            wav = np.clip(np.random.default_rng(0).normal(0.0, level, shape), -1, 1).astype(np.float32)
        label = choice
    elif isinstance(choice, tuple):
        wav, rate = np.asarray(choice[0], np.float32), int(choice[1])
        label = "uploaded sound"
    else:
        wav, rate = read_audio(choice)
        label = Path(choice).name
    if len(wav) == 0:
        raise AVDemoError(f"the sound for {path.name!r} ({label}) is empty")
    return fit_length(wav, max(1, round(info.duration_s * rate)), cfg.window_mode), rate, label


def loudness_db(windows: torch.Tensor) -> np.ndarray:
    """RMS level of each window (N, T) in dBFS, floored at -100 dB."""
    rms = windows.float().square().mean(-1).sqrt().clamp_min(1e-5)
    return (20 * torch.log10(rms)).numpy()


class StageTimes(dict):
    """Seconds spent per stage: ``with times("model"): ...`` adds to ``times["model"]``."""

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self[stage] = self.get(stage, 0.0) + time.perf_counter() - start

    def timed(self, items: Iterable, stage: str) -> Iterator:
        """``items`` with the time spent producing each one added to ``stage``."""
        iterator = iter(items)
        while True:
            with self(stage):
                item = next(iterator, StopIteration)
            if item is StopIteration:
                return
            yield item


AUDIO_PASSES = ("exact", "shared")
PRECISIONS = ("float32", "bfloat16")


def fast_config(cfg: VideoMapConfig, device: torch.device) -> VideoMapConfig:
    """``cfg`` with the fast settings: the shared audio pass, and bfloat16 where ``device`` runs it fast
    (``avdemo.model.bf16_is_fast``)."""
    return replace(cfg, audio_pass="shared", precision="bfloat16" if bf16_is_fast(device) else "float32")


def shared_audio_vectors(model: AVLocalizer, wav: torch.Tensor, centres_s: np.ndarray, mode: str) -> torch.Tensor:
    """Audio vectors f_a (N, C) of the windows centred at ``centres_s`` from ONE pass of the audio tower
    over the span they cover: the tower is convolutional up to its global max-pool, so each window's
    vector is the max over the feature columns of its own time range. Approximate: columns at a window's
    edges also hear the audio just beyond it (the exact pass sees zero padding there)."""
    acfg = model.cfg.audio
    n, hop = acfg.window_samples, acfg.hop
    starts = np.round(np.asarray(centres_s, dtype=np.float64) * acfg.sample_rate).astype(np.int64) - n // 2
    idx = torch.arange(int(starts.min()), int(starts.max()) + n)       # the span, read as audio_windows reads
    if mode == "tile":
        span = wav[idx % wav.shape[-1]]
    else:
        span = torch.where((idx >= 0) & (idx < wav.shape[-1]), wav[idx.clamp(0, wav.shape[-1] - 1)], 0.0)
    spec = model.spectrogram(span.clamp(-1.0, 1.0)[None].to(model.pixel_mean.device))
    features = model.audio_encoder(spec.contiguous(memory_format=torch.channels_last))   # (1, C, F', T')
    per_column = features.shape[-1] / spec.shape[-1]                                    # feature / spec columns
    first = (starts - starts.min()) / hop
    lo = np.floor(first * per_column).astype(int)
    hi = np.maximum(lo + 1, np.ceil((first + acfg.spec_shape[1]) * per_column).astype(int))
    pooled = torch.stack([features[0, :, :, a:b].amax(dim=(-2, -1)) for a, b in zip(lo, hi)])
    return model.audio_head(pooled)


def _batches(frames: Iterator[tuple[float, np.ndarray]], size: int) -> Iterator[tuple[list[float], np.ndarray]]:
    times, batch = [], []
    for t, frame in frames:
        times.append(t)
        batch.append(frame)
        if len(batch) == size:
            yield times, np.stack(batch)
            times, batch = [], []
    if batch:
        yield times, np.stack(batch)


def mapped_batches(model: AVLocalizer, path: Path, wav_model: torch.Tensor, cfg: VideoMapConfig,
                   times: StageTimes) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Pass 1, batch by batch: every ``stride``-th frame (B, H, W, 3) with its centred audio window, and
    their times, maps and scores."""
    acfg, side = model.cfg.audio, model.cfg.map_size
    same_window = cfg.audio == "silence"            # every window is identical: encode it once
    frames_in = times.timed(iter_frames(path, cfg.stride, cfg.max_side), "decode")
    for frame_times, frames in _batches(frames_in, cfg.batch_size):
        with times("audio"), torch.inference_mode():
            windows = audio_windows(wav_model, np.asarray(frame_times), acfg, mode=cfg.window_mode)  # (B, samples)
            shared = cfg.audio_pass == "shared" and not same_window
            if not shared:
                specs = model.spectrogram((windows[:1] if same_window else windows).to(model.pixel_mean.device))
        with times("model"), torch.autocast(model.pixel_mean.device.type, dtype=torch.bfloat16,
                                            enabled=cfg.precision == "bfloat16"):
            if shared:
                with torch.inference_mode():
                    audio_vec = shared_audio_vectors(model, wav_model, np.asarray(frame_times), cfg.window_mode)
                    images = model.preprocess_frames(frames).contiguous(memory_format=torch.channels_last)
                    scores = model.scores(model.encode_image(images), audio_vec)
                loc = {k: scores[k].float().cpu().numpy() for k in ("maps", "s_L", "s_A")}
            else:
                found = model.localize(frames, specs, output_size=(side, side), batch_size=cfg.batch_size)
                loc = {"maps": found.maps_lowres, "s_L": found.s_L, "s_A": found.s_A}
        yield frames, {"times_s": np.asarray(frame_times), "maps_lowres": loc["maps"], "s_L": loc["s_L"],
                       "s_A": loc["s_A"], "loudness_db": loudness_db(windows)}


def collected(batches: Iterable[tuple[np.ndarray, dict[str, np.ndarray]]], stats: dict,
              expected: int, share: float, progress: Progress) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frames, their low-res maps) of each batch, its times, maps and scores appended to ``stats`` (and
    the frame size set) on the way; progress up to ``share`` of the bar."""
    for frames, batch in batches:
        for k, v in batch.items():
            stats.setdefault(k, []).append(v)
        stats["frame_size"] = frames.shape[1:3]
        done = sum(len(t) for t in stats["times_s"])
        yield frames, batch["maps_lowres"]
        progress(share * min(1.0, done / expected), f"mapping frames {done}/{expected}")


def drawn_now(batches: Iterable[tuple[np.ndarray, np.ndarray]], cfg: VideoMapConfig,
              times: StageTimes) -> Iterator[np.ndarray]:
    """One pass: each frame drawn as soon as its batch is mapped (normalisations that need no clip range)."""
    for frames, maps_lowres in batches:
        with times("overlay"):
            drawn = [draw(frame, map_lowres, cfg, None) for frame, map_lowres in zip(frames, maps_lowres)]
        yield from drawn


def render(frames: Iterator[tuple[float, np.ndarray]], maps_lowres: np.ndarray, cfg: VideoMapConfig,
           clip_range: tuple[float, float], progress: Progress, times: StageTimes) -> Iterator[np.ndarray]:
    """Pass 2 (clip normalisation): each frame decoded again, with its map upsampled, normalised by the
    clip's range, coloured, blended (and contoured)."""
    n, i = len(maps_lowres), 0
    for i, (_, frame) in enumerate(times.timed(frames, "decode"), start=1):
        if i > n:
            break
        with times("overlay"):
            drawn = draw(frame, maps_lowres[i - 1], cfg, clip_range)
        yield drawn
        if i % 10 == 0:
            progress(MAP_SHARE + (1 - MAP_SHARE) * i / n, f"drawing and encoding {i}/{n}")
    if i != n:
        raise AVDemoError(f"the video gave {i} frames on the second read but {n} on the first")


def draw(frame: np.ndarray, map_lowres: np.ndarray, cfg: VideoMapConfig,
         clip_range: tuple[float, float] | None) -> np.ndarray:
    """One frame (H, W, 3) with its low-res raw map drawn as ``cfg`` says."""
    map_raw = upsample_maps(torch.from_numpy(map_lowres)[None], frame.shape[:2])[0].numpy()
    return overlay(frame, normalise(map_raw, cfg.normalisation, clip_range), cfg.colormap, cfg.opacity,
                   cfg.contour_threshold)


def localize_video(model: AVLocalizer, video_path: str | Path, cfg: VideoMapConfig = VideoMapConfig(),
                   progress: Progress | None = None, out_path: str | Path | None = None) -> VideoMapResult:
    """Heat map on every ``stride``-th frame of a video, written as an H.264 + AAC MP4.

    The MP4 goes to ``out_path``, by default ``<stem>-heatmap.mp4`` in a new temporary folder that the
    caller deletes; on error nothing is left behind. Raises ``AVDemoError`` for unreadable files, a
    missing audio track (unless a counterfactual sound is chosen) and videos over the duration cap.
    """
    path = Path(video_path)
    progress = progress or (lambda fraction, message: None)
    times = StageTimes()
    start = time.perf_counter()
    check_config(cfg)
    info = probe(path)
    notes = check_limits(info, path, cfg)
    with times("audio"):
        wav, rate, label = paired_sound(path, info, cfg)
        wav_model = to_model_rate(wav, rate, model.cfg.audio)
    folder = Path(tempfile.mkdtemp(prefix="avdemo-video-")) if out_path is None else None
    out_path = Path(out_path) if folder is None else folder / f"{path.stem}-heatmap.mp4"
    try:
        progress(0.0, "reading the video")
        stats: dict = {}
        expected = max(1, -(-info.n_frames // cfg.stride))
        batches = mapped_batches(fold_batch_norms(model), path, wav_model, cfg, times)
        fps = info.fps / cfg.stride
        inside = lambda: sum(times.get(k, 0.0) for k in ("decode", "audio", "model", "overlay"))
        if cfg.normalisation == "clip":       # its range is known only once every frame is mapped: two passes
            for _ in collected(batches, stats, expected, MAP_SHARE, progress):
                pass
            mapped = np.concatenate(stats["maps_lowres"])
            frames_out = render(iter_frames(path, cfg.stride, cfg.max_side), mapped, cfg, value_range(mapped),
                                progress, times)
        else:                                 # one pass: each batch drawn and encoded once it is mapped
            frames_out = drawn_now(collected(batches, stats, expected, 1.0, progress), cfg, times)
        before = inside()
        with times("encode"):
            write_mp4(out_path, frames_out, fps, wav, rate)
        times["encode"] -= inside() - before                # frames were made inside
        maps = np.concatenate(stats["maps_lowres"])
        clip_range = value_range(maps)
        progress(1.0, "done")
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    times["total"] = time.perf_counter() - start
    joined = {k: np.concatenate(stats[k]).astype(np.float64 if k == "times_s" else np.float32)
              for k in ("times_s", "s_L", "s_A", "loudness_db")}
    return VideoMapResult(
        video_path=out_path, times_s=joined["times_s"], peak=maps.max(axis=(1, 2)), mean=maps.mean(axis=(1, 2)),
        s_L=joined["s_L"], s_A=joined["s_A"], loudness_db=joined["loudness_db"], maps_lowres=maps,
        clip_range=clip_range, fps=fps, frame_size=tuple(stats["frame_size"]), audio_label=label, notes=notes,
        seconds=dict(times))


def frame_overlay(result: VideoMapResult, video_path: str | Path, time_s: float,
                  cfg: VideoMapConfig) -> tuple[float, np.ndarray]:
    """The output frame nearest to ``time_s`` with its map drawn as ``cfg`` says: (its time, uint8 RGB)."""
    i = int(np.argmin(np.abs(result.times_s - time_s)))
    t, frame = frame_at(video_path, float(result.times_s[i]), cfg.max_side)
    return t, draw(frame, result.maps_lowres[i], cfg, result.clip_range)


RESULT_ARRAYS = ("times_s", "peak", "mean", "s_L", "s_A", "loudness_db", "maps_lowres")


def save_result(result: VideoMapResult, folder: str | Path) -> None:
    """Keep a mapped video in ``folder`` for later runs: its MP4 (moved there) as ``video.mp4``, the
    per-frame arrays as ``result.npz``, the rest as ``result.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if Path(result.video_path) != folder / "video.mp4":
        shutil.move(result.video_path, folder / "video.mp4")
    np.savez(folder / "result.npz", **{name: getattr(result, name) for name in RESULT_ARRAYS})
    rest = {"clip_range": list(result.clip_range), "fps": result.fps, "frame_size": list(result.frame_size),
            "audio_label": result.audio_label, "notes": result.notes, "seconds": result.seconds}
    (folder / "result.json").write_text(json.dumps(rest, indent=1))


def load_result(folder: str | Path) -> VideoMapResult:
    """A mapped video kept by ``save_result``."""
    folder = Path(folder)
    rest = json.loads((folder / "result.json").read_text())
    with np.load(folder / "result.npz") as arrays:
        values = {name: arrays[name] for name in RESULT_ARRAYS}
    return VideoMapResult(video_path=folder / "video.mp4", clip_range=tuple(rest["clip_range"]), fps=rest["fps"],
                          frame_size=tuple(rest["frame_size"]), audio_label=rest["audio_label"],
                          notes=rest["notes"], seconds=rest["seconds"], **values)
