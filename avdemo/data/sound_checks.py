"""Is a recording's event loud against its own background? A check run on every recording of the pack.

The contrast is the mean power of the loudest fifth of a clip's STFT frames over that of its quietest
fifth, in dB. A clip is faint when that contrast is low, its quiet frames are noise-like (spectral
flatness above ``noisy_background``) and the event does not fill the clip (at most ``steady_share`` of its
frames above the middle, in dB, of the quiet and loud levels): an event cut from a field ambience rather
than a steady sound (a drum loop, a buzz), whose quiet frames are the sound itself. A faint clip is cut to
its event (the span whose frames rise above that middle); a clip still faint after the cut, or shorter
than ``min_event_s``, is dropped. Clips shorter than ``min_checked_s`` (a click, a knock) are all event
and left as they are.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from avdemo.data.catalog import SAMPLE_RATE

N_FFT, HOP = 512, 160


@dataclass(frozen=True)
class EventCheck:
    """Thresholds of the faint-event check."""
    min_contrast_db: float = 12.0
    noisy_background: float = 0.1       # spectral flatness of the quiet frames (1: white noise, 0: a tone)
    steady_share: float = 0.5           # frames above the middle level: above this share the sound is steady
    min_event_s: float = 0.2
    min_checked_s: float = 0.5
    margin_s: float = 0.05


@dataclass(frozen=True)
class EventStats:
    contrast_db: float
    flatness: float
    loud_share: float

    def faint(self, check: EventCheck) -> bool:
        return (self.contrast_db < check.min_contrast_db and self.flatness > check.noisy_background
                and self.loud_share <= check.steady_share)


def power_spectrogram(wav: np.ndarray) -> np.ndarray:
    """(F, T) power spectrogram."""
    x = torch.from_numpy(np.pad(wav.astype(np.float32), (0, max(0, N_FFT - len(wav)))))
    spec = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    return spec.abs().pow(2).numpy() + 1e-10


def event_stats(wav: np.ndarray) -> EventStats:
    """Contrast (dB) of the loudest fifth of frames over the quietest fifth, the quiet frames' spectral
    flatness and the share of frames above the middle (in dB) of the two."""
    power = power_spectrogram(wav)
    energy = power.sum(0)
    order = np.argsort(energy, kind="stable")
    fifth = max(1, len(order) // 5)
    quiet, loud = power[:, order[:fifth]].mean(1), power[:, order[-fifth:]].mean(1)
    flatness = float(np.exp(np.log(quiet).mean()) / quiet.mean())
    share = float((energy > np.sqrt(loud.sum() * quiet.sum())).mean())     # above the middle in dB
    return EventStats(round(float(10 * np.log10(loud.sum() / quiet.sum())), 2), round(flatness, 3), round(share, 3))


def cut_to_event(wav: np.ndarray, margin_s: float = EventCheck.margin_s) -> np.ndarray:
    """The span from the first to the last frame louder than the middle (in dB) of the quietest and
    loudest fifths, with ``margin_s`` either side."""
    energy_db = 10 * np.log10(power_spectrogram(wav).sum(0))
    ranked = np.sort(energy_db)
    fifth = max(1, len(ranked) // 5)
    middle = (ranked[:fifth].mean() + ranked[-fifth:].mean()) / 2
    loud = np.flatnonzero(energy_db > middle)
    margin = int(margin_s * SAMPLE_RATE)
    return wav[max(0, loud[0] * HOP - margin): min(len(wav), loud[-1] * HOP + N_FFT // 2 + margin)]


def keep_event(wav16: np.ndarray, check: EventCheck = EventCheck()) -> tuple[np.ndarray | None, str]:
    """The clip to keep (itself, or cut to its event) or None to drop it, and what was done
    (``""``, ``"cut"`` or ``"dropped"``, with the contrast)."""
    stats = event_stats(wav16)
    if len(wav16) < check.min_checked_s * SAMPLE_RATE or not stats.faint(check):
        return wav16, ""
    cut = cut_to_event(wav16, check.margin_s)
    after = event_stats(cut)
    note = f"contrast {stats.contrast_db} dB, flatness {stats.flatness}"
    if after.faint(check) or len(cut) < check.min_event_s * SAMPLE_RATE:
        return None, f"dropped ({note}; {after.contrast_db} dB after a cut to {len(cut) / SAMPLE_RATE:.2f} s)"
    return cut, f"cut to the event ({note} -> {after.contrast_db} dB, {len(cut) / SAMPLE_RATE:.2f} s)"
