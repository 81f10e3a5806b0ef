"""The switch test: does the map follow the sound?

Every scene of our data with two or more objects of sounding categories is heard once per such object,
with that object's own recording (one training never used, where the split has one) rendered as a scene's
audio, over the same frame. A trial succeeds when the map's peak lies on the played object's own pixels
(its mask); "in its box" is reported too, since boxes overlap. Ties share the credit, so a constant map
scores exactly chance (the region's share of the image). "Sound dependence" is the median correlation
between the maps of one scene under different sounds (1: the sound changes nothing). Chance and the
audio-blind maps of ``avdemo.data.baselines`` are scored alongside, and the trials are grouped by whether
training saw the picture and the recording.
"""
from __future__ import annotations

import json
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from avdemo.data.baselines import baseline_maps
from avdemo.data.catalog import SILENT_OBJECT, Catalog, load_catalog
from avdemo.data.scenes import SceneConfig, scene_audio
from avdemo.data.splits import split_media

from .audio import clip_window, to_model_rate
from .benchmarks import BenchmarkSample, read_frame
from .metrics import GT_SIZE, gt_map_from_boxes
from .model import AVLocalizer

PEAK_PLACES = ("played object", "another object", "silent object", "background")
BLIND_MAPS = ("centre prior", "all objects", "largest object")      # of avdemo.data.baselines


@dataclass(frozen=True)
class SwitchTrial:
    """One object of a scene played over its frame: ``label`` is its value in the scene's mask."""

    sample: int                 # index into the samples
    label: int                  # object k has mask value k + 1
    category: str
    picture: str
    recording: str
    picture_seen: bool | None   # None: training's media unknown
    recording_seen: bool | None


def scene_labels(sample: BenchmarkSample) -> np.ndarray:
    """(224, 224) uint8 label map of one of our scenes: 0 background, k + 1 where object k is visible."""
    path = sample.image_path.parent.parent / sample.meta["mask"]
    with Image.open(path) as img:
        labels = np.array(img)
    if labels.shape != (GT_SIZE, GT_SIZE):
        labels = np.array(Image.fromarray(labels).resize((GT_SIZE, GT_SIZE), Image.NEAREST))
    return labels


def training_media(train_meta: Path) -> dict[str, set[str]]:
    """What a training split showed: every picture in its frames (distractors too) and every recording."""
    entries = json.loads(Path(train_meta).read_text())
    return {"pictures": {o["picture"] for e in entries for o in e.get("objects", [])} |
                        {e["picture_media"] for e in entries if "picture_media" in e},
            "recordings": {e["audio_media"] for e in entries if "audio_media" in e}}


def stable_rng(*keys: str | int) -> np.random.Generator:
    """A generator that depends only on ``keys`` (ids, indices), so that a trial is the same every run."""
    return np.random.default_rng([zlib.crc32(str(k).encode()) for k in keys])


def scene_config(sample: BenchmarkSample) -> SceneConfig:
    """The ``SceneConfig`` that built one of our scenes (its split's ``build.json``), for rendering sounds
    as its audio was rendered."""
    build = sample.image_path.parent.parent / "build.json"
    if not build.is_file():
        return SceneConfig()
    return SceneConfig(**{k: tuple(v) if isinstance(v, list) else v
                          for k, v in json.loads(build.read_text())["config"].items()})


def switch_trials(samples: list[BenchmarkSample], recordings: dict[str, tuple[str, ...]],
                  seen: dict[str, set[str]] | None = None, seed: int = 0) -> list[SwitchTrial]:
    """The trials of every scene with two or more objects of sounding categories; ``recordings``:
    category -> the recordings the split may play, of which one training never used is drawn when
    ``seen`` names training's media and one exists."""
    trials = []
    for i, s in enumerate(samples):
        objects = s.meta.get("objects") if s.sounding else None
        if not objects or "mask" not in s.meta:
            continue
        playable = [k for k, o in enumerate(objects) if o["category"] != SILENT_OBJECT and recordings.get(o["category"])]
        if len(playable) < 2:
            continue
        for k in playable:
            o = objects[k]
            pool = recordings[o["category"]]
            unseen = [r for r in pool if seen is not None and r not in seen["recordings"]]
            recording = str(stable_rng(seed, s.id, k).choice(unseen or pool))
            trials.append(SwitchTrial(
                sample=i, label=k + 1, category=o["category"], picture=o["picture"], recording=recording,
                picture_seen=None if seen is None else o["picture"] in seen["pictures"],
                recording_seen=None if seen is None else recording in seen["recordings"]))
    return trials


