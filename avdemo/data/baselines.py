"""Audio-blind baselines and the oracle on a built split, scored with the benchmark metrics.

A localizer that ignores the audio can at best guess the centre, all objects, or the largest object; the
oracle maps the ground-truth box. Box maps are binary, so ties at the reference median would decide
their cIoU; a faint centre prior (``TIE_BREAK``) orders the pixels outside the box as a continuous map
would. ``oracle (binary box)`` is the raw box map, for comparison.
"""
from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np

from avdemo.metrics import adaptive_ciou, ciou, ciou_auc, gt_map_from_boxes, pointing_game, success_rate

SIZE = 224
TIE_BREAK = 1e-3
CHUNK = 100
METHODS = ("centre prior", "all objects", "largest object", "oracle (box)", "oracle (binary box)")


def centre_prior(size: int = SIZE) -> np.ndarray:
    """An isotropic Gaussian at the image centre (sigma = size / 4), peak 1."""
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5 - size / 2) / (size / 4)
    return np.exp(-(xx ** 2 + yy ** 2) / 2)


def baseline_maps(entry: dict, size: int = SIZE) -> dict[str, np.ndarray]:
    """Each method's (size, size) map for one vggss.json entry (with its ``objects``)."""
    prior = centre_prior(size)
    boxes = [o["bbox"] for o in entry["objects"]]
    largest = max(entry["objects"], key=lambda o: o["area"])["bbox"]
    gt = gt_map_from_boxes(entry["bbox"], size)
    return {
        "centre prior": prior,
        "all objects": gt_map_from_boxes(boxes, size) + TIE_BREAK * prior,
        "largest object": gt_map_from_boxes([largest], size) + TIE_BREAK * prior,
        "oracle (box)": gt + TIE_BREAK * prior,
        "oracle (binary box)": gt,
    }


def _score_chunk(entries: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per-sample (cIoU, adaptive cIoU, pointing hit) of every method on a few entries."""
    gts = np.stack([gt_map_from_boxes(e["bbox"], SIZE) for e in entries]).astype(np.float32)
    maps = [baseline_maps(e) for e in entries]
    out = {}
    for m in METHODS:
        pred = np.stack([mp[m] for mp in maps]).astype(np.float32)
        out[m] = (ciou(pred, gts), adaptive_ciou(pred, gts), pointing_game(pred, gts))
    return out


def score_entries(entries: list[dict], workers: int = 1) -> dict[str, dict[str, float]]:
    """cIoU success rate at 0.5 and AUC, adaptive cIoU success rate at 0.5, pointing game (percent)."""
    chunks = [entries[i:i + CHUNK] for i in range(0, len(entries), CHUNK)]
    if workers > 1 and len(chunks) > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_score_chunk, chunks)
    else:
        parts = [_score_chunk(c) for c in chunks]
    scores = {}
    for m in METHODS:
        c, a, p = (np.concatenate([part[m][k] for part in parts]) for k in range(3))
        scores[m] = {"cIoU@0.5": round(success_rate(c), 2), "AUC": round(ciou_auc(c), 2),
                     "adaptive_cIoU@0.5": round(success_rate(a), 2), "pointing_game": round(100 * float(p.mean()), 2)}
    return scores


def split_stats(entries: list[dict]) -> dict[str, float]:
    """How hard the split is for audio-blind guesses (percent of scenes)."""
    areas = np.array([next(o["area"] for o in e["objects"] if o["sounding"]) for e in entries])
    return {
        "scenes": len(entries),
        "two_or_more_objects": round(100 * float(np.mean([len(e["objects"]) >= 2 for e in entries])), 1),
        "sounding_is_largest": round(100 * float(np.mean([e["is_largest"] for e in entries])), 1),
        "sounding_is_most_central": round(100 * float(np.mean([e["is_most_central"] for e in entries])), 1),
        "sounding_box_25_to_60pct": round(100 * float(np.mean((areas >= 0.25) & (areas <= 0.6))), 1),
        "sounding_box_mean_area_pct": round(100 * float(areas.mean()), 1),
    }


def write_baselines(folder: Path, workers: int = 2) -> Path:
    """Score a split folder's vggss.json; write and return ``baselines.json`` next to it (per open-set
    group too when the split has one)."""
    folder = Path(folder)
    entries = json.loads((folder / "vggss.json").read_text())
    result = {"metric_note": "percent; cIoU@0.5 is the reference success rate; maps are 224 x 224",
              "stats": split_stats(entries), "scores": score_entries(entries, workers)}
    groups = sorted({e["open_set"] for e in entries if "open_set" in e})
    for group in groups:
        result[f"scores_{group}"] = score_entries([e for e in entries if e.get("open_set") == group], workers)
    path = folder / "baselines.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


def baseline_table(scores: dict[str, dict[str, float]]) -> str:
    """A Markdown table of ``score_entries`` output."""
    columns = list(next(iter(scores.values())))
    lines = ["| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(f"{v:.1f}" for v in row.values()) + " |" for m, row in scores.items()]
    return "\n".join(lines)
