"""Example clips: two or three stamps drift over a background while the sound passes from one to another,
with silent stretches between; H.264 + AAC MP4 plus per-frame ground truth in JSON.

Ground truth (``<clip>.json``): ``objects`` (category, picture, recording), ``segments`` (start_s, end_s,
object: who sounds when), and per frame ``t`` (s), ``sounding`` (object index or null), ``bbox`` (the
sounding object's normalised xyxy box, VGG-SS style, empty when silent) and ``boxes`` (every object's box,
null when out of view); ``attribution``: each picture's and recording's package, licence and author, and
``licence``: the share-alike note when a recording of the share-alike sub-pack is used.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from avdemo.data.catalog import SHARE_ALIKE_NOTE, Catalog, load_catalog
from avdemo.data.scenes import (SceneConfig, SplitMedia, augment_sound, background, coloured_noise, mask_box,
                                object_sprite, place)
from avdemo.data.splits import norm_box, split_media
from avdemo.errors import AVDemoError
from avdemo.media import write_mp4

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_CLIPS = (                     # (name, categories) of the shipped examples
    ("orchestra", ("playing violin, fiddle", "playing drum kit", "playing trumpet")),
    ("farm", ("dog, fox barking", "cattle mooing", "duck, goose quacking")),
    ("mixed", ("helicopter", "chicken crowing", "playing cello")),
    ("pair", ("lion, tiger roaring", "bird chirping, tweeting")),
)


@dataclass(frozen=True)
class VideoConfig:
    width: int = 320
    height: int = 240
    fps: float = 15.0
    duration_s: float = 8.0
    sample_rate: int = 16000
    object_area: tuple[float, float] = (0.12, 0.22)   # box area as a fraction of the frame
    speed_px_s: tuple[float, float] = (10.0, 35.0)
    stretches: int = 3                                  # sounding stretches (at least one per object)
    silence_s: tuple[float, float] = (0.4, 0.9)         # length of each silent stretch
    event_dbfs: float = -18.0
    noise_dbfs: float = -55.0


@dataclass
class Clip:
    frames: np.ndarray              # (T, H, W, 3) uint8
    audio: np.ndarray               # (N,) float32
    truth: dict                     # the ground truth written next to the MP4


def _segments(rng: np.random.Generator, n_objects: int, cfg: VideoConfig) -> list[tuple[float, float, int]]:
    """``max(n_objects, cfg.stretches)`` sounding stretches between silent ones; each object sounds at
    least once and, when there are several, none sounds twice in a row."""
    k = max(n_objects, cfg.stretches)
    silences = rng.uniform(*cfg.silence_s, k + 1)
    sounds = rng.dirichlet(np.full(k, 4.0)) * (cfg.duration_s - silences.sum())
    order = [int(o) for o in rng.permutation(n_objects)]
    while len(order) < k:
        order.append(int(rng.choice([o for o in range(n_objects) if o != order[-1]] or order[-1:])))
    segments, t = [], 0.0
    for silence, length, obj in zip(silences, sounds, order):
        t += silence
        segments.append((round(float(t), 3), round(float(t + length), 3), obj))
        t += length
    return segments


def _sound_stretch(rng: np.random.Generator, wav: np.ndarray, n: int, scene_cfg: SceneConfig) -> np.ndarray:
    """``n`` samples of a recording, augmented and repeated with short gaps, faded in and out."""
    pieces, length = [], 0
    while length < n:
        piece = augment_sound(rng, wav, scene_cfg)
        gap = np.zeros(int(rng.uniform(0.05, 0.25) * scene_cfg.sample_rate), np.float32)
        pieces += [piece, gap]
        length += len(piece) + len(gap)
    out = np.concatenate(pieces)[:n]
    fade = np.linspace(0, 1, min(n // 4, int(0.03 * scene_cfg.sample_rate)), dtype=np.float32)
    out[: len(fade)] *= fade
    out[n - len(fade):] *= fade[::-1]
    return out / max(float(np.sqrt(np.mean(out[np.abs(out) > 1e-4] ** 2))), 1e-6)


def make_clip(rng: np.random.Generator, catalog: Catalog, media: SplitMedia, categories: tuple[str, ...],
              cfg: VideoConfig = VideoConfig()) -> Clip:
    """A clip of one object per category, each drifting and bouncing off the frame edges."""
    missing = [c for c in categories if c not in media.categories]
    if missing or not 1 <= len(categories) <= 4:
        raise AVDemoError(f"need 1 to 4 known categories for a clip; unknown: {missing}")
    w, h, n_frames = cfg.width, cfg.height, int(round(cfg.duration_s * cfg.fps))
    size = max(w, h)
    pictures = [str(rng.choice(media.pictures[c])) for c in categories]
    recordings = [str(rng.choice(media.sounds[c])) for c in categories]
    sprites = [object_sprite(rng, catalog.pictures[p], rng.uniform(*cfg.object_area) * w * h / size ** 2, size)
               for p in pictures]
    slots = rng.permutation(len(sprites))                  # start spread out: one column slot each
    positions = np.array([[(slot + rng.uniform(0.2, 0.8)) / len(sprites) * w - s.shape[1] / 2,
                           rng.uniform(0, h - s.shape[0])] for slot, s in zip(slots, sprites)])
    angles = rng.uniform(0, 2 * np.pi, len(sprites))
    velocities = np.stack([np.cos(angles), np.sin(angles)], 1) * rng.uniform(*cfg.speed_px_s, (len(sprites), 1))
    limits = np.array([[w - s.shape[1], h - s.shape[0]] for s in sprites], dtype=float)
    positions = np.clip(positions, 0, limits)
    back = Image.fromarray(background(rng, catalog, media.silent, size)[:h, :w]).convert("RGBA")
    segments = _segments(rng, len(categories), cfg)

    frames, truth_frames = np.zeros((n_frames, h, w, 3), np.uint8), []
    for i in range(n_frames):
        t = i / cfg.fps
        canvas, labels = back.copy(), np.zeros((h, w), np.uint8)
        for k, sprite in enumerate(sprites):
            layer = place(sprite, int(positions[k, 0]), int(positions[k, 1]), size)[:h, :w]
            canvas.alpha_composite(Image.fromarray(layer))
            labels[layer[..., 3] >= 128] = k + 1
        frames[i] = np.asarray(canvas.convert("RGB"))
        boxes = [_box(labels == k + 1, w, h) for k in range(len(sprites))]
        sounding = next((obj for start, end, obj in segments if start <= t < end), None)
        truth_frames.append({"t": round(t, 4), "sounding": sounding, "boxes": boxes,
                             "bbox": [boxes[sounding]] if sounding is not None and boxes[sounding] else []})
        positions += velocities / cfg.fps
        bounced = (positions < 0) | (positions > limits)
        velocities[bounced] *= -1
        positions = np.clip(positions, 0, limits)

    scene_cfg = SceneConfig(sample_rate=cfg.sample_rate)
    n_audio = int(round(cfg.duration_s * cfg.sample_rate))
    audio = coloured_noise(rng, n_audio, 1.0) * 10 ** (cfg.noise_dbfs / 20)
    for start, end, obj in segments:
        a, b = int(start * cfg.sample_rate), int(end * cfg.sample_rate)
        audio[a:b] += _sound_stretch(rng, catalog.sounds[recordings[obj]], b - a, scene_cfg) * 10 ** (cfg.event_dbfs / 20)
    truth = {"fps": cfg.fps, "width": w, "height": h, "duration_s": cfg.duration_s, "sample_rate": cfg.sample_rate,
             "objects": [{"category": c, "picture": p, "recording": r}
                         for c, p, r in zip(categories, pictures, recordings)],
             "segments": [{"start_s": s, "end_s": e, "object": o} for s, e, o in segments],
             "attribution": [{"media": i, "package": catalog.media[i].package, "licence": catalog.media[i].licence,
                              "author": catalog.media[i].author} for i in pictures + recordings],
             "licence": SHARE_ALIKE_NOTE if any(catalog.media[i].share_alike for i in pictures + recordings) else "",
             "frames": truth_frames, "config": asdict(cfg)}
    return Clip(frames=frames, audio=np.clip(audio, -1, 1).astype(np.float32), truth=truth)


def _box(mask: np.ndarray, w: int, h: int) -> list[float] | None:
    if not mask.any():
        return None
    return norm_box(mask_box(mask), w, h)


def write_clip(clip: Clip, path: Path) -> Path:
    """``path`` (.mp4, H.264 + AAC) and its ground truth ``path.with_suffix('.json')``."""
    path = Path(path).with_suffix(".mp4")
    write_mp4(path, iter(clip.frames), clip.truth["fps"], clip.audio, clip.truth["sample_rate"])
    truth = dict(clip.truth, file=path.name)
    path.with_suffix(".json").write_text(json.dumps(truth) + "\n")
    return path


def write_examples(out: Path = EXAMPLES_DIR, seed: int = 0, catalog: Catalog | None = None,
                   cfg: VideoConfig = VideoConfig()) -> list[Path]:
    """The shipped example clips, drawn from held-out (test) media."""
    catalog = catalog or load_catalog()
    media = split_media(catalog, "test", seed)
    out.mkdir(parents=True, exist_ok=True)
    return [write_clip(make_clip(np.random.default_rng([seed, k]), catalog, media, categories, cfg), out / name)
            for k, (name, categories) in enumerate(EXAMPLE_CLIPS)]