def peak_share(maps: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """(N,) share of each map's maximal pixels that lie in its region: maps (N, H, W), regions (N, H, W)
    bool. A map with one peak scores 0 or 1; a constant map scores the region's share of the image."""
    flat = maps.reshape(len(maps), -1)
    top = flat >= flat.max(1, keepdims=True)
    return (top & regions.reshape(len(regions), -1)).sum(1) / top.sum(1)


def map_correlations(maps: np.ndarray) -> np.ndarray:
    """Pearson correlations of every pair of maps (N, H, W) -> (N * (N - 1) / 2,), nan for a flat map."""
    flat = maps.reshape(len(maps), -1).astype(np.float64)
    flat = flat - flat.mean(1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (flat @ flat.T) / np.outer(norm, norm)
    return corr[np.triu_indices(len(maps), 1)]


@dataclass
class TrialScores:
    """What the maps of a set of trials did: per trial its peak share on each place, and per scene the
    correlations of its maps."""

    pixels: np.ndarray          # (T,) peak share on the played object's pixels
    box: np.ndarray             # (T,) ... in its box
    places: dict[str, np.ndarray]  # PEAK_PLACES -> (T,) peak share there
    correlations: np.ndarray    # (P,) every pair of maps of a scene, all scenes


def score_trials(maps: np.ndarray | list[np.ndarray], trials: list[SwitchTrial], labels: dict[int, np.ndarray],
                 samples: list[BenchmarkSample]) -> TrialScores:
    """Score one (224, 224) map per trial; ``labels``: sample index -> its scene's label map."""
    pixels, box, places = np.zeros(len(trials)), np.zeros(len(trials)), {p: np.zeros(len(trials)) for p in PEAK_PLACES}
    for j, t in enumerate(trials):
        lab, objects = labels[t.sample], samples[t.sample].meta["objects"]
        silent = np.isin(lab, [k + 1 for k, o in enumerate(objects) if o["category"] == SILENT_OBJECT])
        one = np.asarray(maps[j])[None]
        pixels[j] = peak_share(one, (lab == t.label)[None])[0]
        box[j] = peak_share(one, gt_map_from_boxes([objects[t.label - 1]["bbox"]], GT_SIZE)[None] > 0)[0]
        regions = (lab == t.label, (lab > 0) & (lab != t.label) & ~silent, silent, lab == 0)
        for place, region in zip(PEAK_PLACES, regions):
            places[place][j] = peak_share(one, region[None])[0]
    by_scene = defaultdict(list)
    for j, t in enumerate(trials):
        by_scene[t.sample].append(j)
    correlations = np.concatenate([map_correlations(np.stack([np.asarray(maps[j]) for j in idx]))
                                   for idx in by_scene.values()]) if trials else np.zeros(0)
    return TrialScores(pixels=pixels, box=box, places=places, correlations=correlations)


def _pct(values: np.ndarray) -> float:
    return round(100.0 * float(np.mean(values)), 2) if len(values) else float("nan")


def summarize_trials(model: TrialScores, chance: TrialScores, blind: dict[str, TrialScores],
                     trials: list[SwitchTrial]) -> dict[str, Any]:
    """The report: the model's switch rates (percent), where its peaks land, its sound dependence, chance
    and the blind maps; the same by seen / not-seen media and per category."""
    def block(idx: np.ndarray) -> dict[str, Any]:
        return {"n": len(idx), "pixels": _pct(model.pixels[idx]), "box": _pct(model.box[idx]),
                "chance_pixels": _pct(chance.pixels[idx]), "chance_box": _pct(chance.box[idx]),
                "blind_pixels": {m: _pct(b.pixels[idx]) for m, b in blind.items()},
                "blind_box": {m: _pct(b.box[idx]) for m, b in blind.items()}}

    everything = np.arange(len(trials))
    corr = model.correlations[np.isfinite(model.correlations)]
    report = {"n_scenes": len({t.sample for t in trials}), "n_trials": len(trials), **block(everything),
              "peak_on": {p: _pct(v) for p, v in model.places.items()},
              "sound_dependence": round(float(np.median(corr)), 4) if len(corr) else None}
    if trials and trials[0].picture_seen is not None:
        groups = defaultdict(list)
        for j, t in enumerate(trials):
            groups[f"picture {'seen' if t.picture_seen else 'not seen'}, recording "
                   f"{'seen' if t.recording_seen else 'not seen'}"].append(j)
        report["by_media"] = {name: block(np.array(idx)) for name, idx in sorted(groups.items())}
    classes = defaultdict(list)
    for j, t in enumerate(trials):
        classes[t.category].append(j)
    report["per_class"] = {c: {"n": len(idx), "pixels": _pct(model.pixels[idx]), "box": _pct(model.box[idx])}
                           for c, idx in sorted(classes.items())}
    return report


def _trial_windows(trials: list[SwitchTrial], samples: list[BenchmarkSample], model: AVLocalizer,
                   catalog: Catalog, seed: int) -> torch.Tensor:
    """(T, window_samples) each trial's recording rendered as a scene's audio (with the scene config of
    the trials' split), the window the model hears of it."""
    cfg = scene_config(samples[trials[0].sample])
    windows = []
    for t in trials:
        wav = scene_audio(stable_rng(seed, samples[t.sample].id, t.label, "audio"), catalog.sounds[t.recording], cfg)
        windows.append(clip_window(to_model_rate(wav, cfg.sample_rate, model.cfg.audio), model.cfg.audio))
    return torch.stack(windows)


def switch_test(model: AVLocalizer, samples: list[BenchmarkSample], train_meta: Path | None = None,
                seed: int = 0, batch_size: int = 32, catalog: Catalog | None = None) -> dict[str, Any] | None:
    """The switch test of ``model`` on our data's scenes (None when no scene has two objects of sounding
    categories, or the samples are not ours); ``train_meta``: the training split's vggss.json, to group
    the trials by seen media; ``catalog``: the pack's sounds, when already loaded."""
    splits = {s.meta.get("split") for s in samples if s.sounding}
    if not samples or None in splits or len(splits) != 1:
        return None
    catalog = catalog or load_catalog(sounds_only=True)
    recordings = split_media(catalog, splits.pop()).sounds
    seen = training_media(train_meta) if train_meta is not None else None
    trials = switch_trials(samples, recordings, seen, seed)
    if not trials:
        return None
    labels = {i: scene_labels(samples[i]) for i in {t.sample for t in trials}}
    windows = _trial_windows(trials, samples, model, catalog, seed)
    frames = {i: read_frame(samples[i].image_path) for i in labels}
    maps = np.concatenate([
        model.localize(np.stack([frames[t.sample] for t in trials[j:j + batch_size]]), windows[j:j + batch_size],
                       output_size=(GT_SIZE, GT_SIZE), batch_size=batch_size).maps
        for j in range(0, len(trials), batch_size)])
    blind_maps = {i: baseline_maps({"bbox": samples[i].boxes, **samples[i].meta}) for i in labels}
    blind = {m: score_trials([blind_maps[t.sample][m] for t in trials], trials, labels, samples) for m in BLIND_MAPS}
    flat = np.zeros((GT_SIZE, GT_SIZE), np.float32)
    chance = score_trials([flat] * len(trials), trials, labels, samples)
    return summarize_trials(score_trials(maps, trials, labels, samples), chance, blind, trials)
