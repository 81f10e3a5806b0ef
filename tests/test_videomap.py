"""avdemo.videomap: the heat-map video pipeline on small real clips with the tiny model."""
from __future__ import annotations

import tempfile

import av
import numpy as np
import pytest
import torch

from avdemo import videomap
from avdemo.audio import to_model_rate
from avdemo.config import AudioConfig
from avdemo.errors import AVDemoError
from avdemo.media import iter_frames, probe, read_audio, write_mp4
from avdemo.model import upsample_maps
from avdemo.overlay import normalise, overlay
from avdemo.videomap import VideoMapConfig, frame_overlay, localize_video

FPS = 10.0
N_FRAMES = 12


def noise_frames(n: int = N_FRAMES, height: int = 36, width: int = 50):
    rng = np.random.default_rng(0)
    for _ in range(n):
        yield rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def click_track(seconds: float, rate: int, click_s: float, channels: int = 1) -> np.ndarray:
    """Silence with one 20 ms burst of noise at ``click_s``."""
    wav = np.zeros((int(seconds * rate), channels), np.float32)
    start = int(click_s * rate)
    wav[start:start + rate // 50] = np.random.default_rng(1).uniform(-0.8, 0.8, (rate // 50, channels))
    return wav[:, 0] if channels == 1 else wav


def varying_noise(seconds: float, rate: int, channels: int = 2) -> np.ndarray:
    """Noise whose level changes every 0.1 s: no two windows of the clip sound alike."""
    rng = np.random.default_rng(2)
    n = int(seconds * rate)
    level = np.repeat(rng.uniform(0.05, 0.8, int(np.ceil(seconds * 10))), -(-rate // 10))[:n]
    return (rng.uniform(-1, 1, (n, channels)) * level[:, None]).astype(np.float32)


def windows_by_hand(path, times: np.ndarray, cfg: AudioConfig, mode: str) -> np.ndarray:
    """The model-rate windows centred on ``times``, cut from the decoded track made as long as the video:
    samples beyond either end wrap around ("tile") or are silence ("pad")."""
    wav, rate = read_audio(path)
    n = round(probe(path).duration_s * rate)
    if len(wav) >= n:
        wav = wav[:n]
    elif mode == "tile":
        wav = wav[np.arange(n) % len(wav)]
    else:
        wav = np.concatenate([wav, np.zeros((n - len(wav),) + wav.shape[1:], wav.dtype)])
    mono = to_model_rate(wav, rate, cfg).numpy()
    starts = np.round(times * cfg.sample_rate).astype(int) - cfg.window_samples // 2
    idx = starts[:, None] + np.arange(cfg.window_samples)
    if mode == "tile":
        return np.clip(mono[idx % len(mono)], -1, 1)
    inside = (idx >= 0) & (idx < len(mono))
    return np.where(inside, np.clip(mono[np.clip(idx, 0, len(mono) - 1)], -1, 1), 0.0).astype(np.float32)


@pytest.fixture
def clip(tmp_path):
    """1.2 s, 50x36 (odd-ish size), stereo 44.1 kHz with a click at 0.6 s."""
    return write_mp4(tmp_path / "clip.mp4", noise_frames(), FPS, click_track(1.2, 44100, 0.6, 2), 44100)


@pytest.fixture(autouse=True)
def temp_root(tmp_path, monkeypatch):
    """Temporary folders of ``localize_video`` land here (and go with tmp_path)."""
    root = tmp_path / "tmproot"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_output_mp4_has_every_strided_frame_and_the_original_stereo_audio(tiny_model, clip):
    result = localize_video(tiny_model, clip, VideoMapConfig(stride=2, contour_threshold=0.5))
    n = N_FRAMES // 2
    assert np.allclose(result.times_s, np.arange(n) * 2 / FPS)
    assert result.maps_lowres.shape == (n, 4, 4)
    for series in (result.peak, result.mean, result.s_A, result.s_L, result.loudness_db):
        assert series.shape == (n,) and np.isfinite(series).all()
    assert (result.peak >= result.mean).all()
    stages = {k: v for k, v in result.seconds.items() if k != "total"}
    assert set(stages) == {"decode", "audio", "model", "overlay", "encode"}
    # disjoint stages (the frames drawn inside the encoder are not counted twice): within the total
    assert all(v > 0 for v in stages.values()) and sum(stages.values()) <= result.seconds["total"]
    with av.open(str(result.video_path)) as container:
        assert sum(1 for _ in container.decode(container.streams.video[0])) == n
    info = probe(result.video_path)
    assert (info.width, info.height, info.fps) == (50, 36, FPS / 2)
    assert (info.has_audio, info.sample_rate, info.channels) == (True, 44100, 2)
    assert result.audio_label == "original"
    t, big = frame_overlay(result, clip, 0.45, VideoMapConfig())
    assert t == pytest.approx(0.4) and big.shape == (36, 50, 3) and big.dtype == np.uint8


@pytest.mark.parametrize("stride, normalisation, window_mode", [(1, "frame", "tile"), (2, "clip", "pad")])
def test_every_output_frame_is_localize_on_that_frame_and_its_window_drawn_by_overlay(
        tiny_model, tmp_path, monkeypatch, stride, normalisation, window_mode):
    """Batches of 5 frames across 12 (or 6 strided) frames of a noise clip: each output frame's map equals
    ``model.localize`` on that decoded frame with its own centred window (cut here by hand), and the
    frame sent to the encoder is ``overlay`` of that map."""
    clip = write_mp4(tmp_path / "noisy.mp4", noise_frames(), FPS, varying_noise(1.2, 44100), 44100)
    encoded = []
    real_write_mp4 = videomap.write_mp4

    def recording_write_mp4(path, frames, *args, **kwargs):       # keeps the frames before the lossy codec
        return real_write_mp4(path, (encoded.append(f) or f for f in frames), *args, **kwargs)

    monkeypatch.setattr(videomap, "write_mp4", recording_write_mp4)
    cfg = VideoMapConfig(stride=stride, normalisation=normalisation, window_mode=window_mode, batch_size=5,
                         colormap="viridis", opacity=0.6, contour_threshold=0.7)
    result = localize_video(tiny_model, clip, cfg)

    frames = list(iter_frames(clip, stride))
    times = np.array([t for t, _ in frames])
    assert len(frames) == N_FRAMES // stride == len(result.times_s) == len(encoded)
    np.testing.assert_allclose(times, np.arange(len(frames)) * stride / FPS, atol=1e-6)
    np.testing.assert_allclose(result.times_s, times, atol=1e-9)
    windows = windows_by_hand(clip, times, tiny_model.cfg.audio, window_mode)
    assert len({w.tobytes() for w in windows}) == len(windows)          # a mix-up of windows would show
    truth = [tiny_model.localize(frame, window[None]) for (_, frame), window in zip(frames, windows)]
    maps_lowres = np.concatenate([t.maps_lowres for t in truth])
    np.testing.assert_allclose(result.maps_lowres, maps_lowres, atol=1e-5)
    np.testing.assert_allclose(result.s_L, [t.s_L[0] for t in truth], atol=1e-5)
    np.testing.assert_allclose(result.s_A, [t.s_A[0] for t in truth], atol=1e-5)
    rms = np.sqrt(np.mean(windows.astype(np.float64) ** 2, axis=1))
    np.testing.assert_allclose(result.loudness_db, 20 * np.log10(np.maximum(rms, 1e-5)), atol=1e-3)
    np.testing.assert_allclose(result.clip_range, (maps_lowres.min(), maps_lowres.max()), atol=1e-5)

    for i, ((_, frame), one) in enumerate(zip(frames, truth)):
        # exactly overlay() of the pipeline's own map, upsampled to the frame as localize upsamples
        own = upsample_maps(torch.from_numpy(result.maps_lowres[i:i + 1]), frame.shape[:2])[0].numpy()
        drawn = overlay(frame, normalise(own, normalisation, result.clip_range), "viridis", 0.6, 0.7)
        np.testing.assert_array_equal(encoded[i], drawn)
        # and, to float tolerance of the maps, overlay() of localize's own map of that frame and window
        independent = overlay(frame, normalise(one.maps[0], normalisation, (maps_lowres.min(), maps_lowres.max())),
                              "viridis", 0.6, 0.7)
        assert (encoded[i] == independent).all(-1).mean() > 0.99
    t, still = frame_overlay(result, clip, times[3] + 0.01, cfg)       # the app's still of one frame
    assert t == pytest.approx(times[3]) and np.array_equal(still, encoded[3])


def test_each_frame_hears_the_window_centred_on_its_time(tiny_model, clip):
    """The tiny model hears 0.5 s windows; the click at 0.6 s is heard by frames within 0.25 s of it."""
    result = localize_video(tiny_model, clip, VideoMapConfig(window_mode="pad"))
    heard = result.loudness_db > -90
    assert np.array_equal(heard, np.abs(result.times_s - 0.6) < 0.25 - 0.02)


def test_counterfactual_sounds_change_what_is_heard_and_the_scores(tiny_model, clip, tmp_path):
    original = localize_video(tiny_model, clip)
    silent = localize_video(tiny_model, clip, VideoMapConfig(audio="silence"))
    assert (silent.loudness_db == -100).all() and silent.audio_label == "silence"
    assert not np.allclose(silent.s_A, original.s_A)
    noisy = localize_video(tiny_model, clip, VideoMapConfig(audio="noise"))
    assert (noisy.loudness_db > -40).all()
    other = write_mp4(tmp_path / "other.mp4", noise_frames(5), FPS, click_track(0.5, 8000, 0.1), 8000)
    swapped = localize_video(tiny_model, clip, VideoMapConfig(audio=other))
    assert swapped.audio_label == "other.mp4"
    assert probe(swapped.video_path).sample_rate == 8000       # the sound heard is the sound in the MP4
    uploaded = localize_video(tiny_model, clip, VideoMapConfig(audio=(np.zeros(800, np.float32), 8000)))
    assert np.allclose(uploaded.s_A, silent.s_A, atol=1e-5)


def test_video_without_audio_asks_for_the_silence_counterfactual(tiny_model, tmp_path):
    mute = write_mp4(tmp_path / "mute.mp4", noise_frames(4), FPS)
    with pytest.raises(AVDemoError, match="no audio track; choose the 'silence'"):
        localize_video(tiny_model, mute)
    result = localize_video(tiny_model, mute, VideoMapConfig(audio="silence"))
    assert len(result.times_s) == 4
    wav, _ = read_audio(result.video_path)
    assert np.abs(wav).max() < 1e-3


def test_limits_refuse_long_videos_and_downscale_large_frames(tiny_model, clip, tmp_path):
    with pytest.raises(AVDemoError, match="at most 0.5 s: trim it"):
        localize_video(tiny_model, clip, VideoMapConfig(max_duration_s=0.5))
    result = localize_video(tiny_model, clip, VideoMapConfig(max_side=24, stride=4))
    assert result.frame_size == (17, 24) and "downscaled from 50x36 to 24x17" in result.notes[0]
    assert (probe(result.video_path).width, probe(result.video_path).height) == (24, 16)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(AVDemoError, match="cannot read"):
        localize_video(tiny_model, text)


def test_temporary_files_are_removed_when_drawing_fails(tiny_model, clip, temp_root, tmp_path, monkeypatch):
    def broken_draw(*args, **kwargs):
        raise AVDemoError("drawing failed")

    monkeypatch.setattr(videomap, "draw", broken_draw)
    with pytest.raises(AVDemoError, match="drawing failed"):
        localize_video(tiny_model, clip)
    assert list(temp_root.iterdir()) == []
    out_dir = tmp_path / "mine"
    out_dir.mkdir()
    with pytest.raises(AVDemoError):
        localize_video(tiny_model, clip, out_path=out_dir / "map.mp4")
    assert list(out_dir.iterdir()) == []                       # no partial file in the caller's folder


def test_the_shared_audio_pass_is_exact_for_one_window_and_close_for_a_batch(tiny_model, clip, tmp_path):
    """One window per batch: the shared pass covers exactly that window, so it equals the exact pass.
    Several per batch: each window's columns also hear their neighbours' audio at the edges."""
    exact = localize_video(tiny_model, clip, VideoMapConfig(batch_size=1), out_path=tmp_path / "exact.mp4")
    one = localize_video(tiny_model, clip, VideoMapConfig(batch_size=1, audio_pass="shared"),
                         out_path=tmp_path / "one.mp4")
    np.testing.assert_allclose(one.maps_lowres, exact.maps_lowres, atol=1e-5)
    np.testing.assert_allclose(one.s_A, exact.s_A, atol=1e-5)
    batched = localize_video(tiny_model, clip, VideoMapConfig(batch_size=8, audio_pass="shared"),
                             out_path=tmp_path / "batched.mp4")
    deviation = np.abs(batched.maps_lowres - exact.maps_lowres).max()
    assert 0 < deviation < 0.25
    with pytest.raises(AVDemoError, match="unknown audio pass"):
        localize_video(tiny_model, clip, VideoMapConfig(audio_pass="approximate"))


@pytest.mark.parametrize("backbone", ["resnet18", "resnet18_s32", "efficientnet_lite0"])
def test_folding_the_batch_norms_keeps_the_maps_of_every_visual_backbone(tiny_config, backbone):
    """The video pipeline's copy of the model (BN folded into the convs) gives localize's maps and scores."""
    from dataclasses import replace

    from avdemo.model import AVLocalizer, fold_batch_norms

    torch.manual_seed(0)
    model = AVLocalizer(replace(tiny_config, visual_backbone=backbone))
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):    # statistics far from 0/1
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    folded = fold_batch_norms(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 40, 52, 3), dtype=np.uint8)
    windows = rng.uniform(-0.5, 0.5, (3, tiny_config.audio.window_samples)).astype(np.float32)
    want, got = model.localize(frames, windows), folded.localize(frames, windows)
    for name in ("maps_lowres", "s_L", "s_A", "image_emb", "audio_emb"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), atol=1e-5)
