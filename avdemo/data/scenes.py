"""Deterministic localization scenes: a picture of one to four stamps on a procedural background, one of
them sounding, and 3 s of audio whose centre second holds that object's (augmented) recording.

Everything random comes from the ``rng`` handed in, so a scene is a pure function of its seed.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft
from PIL import Image, ImageFilter
from scipy import signal

from avdemo.data.catalog import SILENT_OBJECT, Catalog


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn. Areas are box areas as fractions of the image."""
    image_size: int = 224
    sample_rate: int = 16000
    audio_s: float = 3.0
    objects_p: tuple[float, ...] = (0.05, 0.35, 0.4, 0.2)     # P(1, 2, 3, 4 objects)
    object_area: tuple[float, float] = (0.28, 0.65)           # most boxes (sounding or not)
    small_share: float = 0.15                                 # objects drawn smaller
    small_area: tuple[float, float] = (0.08, 0.25)
    sounding_largest_p: float = 0.15  # chance that the sounding object is the largest drawn
    max_box_overlap: float = 0.25   # of a distractor's box over the sounding box (share of the smaller)
    max_outside: float = 0.15       # share of an object's width or height that may leave the frame
    min_in_frame: float = 0.8       # share of the sounding object's box area that stays in the frame
    central_reject_p: float = 0.9   # chance to redraw a sounding box centred within central_radius
    central_radius: float = 0.2     # of the image size
    min_visible_sounding: float = 0.75
    min_visible: float = 0.3        # distractors less visible than this are left out
    silent_share: float = 0.5       # distractors that are silent objects (else other categories' pictures)
    event_dbfs: tuple[float, float] = (-26.0, -14.0)          # RMS of the sounding event
    snr_db: tuple[float, float] = (10.0, 35.0)                # event over background noise
    noise_dbfs: tuple[float, float] = (-40.0, -20.0)          # noise-only negatives
    pitch_semitones: float = 3.0    # speed/pitch change, +- this
    reverb_p: float = 0.3
    filter_p: float = 0.4
    jpeg_quality: int = 90

    @property
    def audio_samples(self) -> int:
        return int(round(self.audio_s * self.sample_rate))


@dataclass
class SceneObject:
    """An object in a scene: its visible box in pixels (x1, y1, x2, y2; x2 and y2 exclusive)."""
    category: str
    picture: str
    box_px: tuple[int, int, int, int]
    sounding: bool

    def area(self, size: int) -> float:
        x1, y1, x2, y2 = self.box_px
        return (x2 - x1) * (y2 - y1) / size ** 2


@dataclass
class Scene:
    image: np.ndarray               # (S, S, 3) uint8
    labels: np.ndarray              # (S, S) uint8: 0 background, k + 1 where objects[k] is visible
    audio: np.ndarray               # (T,) float32 at the config's rate
    objects: list[SceneObject]
    recording: str                  # media id of the sounding object's recording
    sounding: int = field(init=False)

    def __post_init__(self) -> None:
        self.sounding = next(k for k, o in enumerate(self.objects) if o.sounding)


@dataclass(frozen=True)
class SplitMedia:
    """The media a split may draw from: per category its pictures and recordings, and silent pictures."""
    categories: tuple[str, ...]                 # sounding categories of this split
    pictures: dict[str, tuple[str, ...]]        # every sounding category -> picture ids (distractors too)
    sounds: dict[str, tuple[str, ...]]
    silent: tuple[str, ...]


# ----------------------------------------------------------------------------------------------- pictures

def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    hsv = (rng.random(), rng.uniform(0.1, 0.6), rng.uniform(0.35, 0.9))
    return 255 * np.array(colorsys.hsv_to_rgb(*hsv), np.float32)


