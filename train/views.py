"""The three views per modality: original, augmented, and conceptually similar (a nearest neighbour).

Image views leave the loader as cached uint8 frames (3, s, s); the training step resizes them, or
augments them batched (``train.augment``), and the model's own ``preprocess_frames`` normalises them.
Audio views are windows of the clip at the model rate (``avdemo.audio.audio_windows``), augmented in the
loader workers (about a millisecond per window); the spectrogram is computed in the training step by
``model.spectrogram``.

The conceptually similar view of sample i is the *original* view of a random one of i's K nearest
neighbours, searched per modality (image neighbours for the image view, audio neighbours for the audio
view) with faiss over features: the model's own embeddings (an ``EmbeddingBank`` filled from the
training batches' original views, so it costs no extra forward pass; refreshed every few hundred steps),
or features a user supplies. It is encoded with an extra forward pass: reusing the in-batch features of
the neighbour would put the neighbour's own audio among the negatives of its image, a false negative by
construction, and a random neighbour is rarely in the batch anyway (K/N).
"""
from __future__ import annotations

import dataclasses
import math

import faiss
import numpy as np
import torch
import torch.nn.functional as F

from avdemo.audio import clip_window, audio_windows
from avdemo.config import AudioConfig

from .config import AudioAugConfig, ImageAugConfig


def audio_views(wav: torch.Tensor, kinds: list[str], cfg: AudioConfig, aug: AudioAugConfig,
                generator: torch.Generator, mix_wav: torch.Tensor | None = None) -> torch.Tensor:
    """Windows (len(kinds), window_samples) of a model-rate clip: ``original`` centred on the clip (as
    the evaluation hears it), ``augmented`` from ``augment_window`` (``mix_wav``: the second source)."""
    centre = wav.shape[-1] / cfg.sample_rate / 2
    return torch.stack([augment_window(wav, centre, cfg, aug, generator, mix_wav) if kind == "augmented"
                        else clip_window(wav, cfg) for kind in kinds])


def uniform(generator: torch.Generator, low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand((), generator=generator))


def rms(x: torch.Tensor) -> torch.Tensor:
    return x.square().mean().sqrt().clamp_min(1e-5)


def coloured_noise(n: int, colour: int, generator: torch.Generator) -> torch.Tensor:
    """Unit-RMS noise (n,) with power spectrum 1/f^colour: 0 white, 1 pink, 2 brown."""
    spectrum = torch.fft.rfft(torch.randn(n, generator=generator))
    f = torch.arange(spectrum.shape[0]).clamp_min(1).float()
    x = torch.fft.irfft(spectrum / f ** (colour / 2), n=n)
    return x / rms(x)


def band_limit(x: torch.Tensor, low_hz: float, high_hz: float, sample_rate: int) -> torch.Tensor:
    """Keep the band [low_hz, high_hz] (zero the other FFT bins)."""
    spectrum = torch.fft.rfft(x)
    hz = torch.fft.rfftfreq(x.shape[-1], 1 / sample_rate)
    return torch.fft.irfft(spectrum * ((hz >= low_hz) & (hz <= high_hz)), n=x.shape[-1])


def augment_window(wav: torch.Tensor, centre_s: float, cfg: AudioConfig, aug: AudioAugConfig,
                   generator: torch.Generator, mix_wav: torch.Tensor | None = None) -> torch.Tensor:
    """The augmented audio view (window_samples,): the window moved by up to +-max_shift_s, then (each
    with its probability) resampled by up to +-pitch_semitones, band-limited, mixed with a quieter
    second source, noise added at a random SNR, gain changed. All draws come from ``generator``."""
    n, sr = cfg.window_samples, cfg.sample_rate
    centre_s += uniform(generator, -aug.max_shift_s, aug.max_shift_s)
    rate = 2 ** (uniform(generator, -aug.pitch_semitones, aug.pitch_semitones) / 12)
    span = dataclasses.replace(cfg, window_s=round(n * rate) / sr)
    x = audio_windows(wav, [centre_s], span, mode="tile")
    if x.shape[-1] != n:                                         # higher and faster (rate > 1) or lower
        x = F.interpolate(x[None], size=n, mode="linear", align_corners=False)[0]
    x = x[0]
    if torch.rand((), generator=generator) < aug.bandlimit_p:
        x = band_limit(x, uniform(generator, 50, 500), uniform(generator, 2000, 7000), sr)
    if mix_wav is not None and torch.rand((), generator=generator) < aug.mix_p:
        other = audio_windows(mix_wav, [uniform(generator, 0, mix_wav.shape[-1] / sr)], cfg, mode="tile")[0]
        x = x + other * (rms(x) / rms(other)) * 10 ** (uniform(generator, *aug.mix_db) / 20)
    if torch.rand((), generator=generator) < aug.noise_p:
        noise = coloured_noise(n, int(torch.randint(3, (), generator=generator)), generator)
        x = x + noise * rms(x) * 10 ** (-uniform(generator, *aug.noise_snr_db) / 20)
    x = x * 10 ** (uniform(generator, -aug.gain_db, aug.gain_db) / 20)
    return x.clamp(-1.0, 1.0)


