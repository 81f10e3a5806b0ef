"""The live tab's machinery without a browser: the audio ring buffer, the frame gate that drops frames
arriving during a map, and a session mapping frames with the newest sound (or silence)."""
from __future__ import annotations

import io
import json
import threading
import time
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch

from avdemo.errors import AVDemoError
from avdemo.live import AudioRing, FrameGate, LiveConfig, LiveSession, audio_vector, mono_float


def test_ring_keeps_the_newest_samples_in_order_across_the_wrap():
    ring = AudioRing(5)
    ring.push(np.arange(3))
    assert ring.latest(5).tolist() == [0, 0, 0, 1, 2]            # zeros before the stream began
    ring.push(np.arange(3, 7))
    assert ring.latest(5).tolist() == [2, 3, 4, 5, 6]
    assert ring.latest(2).tolist() == [5, 6]
    ring.push(np.arange(10, 22))                                    # a chunk longer than the ring
    assert ring.latest(5).tolist() == [17, 18, 19, 20, 21]
    with pytest.raises(ValueError):
        ring.latest(6)


def test_ring_matches_the_tail_of_the_whole_stream_for_random_chunks():
    rng = np.random.default_rng(0)
    ring, stream = AudioRing(100), []
    for _ in range(50):
        chunk = rng.normal(size=rng.integers(1, 80)).astype(np.float32)
        ring.push(chunk)
        stream.append(chunk)
        whole = np.concatenate(stream)
        np.testing.assert_array_equal(ring.latest(min(100, len(whole))), whole[-100:])


def test_gate_drops_a_frame_that_arrives_while_another_is_inside():
    gate = FrameGate()
    inside, release = threading.Event(), threading.Event()

    def first():
        with gate.admit() as admitted:
            assert admitted
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=first)
    worker.start()
    inside.wait(5)
    with gate.admit() as admitted:           # arrives during the first: dropped at once, not queued
        assert not admitted
    release.set()
    worker.join()
    with gate.admit() as admitted:           # the gate is free again
        assert admitted
    assert (gate.admitted, gate.dropped) == (2, 1)


def test_session_drops_frames_arriving_during_a_map(tiny_model):
    session = LiveSession()
    frame = np.zeros((48, 64, 3), np.uint8)
    results = []
    encode, entered, release = tiny_model.encode_image, threading.Event(), threading.Event()

    def slow_encode(images):
        entered.set()
        release.wait(5)
        return encode(images)

    tiny_model.encode_image = slow_encode
    worker = threading.Thread(target=lambda: results.append(session.map_frame(tiny_model, frame)))
    worker.start()
    entered.wait(5)
    dropped = [session.map_frame(tiny_model, frame) for _ in range(3)]
    release.set()
    worker.join()
    assert dropped == [None, None, None] and results[0] is not None
    assert (session.gate.admitted, session.gate.dropped) == (1, 3)


