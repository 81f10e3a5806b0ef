"""avdemo.media on real files written here with PyAV: MP4 writing, probing, streaming decode, audio."""
from __future__ import annotations

import av
import numpy as np
import pytest
import soundfile as sf

from avdemo.errors import AVDemoError
from avdemo.media import frame_at, iter_frames, probe, read_audio, write_mp4


def grey_frames(n: int, height: int = 48, width: int = 64):
    """Frame i is uniformly grey at level 10 * i, so a decoded frame tells its index."""
    for i in range(n):
        yield np.full((height, width, 3), 10 * i, np.uint8)


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wav = np.stack([0.5 * np.sin(2 * np.pi * 440 * t * (c + 1)) for c in range(channels)], axis=1)
    return wav[:, 0].astype(np.float32) if channels == 1 else wav.astype(np.float32)


def test_write_mp4_gives_browser_playable_h264_aac_with_every_frame(tmp_path):
    path = write_mp4(tmp_path / "clip.mp4", grey_frames(20), fps=10.0, audio=tone(2.0, 16000), sample_rate=16000)
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert audio.codec_context.name == "aac"
        assert sum(1 for _ in container.decode(video)) == 20
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")            # +faststart: playable while loading
    info = probe(path)
    assert (info.width, info.height, info.fps, info.n_frames) == (64, 48, 10.0, 20)
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    wav, rate = read_audio(path)
    assert rate == 16000 and wav.ndim == 1
    assert len(wav) == pytest.approx(32000, abs=2048)          # cut at the video's end (+ AAC padding)
    assert list(tmp_path.iterdir()) == [path]                  # no temp file left


def test_write_mp4_crops_odd_sizes_to_even(tmp_path):
    path = write_mp4(tmp_path / "odd.mp4", grey_frames(3, height=47, width=65), fps=25.0)
    info = probe(path)
    assert (info.width, info.height, info.has_audio) == (64, 46, False)


def test_write_mp4_keeps_stereo_44k_channels(tmp_path):
    wav = tone(1.0, 44100, channels=2)
    wav[:, 1] = 0.0
    path = write_mp4(tmp_path / "stereo.mp4", grey_frames(10), fps=10.0, audio=wav, sample_rate=44100)
    info = probe(path)
    assert (info.sample_rate, info.channels) == (44100, 2)
    decoded, rate = read_audio(path)
    assert rate == 44100 and decoded.shape[1] == 2
    rms = np.sqrt((decoded[4410:-4410] ** 2).mean(0))
    assert rms[0] == pytest.approx(0.5 / np.sqrt(2), rel=0.05) and rms[1] < 0.01


def test_write_mp4_leaves_nothing_when_the_frames_fail(tmp_path):
    def failing():
        yield from grey_frames(3)
        raise RuntimeError("decoder died")

    with pytest.raises(RuntimeError):
        write_mp4(tmp_path / "broken.mp4", failing(), fps=10.0)
    assert list(tmp_path.iterdir()) == []


def test_iter_frames_strides_with_source_times_and_caps_the_side(tmp_path):
    path = write_mp4(tmp_path / "clip.mp4", grey_frames(20, height=48, width=64), fps=10.0)
    frames = list(iter_frames(path, stride=3, max_side=32))
    assert [round(t, 3) for t, _ in frames] == [0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 1.8]
    assert all(f.shape == (24, 32, 3) and f.dtype == np.uint8 for _, f in frames)
    assert [round(float(f.mean()) / 10) for _, f in frames] == [0, 3, 6, 9, 12, 15, 18]


def test_frame_at_returns_the_frame_shown_at_that_time(tmp_path):
    path = write_mp4(tmp_path / "clip.mp4", grey_frames(20), fps=10.0)
    t, frame = frame_at(path, 1.25)
    assert t == pytest.approx(1.2) and round(float(frame.mean()) / 10) == 12


def test_iter_frames_applies_display_rotation(tmp_path):
    path = tmp_path / "rotated.mp4"
    coded = np.zeros((32, 64, 3), np.uint8)
    coded[:8, :8] = 255                                         # white block at the coded top-left
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)                        # shown turned 90 degrees counter-clockwise
        for _ in range(3):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(coded, format="rgb24")))
        out.mux(stream.encode())
    info = probe(path)
    assert (info.rotation, info.width, info.height) == (90, 32, 64)
    _, frame = next(iter_frames(path))
    assert frame.shape == (64, 32, 3)
    assert frame[-8:, :8].mean() > 200 and frame[:8, :8].mean() < 50   # top-left went to bottom-left


def test_video_without_audio_probes_and_read_audio_says_so(tmp_path):
    path = write_mp4(tmp_path / "mute.mp4", grey_frames(5), fps=10.0)
    assert not probe(path).has_audio
    with pytest.raises(AVDemoError, match="no audio track"):
        read_audio(path)


def test_non_video_and_audio_only_files_raise_clear_errors(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    with pytest.raises(AVDemoError, match="cannot read 'notes.mp4'"):
        probe(text)
    wav_path = tmp_path / "sound.wav"
    sf.write(wav_path, tone(0.5, 22050, channels=2), 22050)
    with pytest.raises(AVDemoError, match="no video stream"):
        probe(wav_path)
    wav, rate = read_audio(wav_path)                           # an audio-only file is a valid sound
    assert rate == 22050 and wav.shape == (11025, 2)
