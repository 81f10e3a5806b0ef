"""Ear, eye, bridge: which side of a model fails, overall and per class, with ground-truth boxes.

Everything is measured in the space where the map is made: the audio vector f_a and the visual cells
f_v, by cosine. The objects are every object of a sounding category in our scenes, each pooled from f_v
over its box; the recordings are the pack's recordings of those categories, each rendered as a scene's
audio and heard through the model's window.
- ear: a recording's nearest recording from another package has its category;
- eye: an object's nearest object of another picture, in another scene, has its category;
- bridge: a recording's nearest object has its category (sound -> object), and an object's nearest
  recording has its category (object -> sound).
A query scores the share of its most similar candidates that have its category (ties share the credit),
so features that say nothing score chance: the share of its candidates that have its category. Only
queries with at least one candidate of their own category count.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from avdemo.data.catalog import SILENT_OBJECT, Catalog, load_catalog
from avdemo.data.scenes import scene_audio

from .audio import clip_window, to_model_rate
from .benchmarks import BenchmarkSample, read_frame
from .metrics import GT_SIZE, gt_map_from_boxes
from .model import AVLocalizer
from .switch import scene_config, stable_rng, training_media

NEIGHBOUR_MEASURES = ("ear", "eye", "sound_to_object", "object_to_sound")
TIE = 1e-6             # cosine similarities closer than this count as equal


def nearest_category_hits(similarity: np.ndarray, same: np.ndarray, allowed: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Category 1-NN of every query (rows) among its allowed candidates (columns): (hit share (Q,), chance
    (Q,), which queries count (Q,) bool). ``same``: the candidate has the query's category; ties (within
    ``TIE``) share the credit."""
    sim = np.where(allowed, similarity, -np.inf)
    best = sim >= sim.max(1, keepdims=True) - TIE                 # equal up to rounding: a tie
    best &= allowed
    counts = (same & allowed).sum(1)
    valid = counts > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        hits = (best & same).sum(1) / best.sum(1)
        chance = counts / allowed.sum(1)
    return hits, chance, valid


@dataclass
class Side:
    """The queries of one measure: their categories and hit shares, chance, and whether training saw them."""

    categories: np.ndarray   # (Q,) str
    hits: np.ndarray         # (Q,) in 0..1
    chance: np.ndarray       # (Q,)
    seen: np.ndarray | None  # (Q,) bool, None when training's media are unknown

    def percentages(self) -> dict[str, Any]:
        """n, and the hit share and chance in percent (overall, and over the media training never saw)."""
        out = {"n": len(self.hits), "hits": _pct(self.hits), "chance": _pct(self.chance)}
        if self.seen is not None:
            out["not_seen"] = {"n": int((~self.seen).sum()), "hits": _pct(self.hits[~self.seen]),
                               "chance": _pct(self.chance[~self.seen])}
        return out


def _pct(values: np.ndarray) -> float:
    return round(100.0 * float(np.mean(values)), 2) if len(values) else float("nan")


def _side(hits, chance, valid, categories, seen) -> Side:
    return Side(np.asarray(categories)[valid], hits[valid], chance[valid],
                None if seen is None else np.asarray(seen)[valid])


def diagnose_features(objects: np.ndarray, object_cats: list[str], object_scene: list[int],
                      object_picture: list[str], sounds: np.ndarray, sound_cats: list[str],
                      sound_package: list[str], object_seen: list[bool] | None = None,
                      sound_seen: list[bool] | None = None) -> dict[str, Any]:
    """The four measures from L2-normalised features: objects (O, C) box-pooled, sounds (R, C) audio
    vectors; the report overall, for media training never saw, and per class."""
    oc, sc = np.asarray(object_cats), np.asarray(sound_cats)
    scene, picture, package = np.asarray(object_scene), np.asarray(object_picture), np.asarray(sound_package)
    sides = {
        "ear": _side(*nearest_category_hits(sounds @ sounds.T, sc[:, None] == sc[None],
                                            package[:, None] != package[None]), sc, sound_seen),
        "eye": _side(*nearest_category_hits(objects @ objects.T, oc[:, None] == oc[None],
                                            (scene[:, None] != scene[None]) & (picture[:, None] != picture[None])),
                     oc, object_seen),
        "sound_to_object": _side(*nearest_category_hits(sounds @ objects.T, sc[:, None] == oc[None],
                                                        np.ones((len(sc), len(oc)), bool)), sc, sound_seen),
        "object_to_sound": _side(*nearest_category_hits(objects @ sounds.T, oc[:, None] == sc[None],
                                                        np.ones((len(oc), len(sc)), bool)), oc, object_seen),
    }
    report: dict[str, Any] = {"n_objects": len(oc), "n_recordings": len(sc),
                              **{name: side.percentages() for name, side in sides.items()}}
    per_class: dict[str, dict[str, float]] = defaultdict(dict)
    for name, side in sides.items():
        for c in sorted(set(side.categories)):
            per_class[str(c)][name] = _pct(side.hits[side.categories == c])
    report["per_class"] = dict(sorted(per_class.items()))
    return report


