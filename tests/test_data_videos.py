"""Example clips: decodable H.264 + AAC with per-frame ground truth of who sounds where."""
from __future__ import annotations

import json

import numpy as np
import pytest

from avdemo.data.catalog import load_catalog
from avdemo.data.splits import split_media
from avdemo.data.videos import EXAMPLE_CLIPS, VideoConfig, make_clip, write_clip
from avdemo.errors import AVDemoError
from avdemo.media import iter_frames, probe, read_audio

CFG = VideoConfig(width=160, height=120, fps=10.0, duration_s=4.0, stretches=2, silence_s=(0.3, 0.5))


@pytest.fixture(scope="module")
def catalog_media():
    catalog = load_catalog()
    return catalog, split_media(catalog, "test")


def test_clip_is_decodable_with_audio_and_truth_per_frame(catalog_media, tmp_path):
    catalog, media = catalog_media
    clip = make_clip(np.random.default_rng(0), catalog, media, ("dog, fox barking", "playing cello"), CFG)
    path = write_clip(clip, tmp_path / "clip")
    info = probe(path)
    assert (info.width, info.height, info.n_frames, info.has_audio) == (160, 120, 40, True)
    assert len([f for f in iter_frames(path)]) == 40
    truth = json.loads(path.with_suffix(".json").read_text())
    assert truth["file"] == "clip.mp4" and len(truth["frames"]) == 40
    assert [o["category"] for o in truth["objects"]] == ["dog, fox barking", "playing cello"]
    wav, rate = read_audio(path)
    assert rate == 16000 and abs(len(wav) / rate - 4.0) < 0.1
    for seg in truth["segments"]:
        inside = wav[int(seg["start_s"] * rate) + 800: int(seg["end_s"] * rate) - 800]
        assert np.sqrt(np.mean(inside ** 2)) > 0.03
    first = truth["segments"][0]["start_s"]
    assert np.sqrt(np.mean(wav[: int(first * rate) - 800] ** 2)) < 0.01        # a silent stretch first
    for frame in truth["frames"]:
        k = frame["sounding"]
        assert (k is None) == (frame["bbox"] == [])
        for box in frame["boxes"]:
            assert box is None or (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1)
        if k is not None:
            assert frame["bbox"] == [frame["boxes"][k]]
            assert any(s["start_s"] <= frame["t"] < s["end_s"] and s["object"] == k for s in truth["segments"])


def test_every_object_sounds_and_the_sound_changes_hands(catalog_media):
    catalog, media = catalog_media
    for seed in range(5):
        clip = make_clip(np.random.default_rng(seed), catalog, media, EXAMPLE_CLIPS[0][1], CFG)
        order = [s["object"] for s in clip.truth["segments"]]
        assert sorted(set(order)) == [0, 1, 2] and all(a != b for a, b in zip(order, order[1:]))
        silent = [f for f in clip.truth["frames"] if f["sounding"] is None]
        assert silent and len(silent) < len(clip.truth["frames"]) / 2


def test_clip_is_deterministic_and_rejects_unknown_categories(catalog_media):
    catalog, media = catalog_media
    a = make_clip(np.random.default_rng(3), catalog, media, ("helicopter",), CFG)
    b = make_clip(np.random.default_rng(3), catalog, media, ("helicopter",), CFG)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio) and a.truth == b.truth
    with pytest.raises(AVDemoError):
        make_clip(np.random.default_rng(0), catalog, media, ("unicorn neighing",), CFG)
