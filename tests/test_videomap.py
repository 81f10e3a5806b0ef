"""avdemo.videomap: the heat-map video pipeline on small real clips with the tiny model."""
from __future__ import annotations

import tempfile

import av
import numpy as np
import pytest

from avdemo import videomap
from avdemo.errors import AVDemoError
from avdemo.media import probe, read_audio, write_mp4
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
    assert set(result.seconds) == {"decode", "audio", "model", "overlay", "encode", "total"}
    assert all(v >= 0 for v in result.seconds.values())
    with av.open(str(result.video_path)) as container:
        assert sum(1 for _ in container.decode(container.streams.video[0])) == n
    info = probe(result.video_path)
    assert (info.width, info.height, info.fps) == (50, 36, FPS / 2)
    assert (info.has_audio, info.sample_rate, info.channels) == (True, 44100, 2)
    assert result.audio_label == "original"
    t, big = frame_overlay(result, clip, 0.45, VideoMapConfig())
    assert t == pytest.approx(0.4) and big.shape == (36, 50, 3) and big.dtype == np.uint8


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