def background(rng: np.random.Generator, catalog: Catalog, silent: tuple[str, ...], size: int) -> np.ndarray:
    """(size, size, 3) uint8: a gradient, smooth noise, soft stripes, or large blurred stamps."""
    kind = rng.integers(4)
    a, b = _muted_colour(rng), _muted_colour(rng)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    xx, yy = coords[None, :], coords[:, None]
    if kind == 0:
        angle = rng.uniform(0, 2 * np.pi)
        t = np.cos(angle) * xx + np.sin(angle) * yy
        t = (t - t.min()) / (t.max() - t.min())
    elif kind == 1:
        cells = int(rng.integers(3, 9))
        low = Image.fromarray(rng.integers(0, 256, (cells, cells), dtype=np.uint8))
        t = np.asarray(low.resize((size, size), Image.BICUBIC), np.float32) / 255
    elif kind == 2:
        angle, freq = rng.uniform(0, np.pi), rng.uniform(2, 10)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy))
    if kind < 3:
        img = a + (b - a) * t[..., None]
    else:
        canvas = Image.new("RGBA", (size, size), tuple(int(v) for v in a) + (255,))
        for pid in rng.choice(silent, size=min(len(silent), int(rng.integers(2, 4))), replace=False):
            stamp = Image.fromarray(catalog.pictures[pid])
            side = int(size * rng.uniform(0.8, 1.6))
            stamp = stamp.resize((side, max(1, side * stamp.height // stamp.width)), Image.BILINEAR)
            canvas.alpha_composite(stamp, (int(rng.integers(-side // 2, size - side // 2)),
                                           int(rng.integers(-side // 2, size - side // 2))))
        small = canvas.convert("RGB").resize((size // 2, size // 2), Image.BILINEAR).filter(ImageFilter.GaussianBlur(4))
        img = 0.5 * np.asarray(small.resize((size, size), Image.BILINEAR), np.float32) + 0.5 * b
    img += rng.standard_normal((size, size, 1), dtype=np.float32) * np.float32(rng.uniform(1, 6))
    return np.clip(img, 0, 255).astype(np.uint8)


def object_sprite(rng: np.random.Generator, picture: np.ndarray, area: float, size: int) -> np.ndarray:
    """The picture, maybe mirrored and rotated (long thin ones always tilt, so that their box can be
    large), colour-jittered, scaled so that its alpha box covers ``area`` of the image (sides capped at
    the image size): (h, w, 4) uint8."""
    sprite = Image.fromarray(picture).convert("RGBa")
    if rng.random() < 0.5:
        sprite = sprite.transpose(Image.FLIP_LEFT_RIGHT)
    elongation = max(sprite.size) / min(sprite.size)
    if elongation > 2.2:
        angle = rng.uniform(25, 55) * rng.choice((-1, 1))
    else:
        angle = rng.uniform(-15, 15) if rng.random() < 0.3 else 0.0
    if angle:
        sprite = sprite.rotate(angle, Image.BILINEAR, expand=True)
        sprite = sprite.crop(sprite.getchannel("a").point(lambda a: 255 if a >= 128 else 0).getbbox())
    w0, h0 = sprite.size
    aspect = h0 / w0 * rng.uniform(0.9, 1.1)
    w = np.sqrt(area * size * size / aspect)
    h = aspect * w
    scale = min(1.0, size / w, size / h)
    w, h = max(4, int(round(w * scale))), max(4, int(round(h * scale)))
    rgba = np.asarray(sprite.resize((w, h), Image.BILINEAR).convert("RGBA")).astype(np.float32)
    rgb = rgba[..., :3] * rng.uniform(0.8, 1.2)
    grey = rgb.mean(-1, keepdims=True)
    rgba[..., :3] = grey + (rgb - grey) * rng.uniform(0.7, 1.3)
    return np.clip(rgba, 0, 255).astype(np.uint8)


def place(sprite: np.ndarray, x: int, y: int, size: int) -> np.ndarray:
    """The sprite on a transparent (size, size, 4) canvas with its top-left corner at (x, y)."""
    canvas = np.zeros((size, size, 4), np.uint8)
    h, w = sprite.shape[:2]
    sx, sy = max(0, -x), max(0, -y)
    dx, dy = max(0, x), max(0, y)
    cw, ch = min(w - sx, size - dx), min(h - sy, size - dy)
    if cw > 0 and ch > 0:
        canvas[dy:dy + ch, dx:dx + cw] = sprite[sy:sy + ch, sx:sx + cw]
    return canvas


def _random_position(rng: np.random.Generator, sprite: np.ndarray, size: int, max_outside: float) -> tuple[int, int]:
    h, w = sprite.shape[:2]
    x = int(rng.integers(-int(max_outside * w), size - int((1 - max_outside) * w) + 1))
    y = int(rng.integers(-int(max_outside * h), size - int((1 - max_outside) * h) + 1))
    return x, y


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight box (x1, y1, x2, y2), x2/y2 exclusive, of a non-empty boolean (H, W) mask."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _pick_objects(rng: np.random.Generator, media: SplitMedia, category: str,
                  cfg: SceneConfig) -> tuple[list[tuple[str, str]], list[float]]:
    """(category, picture id) of each object, the sounding one first, and their target box areas: the
    sounding one is the largest drawn only with probability ``sounding_largest_p``."""
    n = int(rng.choice(len(cfg.objects_p), p=cfg.objects_p)) + 1
    others = [c for c in media.categories if c != category and media.pictures.get(c)]
    chosen = [(category, str(rng.choice(media.pictures[category])))]
    silent_pool = list(media.silent)
    for _ in range(n - 1):
        if others and (rng.random() >= cfg.silent_share or not silent_pool):
            c = others.pop(int(rng.integers(len(others))))
            chosen.append((c, str(rng.choice(media.pictures[c]))))
        elif silent_pool:
            chosen.append((SILENT_OBJECT, silent_pool.pop(int(rng.integers(len(silent_pool))))))
    areas = sorted(rng.uniform(*(cfg.small_area if rng.random() < cfg.small_share else cfg.object_area))
                   for _ in chosen)
    if len(areas) > 1 and rng.random() >= cfg.sounding_largest_p:
        areas.insert(0, areas.pop(int(rng.integers(len(areas) - 1))))
    else:
        areas.insert(0, areas.pop())
    return chosen, areas


def _arrange(rng: np.random.Generator, sprites: list[np.ndarray], cfg: SceneConfig) -> tuple[list, np.ndarray]:
    """Full-frame RGBA layers (None for a distractor left out) and the drawing depth of each sprite.

    The sounding sprite (first) goes off centre, mostly inside the frame; each distractor takes, of 30
    random places that leave the sounding object ``min_visible_sounding`` visible, the first whose box
    overlaps the sounding box at most ``max_box_overlap``, else the least overlapping."""
    size = cfg.image_size
    h, w = sprites[0].shape[:2]
    while True:
        x, y = _random_position(rng, sprites[0], size, cfg.max_outside)
        in_frame = (min(x + w, size) - max(x, 0)) * (min(y + h, size) - max(y, 0)) / (w * h)
        off = np.hypot(x + w / 2 - size / 2, y + h / 2 - size / 2) / size
        if in_frame >= cfg.min_in_frame and (off >= cfg.central_radius or rng.random() >= cfg.central_reject_p):
            break
    layers = [place(sprites[0], x, y, size)]
    sounding_mask = layers[0][..., 3] >= 128
    depth = rng.permutation(len(sprites))                   # drawing order, bottom first
    above = depth > depth[0]
    hidden = np.zeros_like(sounding_mask)
    sx1, sy1, sx2, sy2 = mask_box(sounding_mask)
    for k in range(1, len(sprites)):
        h, w = sprites[k].shape[:2]
        best, best_overlap, best_cover = None, np.inf, hidden
        for _ in range(30):
            x, y = _random_position(rng, sprites[k], size, cfg.max_outside)
            overlap = max(0, min(x + w, sx2) - max(x, sx1)) * max(0, min(y + h, sy2) - max(y, sy1))
            overlap /= min(w * h, (sx2 - sx1) * (sy2 - sy1))
            if overlap >= best_overlap:
                continue
            candidate = place(sprites[k], x, y, size)
            cover = hidden | (candidate[..., 3] >= 128) if above[k] else hidden
            if (sounding_mask & ~cover).sum() >= cfg.min_visible_sounding * sounding_mask.sum():
                best, best_overlap, best_cover = candidate, overlap, cover
                if overlap <= cfg.max_box_overlap:
                    break
        hidden = best_cover
        layers.append(best)
    return layers, depth


def compose(rng: np.random.Generator, catalog: Catalog, media: SplitMedia, category: str,
            cfg: SceneConfig) -> tuple[np.ndarray, np.ndarray, list[SceneObject]]:
    """Draw the picture of a scene whose sounding object is of ``category``: (image (S, S, 3) uint8,
    labels (S, S) uint8, objects), the sounding object first in ``objects``. Distractors left less than
    ``min_visible`` visible are not drawn."""
    size = cfg.image_size
    chosen, areas = _pick_objects(rng, media, category, cfg)
    sprites = [object_sprite(rng, catalog.pictures[pid], a, size) for (_, pid), a in zip(chosen, areas)]
    layers, depth = _arrange(rng, sprites, cfg)

    order = [int(k) for k in np.argsort(depth) if layers[k] is not None]
    labels = np.zeros((size, size), np.uint8)
    for k in order:
        labels[layers[k][..., 3] >= 128] = k + 1
    keep = [k for k in sorted(order) if k == 0 or
            (labels == k + 1).sum() >= cfg.min_visible * max(1, (layers[k][..., 3] >= 128).sum())]
    canvas = Image.fromarray(background(rng, catalog, media.silent, size)).convert("RGBA")
    labels[:] = 0
    for k in order:
        if k in keep:
            canvas.alpha_composite(Image.fromarray(layers[k]))
            labels[layers[k][..., 3] >= 128] = keep.index(k) + 1
    objects = [SceneObject(chosen[k][0], chosen[k][1], mask_box(labels == j + 1), sounding=(k == 0))
               for j, k in enumerate(keep)]
    return np.asarray(canvas.convert("RGB")), labels, objects


# ------------------------------------------------------------------------------------------------- sounds

def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Unit-RMS float32 noise with power spectrum ~ 1 / f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = sfft.rfft(rng.standard_normal(n, dtype=np.float32))
    f = np.fft.rfftfreq(n).astype(np.float32)
    f[0] = 1
    spectrum *= f ** np.float32(-exponent / 2)
    spectrum[0] = 0
    noise = sfft.irfft(spectrum, n)
    return noise / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)


def augment_sound(rng: np.random.Generator, wav: np.ndarray, cfg: SceneConfig) -> np.ndarray:
    """Speed/pitch change (resampling), an optional low- or high-pass, optional synthetic reverberation."""
    rate = 2 ** (rng.uniform(-cfg.pitch_semitones, cfg.pitch_semitones) / 12)
    n_out = max(2, int(len(wav) / rate))
    wav = np.interp(np.arange(n_out) * rate, np.arange(len(wav)), wav).astype(np.float32)
    if rng.random() < cfg.filter_p:
        if rng.random() < 0.5:
            sos = signal.butter(2, rng.uniform(1500, 6000), "lowpass", fs=cfg.sample_rate, output="sos")
        else:
            sos = signal.butter(2, rng.uniform(100, 600), "highpass", fs=cfg.sample_rate, output="sos")
        wav = signal.sosfilt(sos, wav).astype(np.float32)
    if rng.random() < cfg.reverb_p:
        rt60 = rng.uniform(0.2, 0.8)
        t = np.arange(int(rt60 * cfg.sample_rate)) / cfg.sample_rate
        ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
        ir[0] = 1.0
        wet = signal.fftconvolve(wav, ir)[: len(wav)]
        mix = rng.uniform(0.1, 0.4)
        wav = ((1 - mix) * wav + mix * wet / max(np.abs(wet).max(), 1e-6) * np.abs(wav).max()).astype(np.float32)
    return wav


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)


def event_track(rng: np.random.Generator, wav: np.ndarray, cfg: SceneConfig) -> np.ndarray:
    """(T,) audio of the recording (augmented, repeated with gaps when short) placed so that it covers
    the centre second, at a random loudness, with no noise."""
    n_total, sr = cfg.audio_samples, cfg.sample_rate
    target = int(rng.uniform(1.4, cfg.audio_s + 0.5) * sr)
    pieces, length = [], 0
    while length < target:
        piece = augment_sound(rng, wav, cfg) * rng.uniform(0.7, 1.0)
        gap = np.zeros(int(rng.uniform(0.05, 0.4) * sr), np.float32)
        pieces += [piece, gap]
        length += len(piece) + len(gap)
    track = np.concatenate(pieces[:-1])
    centre = (n_total // 2 - sr // 2, n_total // 2 + sr // 2)
    lo, hi = centre[1] - len(track), centre[0]             # start offsets that cover the centre second
    start = int(rng.integers(min(lo, hi), max(lo, hi) + 1))
    start = int(np.clip(start, min(0, n_total - len(track)), max(0, n_total - len(track))))
    out = np.zeros(n_total, np.float32)
    src0, dst0 = max(0, -start), max(0, start)
    n = min(len(track) - src0, n_total - dst0)
    out[dst0:dst0 + n] = track[src0:src0 + n]
    active = out[np.abs(out) > 1e-4]
    gain = 10 ** (rng.uniform(*cfg.event_dbfs) / 20) / _rms(active if len(active) else out)
    return out * gain


def scene_audio(rng: np.random.Generator, wav: np.ndarray, cfg: SceneConfig) -> np.ndarray:
    """A recording as the scene's audio: event track plus coloured background noise at a random SNR."""
    event = event_track(rng, wav, cfg)
    level = _rms(event[np.abs(event) > 1e-4]) / 10 ** (rng.uniform(*cfg.snr_db) / 20)
    noise = coloured_noise(rng, len(event), rng.uniform(0, 2)) * level
    return np.clip(event + noise, -1, 1).astype(np.float32)


def negative_audio(rng: np.random.Generator, kind: str, cfg: SceneConfig, wav: np.ndarray | None = None) -> np.ndarray:
    """Non-sounding audio: ``silence`` (zeros), ``noise`` (coloured noise only) or ``offscreen`` (``wav``,
    a recording of a category not in the picture, mixed like a scene's audio)."""
    if kind == "silence":
        return np.zeros(cfg.audio_samples, np.float32)
    if kind == "noise":
        level = 10 ** (rng.uniform(*cfg.noise_dbfs) / 20)
        return np.clip(coloured_noise(rng, cfg.audio_samples, rng.uniform(0, 2)) * level, -1, 1)
    if kind == "offscreen" and wav is not None:
        return scene_audio(rng, wav, cfg)
    raise ValueError(f"unknown negative kind {kind!r} (or offscreen without a recording)")


def make_scene(rng: np.random.Generator, catalog: Catalog, media: SplitMedia, cfg: SceneConfig) -> Scene:
    """A sounding scene of a category drawn uniformly from ``media.categories``."""
    category = str(rng.choice(media.categories))
    image, labels, objects = compose(rng, catalog, media, category, cfg)
    recording = str(rng.choice(media.sounds[category]))
    audio = scene_audio(rng, catalog.sounds[recording], cfg)
    return Scene(image=image, labels=labels, audio=audio, objects=objects, recording=recording)
