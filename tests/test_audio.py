"""The audio front end against scipy, and windowing/resampling behaviour."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from avdemo.audio import REFERENCE_CENTRE_S, LogSpectrogram, audio_windows, clip_window, to_model_rate
from avdemo.config import AudioConfig, preset
from train.config import AudioAugConfig
from train.views import audio_views


def scipy_log_spectrogram(x: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """The reference code's front end, verbatim in spirit: scipy spectrogram, log(S + eps) / 12."""
    _, _, spec = scipy.signal.spectrogram(x, cfg.sample_rate, nperseg=cfg.nperseg, noverlap=cfg.noverlap)
    return np.log(spec + cfg.log_eps) / cfg.log_scale


@pytest.mark.parametrize("name", ["paper", "cpu"])
def test_spectrogram_matches_scipy_on_random_audio(name):
    cfg = preset(name).audio
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(3, cfg.window_samples)) * rng.uniform(0.01, 1, size=(3, 1))
    ours = LogSpectrogram(cfg)(torch.from_numpy(x).float())[:, 0].numpy()
    ref = np.stack([scipy_log_spectrogram(xi, cfg) for xi in x])
    assert ours.shape == ref.shape == (3, *cfg.spec_shape)
    rel = np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-3)
    assert rel.max() < 1e-4


def test_paper_spectrogram_is_257_by_299():
    assert preset("paper").audio.spec_shape == (257, 299)


def test_spectrogram_of_silence_is_log_eps():
    cfg = preset("cpu").audio
    spec = LogSpectrogram(cfg)(torch.zeros(1, cfg.window_samples))
    assert torch.allclose(spec, torch.full_like(spec, np.log(cfg.log_eps) / cfg.log_scale))


def test_reference_window_tiles_short_clips_like_the_reference():
    cfg = preset("paper").audio
    rng = np.random.default_rng(1)
    clip = rng.uniform(-1, 1, size=int(2.3 * cfg.sample_rate)).astype(np.float32)
    # the reference: tile to at least 10 s, cut 10 s, take 3.5 s .. 6.5 s
    tiled = np.tile(clip, int(10 * cfg.sample_rate / len(clip)) + 1)[: 10 * cfg.sample_rate]
    expected = tiled[int(3.5 * cfg.sample_rate): int(6.5 * cfg.sample_rate)]
    ours = clip_window(torch.from_numpy(clip), cfg, REFERENCE_CENTRE_S).numpy()
    np.testing.assert_array_equal(ours, expected)


def test_the_default_window_is_the_clips_centre_as_training_hears_it():
    cfg = AudioConfig(sample_rate=1000, window_s=1.0)
    wav = torch.arange(3000, dtype=torch.float64) / 4096           # value encodes the sample index
    assert (clip_window(wav, cfg) * 4096).tolist() == list(range(1000, 2000))   # the centre second of 3 s
    aug = AudioAugConfig(max_shift_s=0.0)
    assert torch.equal(audio_views(wav, ["original"], cfg, aug, torch.Generator())[0], clip_window(wav, cfg))


def test_window_is_centred_on_the_requested_time():
    cfg = AudioConfig(sample_rate=1000, window_s=0.2)
    wav = torch.arange(5000, dtype=torch.float32) / 5000          # value encodes the sample index
    win = audio_windows(wav, [1.0, 2.5], cfg)
    assert win.shape == (2, 200)
    assert win[0, 100].item() * 5000 == pytest.approx(1000)
    assert win[1, 0].item() * 5000 == pytest.approx(2400)


def test_pad_mode_fills_outside_with_silence_and_tile_mode_wraps():
    cfg = AudioConfig(sample_rate=1000, window_s=0.2)
    wav = torch.ones(1000)
    padded = audio_windows(wav, [0.0], cfg, mode="pad")[0]
    assert padded[:100].abs().sum() == 0 and padded[100:].eq(1).all()
    assert audio_windows(wav, [0.0], cfg, mode="tile")[0].eq(1).all()


def test_to_model_rate_resamples_and_downmixes():
    cfg = AudioConfig(sample_rate=16000, downmix="mean")
    t = np.arange(44100) / 44100
    left, right = np.sin(2 * np.pi * 440 * t), np.zeros_like(t)
    stereo = np.stack([left, right], axis=1).astype(np.float32)      # (T, C) as soundfile reads it
    mono = to_model_rate(stereo, 44100, cfg).numpy()
    assert abs(len(mono) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(mono))
    assert np.argmax(spectrum) == pytest.approx(440, abs=1)          # 1 s of audio: bin = Hz
    assert np.abs(mono).max() == pytest.approx(0.5, abs=0.02)        # mean of a tone and silence
    first = to_model_rate(stereo, 44100, AudioConfig(downmix="first")).numpy()
    assert np.abs(first).max() == pytest.approx(1.0, abs=0.02)


def test_empty_audio_is_refused():
    with pytest.raises(ValueError, match="empty"):
        audio_windows(torch.zeros(0), [0.0], AudioConfig())