def negative_windows(n: int, samples: int, generator: torch.Generator) -> torch.Tensor:
    """n windows (n, samples) in which nothing sounds, as extra negatives: the first half silence (a
    faint hiss at -100 to -60 dBFS RMS), the rest white, pink or brown noise at -45 to -10 dBFS RMS."""
    windows = []
    for k in range(n):
        colour = 0 if k < n // 2 else int(torch.randint(3, (), generator=generator))
        level_db = uniform(generator, -100, -60) if k < n // 2 else uniform(generator, -45, -10)
        windows.append(coloured_noise(samples, colour, generator) * 10 ** (level_db / 20))
    return torch.stack(windows).clamp(-1.0, 1.0)


def knn(features: np.ndarray, k: int) -> np.ndarray:
    """Indices (N, k) of each row's k nearest other rows by cosine similarity (exact, faiss)."""
    x = np.ascontiguousarray(features, dtype=np.float32).copy()
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"need 1 <= k < number of samples; got k={k}, N={n}")
    faiss.normalize_L2(x)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, idx = index.search(x, k + 1)
    not_self = idx != np.arange(n)[:, None]
    not_self[not_self.all(1), -1] = False                 # self not found among ties: drop the last
    return idx[not_self].reshape(n, k)


class NeighbourTable:
    """Per-modality kNN tables (N, K) and the pick of a random neighbour."""

    def __init__(self, image_nn: np.ndarray, audio_nn: np.ndarray):
        self.image = np.asarray(image_nn, dtype=np.int64)
        self.audio = np.asarray(audio_nn, dtype=np.int64)

    @classmethod
    def from_features(cls, image_feats: np.ndarray, audio_feats: np.ndarray, k: int) -> "NeighbourTable":
        return cls(knn(image_feats, k), knn(audio_feats, k))

    def pick(self, i: int, rng: np.random.Generator) -> tuple[int, int]:
        """(image neighbour, audio neighbour) of sample i, each uniform among its K."""
        image_nn = self.image[i, rng.integers(self.image.shape[1])]
        return int(image_nn), int(self.audio[i, rng.integers(self.audio.shape[1])])


def load_feature_file(path: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A user's features: .npy (N, D) for both modalities, or (2, N, D) as [image, audio]; rows in the
    order of the training clips."""
    feats = np.load(path, allow_pickle=False)
    if feats.ndim == 2:
        feats = np.stack([feats, feats])
    if feats.ndim != 3 or feats.shape[0] != 2 or feats.shape[1] != n:
        raise ValueError(f"{path}: expected features of shape ({n}, D) or (2, {n}, D), got {feats.shape}")
    return feats[0], feats[1]


class EmbeddingBank:
    """The latest embedding of every training sample's original views, collected from training batches.

    Stored in float16 (half the memory, and the exact values a resumed run restores).
    """

    def __init__(self, n: int, dim: int):
        self.image = torch.zeros(n, dim, dtype=torch.float16)
        self.audio = torch.zeros(n, dim, dtype=torch.float16)
        self.seen = torch.zeros(n, dtype=torch.bool)

    def update(self, indices: torch.Tensor, image_emb: torch.Tensor, audio_emb: torch.Tensor) -> None:
        indices = indices.cpu()
        self.image[indices] = image_emb.detach().cpu().to(torch.float16)
        self.audio[indices] = audio_emb.detach().cpu().to(torch.float16)
        self.seen[indices] = True

    @property
    def complete(self) -> bool:
        return bool(self.seen.all())

    def table(self, k: int) -> NeighbourTable:
        return NeighbourTable.from_features(self.image.float().numpy(), self.audio.float().numpy(), k)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"image": self.image, "audio": self.audio, "seen": self.seen}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.image, self.audio, self.seen = state["image"].clone(), state["audio"].clone(), state["seen"].clone()


def cached_side(size: int, cfg: ImageAugConfig) -> int:
    """Side of the cached frames: the input side times the crop scale (246/224 in the paper)."""
    return max(size, math.ceil(size * cfg.crop_scale))
