"""Video-level scores of a heat-map run on a shipped example clip against its per-frame ground truth."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from avdemo.videoeval import frame_ground_truth, score_video
from avdemo.videomap import VideoMapConfig, localize_video

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "farm"


def box_maps(boxes: list[list], size: int = 8) -> np.ndarray:
    """Low-res maps that are 1 inside each frame's sounding box (an oracle run) and a small ramp elsewhere."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    maps = []
    for b in boxes:
        m = 0.01 * (xx + yy)
        if b:
            x1, y1, x2, y2 = b[0]
            m = np.where((xx >= x1) & (xx <= x2) & (yy >= y1) & (yy <= y2), 1.0, m)
        maps.append(m)
    return np.asarray(maps, dtype=np.float32)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from avdemo.config import AudioConfig, ModelConfig
    from avdemo.model import AVLocalizer

    model = AVLocalizer(ModelConfig(image_size=64, audio=AudioConfig(sample_rate=8000, window_s=0.5, nperseg=128,
                                                                     noverlap=48, downmix="mean"))).eval()
    return localize_video(model, EXAMPLE.with_suffix(".mp4"), VideoMapConfig(stride=3),
                          out_path=tmp_path_factory.mktemp("v") / "out.mp4")


def test_frames_are_matched_to_the_nearest_ground_truth_time(run):
    gt = json.loads(EXAMPLE.with_suffix(".json").read_text())["frames"]
    boxes = frame_ground_truth(EXAMPLE.with_suffix(".json"), run.times_s)
    assert len(boxes) == len(run.times_s)
    for t, b in zip(run.times_s[:5], boxes[:5]):
        nearest = min(gt, key=lambda f: abs(f["t"] - t))
        assert b == nearest["bbox"]


def test_an_oracle_run_scores_perfect_pointing_and_separates_silence(run):
    boxes = frame_ground_truth(EXAMPLE.with_suffix(".json"), run.times_s)
    sounding = np.array([len(b) > 0 for b in boxes])
    assert 0 < sounding.sum() < len(boxes)                       # the clip has sounding and silent stretches
    oracle = dataclasses.replace(run, maps_lowres=box_maps(boxes), s_A=sounding.astype(np.float32))
    scores = score_video(oracle, EXAMPLE.with_suffix(".json"), threshold=0.5)
    assert scores["pointing_game"] == 100.0
    assert scores["confidence_auc"] == 100.0
    assert scores["false_positive_rate"] == 0.0 and scores["recall"] == 100.0
    assert scores["sounding_frames"] + scores["silent_frames"] == len(boxes)


def test_a_constant_confidence_cannot_separate_sounding_from_silent_frames(run):
    flat = dataclasses.replace(run, s_A=np.zeros_like(run.s_A))
    scores = score_video(flat, EXAMPLE.with_suffix(".json"), threshold=0.0)
    assert scores["confidence_auc"] == 50.0
    assert scores["false_positive_rate"] == 100.0
