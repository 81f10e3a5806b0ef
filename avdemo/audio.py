"""Audio front end: downmix, resample, window at a centre time, and the reference log spectrogram."""
from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF
from scipy.signal import get_window

from .config import AudioConfig


def to_model_rate(wav: np.ndarray | torch.Tensor, sample_rate: int, cfg: AudioConfig) -> torch.Tensor:
    """Any waveform -> float32 mono at ``cfg.sample_rate``, shape (T,).

    ``wav`` is (T,) or (T, C) (soundfile's layout) or (C, T) when C < T (PyAV's layout).
    """
    x = torch.as_tensor(np.asarray(wav, dtype=np.float32) if not torch.is_tensor(wav) else wav).float()
    if x.ndim == 2:
        if x.shape[0] > x.shape[1]:          # (T, C) -> (C, T)
            x = x.T
        x = x[0] if cfg.downmix == "first" else x.mean(0)
    elif x.ndim != 1:
        raise ValueError(f"audio must be (samples,) or (samples, channels); got shape {tuple(x.shape)}")
    if sample_rate != cfg.sample_rate:
        x = AF.resample(x, int(sample_rate), cfg.sample_rate)
    return x.contiguous()


def window_indices(num_samples: int, centres_s: np.ndarray, cfg: AudioConfig, mode: str = "tile") -> np.ndarray:
    """Sample indices (N, window_samples) of windows centred at ``centres_s`` seconds.

    ``mode="tile"`` reads the waveform as periodic: this is the reference's treatment of clips that are
    shorter than needed (``np.tile`` then slice), and it fills the ends of a long clip with its other
    end. ``mode="pad"`` marks out-of-range samples with -1 (filled with silence by ``audio_windows``).
    """
    if num_samples <= 0:
        raise ValueError("the audio track is empty")
    n = cfg.window_samples
    starts = np.round(np.asarray(centres_s, dtype=np.float64) * cfg.sample_rate).astype(np.int64) - n // 2
    idx = starts[:, None] + np.arange(n)[None, :]
    if mode == "tile":
        return np.mod(idx, num_samples)
    if mode == "pad":
        return np.where((idx >= 0) & (idx < num_samples), idx, -1)
    raise ValueError(f"unknown window mode {mode!r}; use 'tile' or 'pad'")


def audio_windows(wav: torch.Tensor, centres_s: np.ndarray | list[float], cfg: AudioConfig,
                  mode: str = "tile") -> torch.Tensor:
    """Windows (N, window_samples) of a mono model-rate waveform, centred at each time, clipped to [-1, 1]."""
    idx = torch.from_numpy(window_indices(wav.shape[-1], np.atleast_1d(centres_s), cfg, mode))
    out = wav[idx.clamp(min=0)]
    out = torch.where(idx >= 0, out, torch.zeros((), dtype=out.dtype))
    return out.clamp(-1.0, 1.0)


REFERENCE_CENTRE_S = 5.0   # the official evaluation: 3.5-6.5 s of a clip tiled to 10 s (paper preset)


def clip_window(wav: torch.Tensor, cfg: AudioConfig, centre_s: float | None = None) -> torch.Tensor:
    """The one window a model hears of a clip (window_samples,), the clip read as periodic (tiled):
    centred on the clip's middle (``centre_s=None``: training, ``localize``, the app and our embedded data,
    whose event covers the centre second), or at ``centre_s`` seconds (``REFERENCE_CENTRE_S``: the
    reference evaluation of VGG-SS and Flickr-SoundNet, which tiles short clips to 10 s)."""
    if centre_s is None:
        centre_s = wav.shape[-1] / cfg.sample_rate / 2
    return audio_windows(wav, [centre_s], cfg, mode="tile")[0]


class LogSpectrogram(torch.nn.Module):
    """``log(scipy.signal.spectrogram(x, fs, nperseg, noverlap) + eps) / scale`` in torch, batched.

    Same segmentation, constant detrend, periodic Tukey window, one-sided PSD density scaling as scipy.
    Input (N, T) waveforms; output (N, 1, freq, time) ready for the audio encoder.
    """

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        self.cfg = cfg
        window = torch.from_numpy(get_window(("tukey", cfg.tukey_alpha), cfg.nperseg))
        self.register_buffer("window", window.float(), persistent=False)
        self.scale = 1.0 / (cfg.sample_rate * float((window ** 2).sum()))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        seg = wav.float().unfold(-1, c.nperseg, c.hop)                   # (N, frames, nperseg)
        seg = (seg - seg.mean(-1, keepdim=True)) * self.window
        psd = torch.fft.rfft(seg, n=c.nperseg).abs().square() * self.scale
        last = -1 if c.nperseg % 2 == 0 else None                        # one-sided: double all but DC
        psd[..., 1:last] *= 2.0                                           # (and Nyquist for even sizes)
        spec = torch.log(psd + c.log_eps) / c.log_scale
        return spec.transpose(-1, -2).unsqueeze(1)                         # (N, 1, freq, frames)