def test_session_maps_with_the_newest_window_and_says_when_it_is_silence(tiny_model):
    acfg = tiny_model.cfg.audio
    session = LiveSession(LiveConfig(silence_after_s=60.0))
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    silent = session.map_frame(tiny_model, frame)
    assert silent.heard.silent and silent.overlay.shape == frame.shape

    rate = 2 * acfg.sample_rate
    tone = np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32)
    session.add_sound([tiny_model], (tone[: rate // 4] * 32767).astype(np.int16), rate)   # int16 PCM
    session.add_sound([tiny_model], tone[rate // 4:], rate)
    mapped = session.map_frame(tiny_model, frame)
    assert not mapped.heard.silent
    np.testing.assert_allclose(mapped.heard.wav, tone[-round(acfg.window_s * rate):], atol=1e-4)
    # the same S as the model's own towers on this frame and window
    expected = tiny_model.localize(frame, mapped.heard.wav, sample_rate=rate)
    np.testing.assert_allclose(mapped.map_lowres, expected.maps_lowres[0], atol=1e-5)
    np.testing.assert_allclose(mapped.s_A, expected.s_A[0], atol=1e-5)
    row, col = np.unravel_index(expected.maps_lowres[0].argmax(), expected.maps_lowres[0].shape)
    assert mapped.peak_xy == ((col + 0.5) / 4, (row + 0.5) / 4)


def test_sound_older_than_the_silence_limit_is_not_heard(tiny_model):
    session = LiveSession(LiveConfig(silence_after_s=0.05))
    session.add_sound([tiny_model], np.ones(4000, np.float32) * 0.1, 8000)
    time.sleep(0.1)
    assert session.map_frame(tiny_model, np.zeros((32, 32, 3), np.uint8)).heard.silent


def test_audio_tower_runs_once_per_chunk_not_per_frame(tiny_model):
    calls = []
    encode = tiny_model.encode_audio
    tiny_model.encode_audio = lambda specs: calls.append(1) or encode(specs)
    session = LiveSession(LiveConfig(silence_after_s=60.0))
    session.add_sound([tiny_model], np.zeros(800, np.float32), 8000)
    for _ in range(5):
        session.map_frame(tiny_model, np.zeros((32, 32, 3), np.uint8))
    assert len(calls) == 1


def test_sessions_share_nothing(tiny_model):
    a, b = LiveSession(), LiveSession()
    a.add_sound([tiny_model], np.ones(800, np.float32) * 0.5, 8000)
    assert b.ring is None and not b.heard
    assert a.__deepcopy__({}).ring is None                 # gr.State's per-session copy starts empty


def test_downscaled_frames_and_pause(tiny_model):
    session = LiveSession(LiveConfig(max_side=40))
    mapped = session.map_frame(tiny_model, np.zeros((60, 80, 3), np.uint8))
    assert mapped.frame.shape == (30, 40, 3)
    session.paused = True
    assert session.map_frame(tiny_model, np.zeros((60, 80, 3), np.uint8)) is None


def test_freeze_writes_frame_map_sound_and_scores(tiny_model, tmp_path):
    session = LiveSession(LiveConfig(silence_after_s=60.0))
    with pytest.raises(AVDemoError, match="nothing mapped yet"):
        session.freeze(tmp_path / "none.zip")
    session.add_sound([tiny_model], np.full(8000, 0.25, np.float32), 8000)
    mapped = session.map_frame(tiny_model, np.full((32, 48, 3), 90, np.uint8))
    assert session.freeze(tmp_path / "sample.zip") is mapped
    with zipfile.ZipFile(tmp_path / "sample.zip") as z:
        assert sorted(z.namelist()) == ["frame.png", "heatmap.png", "map.npy", "scores.json", "sound.wav"]
        wav, rate = sf.read(io.BytesIO(z.read("sound.wav")))
        scores = json.loads(z.read("scores.json"))
        raw = np.load(io.BytesIO(z.read("map.npy")))
    assert rate == 8000 and len(wav) == round(tiny_model.cfg.audio.window_s * 8000)
    assert scores["s_A"] == pytest.approx(mapped.s_A) and scores["sound"] == "microphone"
    np.testing.assert_array_equal(raw, mapped.map_lowres)


def test_mono_float_scales_integer_pcm_and_downmixes():
    stereo = np.array([[32767, -32767], [16384, 16384]], np.int16)
    np.testing.assert_allclose(mono_float(stereo), [0.0, 0.5], atol=1e-4)
    with pytest.raises(AVDemoError):
        mono_float(np.zeros((2, 2, 2)))


def test_audio_vector_pads_a_short_window_with_leading_silence(tiny_model):
    acfg = tiny_model.cfg.audio
    short = np.full(acfg.window_samples // 2, 0.3, np.float32)
    padded = np.concatenate([np.zeros(acfg.window_samples - len(short), np.float32), short])
    with torch.inference_mode():
        expected = tiny_model.encode_audio(tiny_model.audio_to_specs(torch.from_numpy(padded)[None], None, 1))
    torch.testing.assert_close(audio_vector(tiny_model, short, acfg.sample_rate), expected)