@torch.inference_mode()
def box_pooled_features(model: AVLocalizer, frame_uint8: np.ndarray, boxes: list[list[float]]) -> np.ndarray:
    """(len(boxes), C) L2-normalised mean of f_v over each normalised xyxy box, cells weighted by the
    share of their area inside it."""
    model.eval()
    visual_map = model.encode_image(model.preprocess_frames(frame_uint8)).float()[0]      # (C, h, w)
    masks = torch.from_numpy(np.stack([gt_map_from_boxes([b], GT_SIZE) for b in boxes]).astype(np.float32))
    weights = F.adaptive_avg_pool2d(masks[:, None], visual_map.shape[-2:])[:, 0].to(visual_map.device)
    pooled = torch.einsum("chw,khw->kc", visual_map, weights) / weights.sum((-2, -1))[:, None].clamp_min(1e-12)
    return F.normalize(pooled, dim=-1).cpu().numpy()


@torch.inference_mode()
def audio_vectors(model: AVLocalizer, windows: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """(N, C) L2-normalised audio vectors f_a of windows (N, window_samples) at the model's rate."""
    model.eval()
    device = model.pixel_mean.device
    out = [model.encode_audio(model.spectrogram(windows[i:i + batch_size].to(device))).float()
           for i in range(0, len(windows), batch_size)]
    return F.normalize(torch.cat(out), dim=-1).cpu().numpy()


def diagnose(model: AVLocalizer, samples: list[BenchmarkSample], train_meta: Path | None = None,
             seed: int = 0, catalog: Catalog | None = None) -> dict[str, Any] | None:
    """Ear / eye / bridge of ``model`` on our data's scenes (None when the samples are not ours);
    ``catalog``: the pack's sounds, when already loaded."""
    scenes = [(i, s) for i, s in enumerate(samples) if s.sounding and s.meta.get("objects")]
    if not scenes:
        return None
    seen = training_media(train_meta) if train_meta is not None else None
    feats, cats, scene_of, pictures = [], [], [], []
    for i, s in scenes:
        objects = [o for o in s.meta["objects"] if o["category"] != SILENT_OBJECT]
        if not objects:
            continue
        feats.append(box_pooled_features(model, read_frame(s.image_path), [o["bbox"] for o in objects]))
        cats += [o["category"] for o in objects]
        scene_of += [i] * len(objects)
        pictures += [o["picture"] for o in objects]
    catalog = catalog or load_catalog(sounds_only=True)
    wanted = set(cats)
    recordings = [m for m in catalog.media.values() if m.kind == "sound" and m.category in wanted]
    cfg = scene_config(scenes[0][1])
    windows = torch.stack([clip_window(to_model_rate(scene_audio(stable_rng(seed, m.id, "diagnosis"),
                                                                 catalog.sounds[m.id], cfg), cfg.sample_rate,
                                                     model.cfg.audio), model.cfg.audio) for m in recordings])
    return diagnose_features(
        np.concatenate(feats), cats, scene_of, pictures, audio_vectors(model, windows),
        [m.category for m in recordings], [m.package for m in recordings],
        object_seen=None if seen is None else [p in seen["pictures"] for p in pictures],
        sound_seen=None if seen is None else [m.id in seen["recordings"] for m in recordings])
