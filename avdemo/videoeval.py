"""Video-level localization scores of a heat-map run against per-frame ground truth.

Ground truth is the JSON written next to each example clip (``avdemo.data.videos``): per frame its time,
the sounding object's box (``bbox``, empty in silent stretches). Sounding frames are scored with the
reference cIoU and the pointing game; silent frames give the false-positive side: how often the model is
confident although nothing sounds.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .metrics import GT_SIZE, ciou, gt_map_from_boxes, map_confidence, pointing_game, roc_auc, success_rate
from .model import upsample_maps
from .videomap import VideoMapResult


def frame_ground_truth(gt_json: str | Path, times_s: np.ndarray) -> list[list]:
    """The sounding boxes ([] when silent) of the ground-truth frame nearest to each time."""
    frames = json.loads(Path(gt_json).read_text())["frames"]
    gt_times = np.array([f["t"] for f in frames])
    nearest = np.abs(gt_times[None, :] - np.asarray(times_s)[:, None]).argmin(1)
    return [frames[i]["bbox"] for i in nearest]


def score_video(result: VideoMapResult, gt_json: str | Path, confidence: str = "s_A",
                threshold: float | None = None) -> dict[str, float]:
    """Mean cIoU, cIoU@0.5 success and pointing game over the sounding frames; the ROC-AUC of the
    confidence (``s_A``, ``top25`` or ``peak``) between sounding and silent frames; with ``threshold``,
    the false-positive rate over the silent frames and the recall over the sounding ones (percent)."""
    boxes = frame_ground_truth(gt_json, result.times_s)
    sounding = np.array([len(b) > 0 for b in boxes])
    conf = result.s_A if confidence == "s_A" else map_confidence(result.maps_lowres, confidence)
    scores = {"frames": int(len(boxes)), "sounding_frames": int(sounding.sum()),
              "silent_frames": int((~sounding).sum()), "confidence_auc": roc_auc(conf, sounding)}
    if sounding.any():
        maps = upsample_maps(torch.from_numpy(result.maps_lowres[sounding]), (GT_SIZE, GT_SIZE)).numpy()
        gt = np.stack([gt_map_from_boxes(b) for b, s in zip(boxes, sounding) if s])
        cious = ciou(maps, gt)
        scores.update(mean_ciou=float(np.nanmean(cious)), ciou_success=success_rate(cious),
                      pointing_game=100.0 * float(pointing_game(maps, gt).mean()))
    if threshold is not None:
        confident = conf >= threshold
        scores["false_positive_rate"] = 100.0 * float(confident[~sounding].mean()) if (~sounding).any() else float("nan")
        scores["recall"] = 100.0 * float(confident[sounding].mean()) if sounding.any() else float("nan")
    return scores
