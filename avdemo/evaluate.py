"""Evaluate a checkpoint on a benchmark: localization, retrieval and false-positive metrics.

    python -m avdemo.evaluate --checkpoint PATH|URL|hf://... --benchmark NAME --root DIR \\
        [--meta FILE] [--ids FILE] [--negatives CSV] [--train-meta FILE] [--out report.json] [--batch-size N]

NAME: vggss, flickr, embedded (our data), or a box benchmark of the reference evaluation: is3, vpo_ss,
vpo_ms, s4, ms3 (``avdemo.benchmarks.BOX_BENCHMARKS``; IS3 adds iIoU and iAUC).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .audio import clip_window, to_model_rate
from .benchmarks import (BOX_BENCHMARKS, PUBLIC_LISTS, BenchmarkSample, check_files, list_file, load_box_benchmark,
                         load_flickr, load_vggss, public_list, read_frame, read_wav)
from .cache import atomic_write
from .checkpoints import card_path, load_model
from .config import FAMILIES
from .data.catalog import load_catalog
from .diagnosis import NEIGHBOUR_MEASURES, diagnose
from .errors import AVDemoError
from .fetch import read_card
from .metrics import (GT_SIZE, adaptive_ciou, ciou, ciou_auc, false_positive_metrics, group_auc, group_success_rate,
                      map_confidence, pointing_game, retrieval_recall, roc_auc, success_rate)
from .model import AVLocalizer, Localization
from .negatives import at_threshold
from .switch import switch_test

# What the model says about every sample of a benchmark, in sample order: maps (N, 224, 224) raw cosine
# maps at the reference's evaluation size, maps_lowres, s_L, s_A, image_emb, audio_emb.
Predictions = Localization


def run_model(model: AVLocalizer, samples: list[BenchmarkSample], batch_size: int = 32,
              progress: bool = True) -> Predictions:
    """``model.localize`` on every sample: the frame, and the window of its audio that the benchmark
    defines (``BenchmarkSample.audio_centre_s``, ``avdemo.audio.clip_window``) at the model's rate. Frames
    of one size are batched together."""
    cfg = model.cfg.audio
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    order: list[int] = []

    def load(s: BenchmarkSample) -> tuple[np.ndarray, torch.Tensor]:
        return read_frame(s.image_path), clip_window(to_model_rate(*read_wav(s.audio_path), cfg), cfg, s.audio_centre_s)

    with tqdm(total=len(samples), desc="evaluating", unit="pair", disable=not progress) as bar, \
            ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:           # decoding releases the GIL
        for start in range(0, len(samples), batch_size):
            batch = samples[start:start + batch_size]
            frames, windows = zip(*pool.map(load, batch))
            windows = torch.stack(windows)
            by_shape: dict[tuple, list[int]] = defaultdict(list)
            for j, frame in enumerate(frames):
                by_shape[frame.shape].append(j)
            for idx in by_shape.values():
                loc = model.localize(np.stack([frames[j] for j in idx]), windows[idx],
                                     output_size=(GT_SIZE, GT_SIZE), batch_size=batch_size)
                order += [start + j for j in idx]
                for f in fields(Localization):
                    parts[f.name].append(getattr(loc, f.name))
            bar.update(len(batch))
    inverse = np.argsort(order)
    return Predictions(**{name: np.concatenate(arrays)[inverse] for name, arrays in parts.items()})


def _retrieval(image_emb: np.ndarray, audio_emb: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """R@1/5/10 both ways; instance level always, class level when every sample has a class."""
    levels = {"instance": np.arange(len(class_names))}
    if all(class_names):
        levels["class"] = np.asarray(class_names)
    return {level: {"audio_to_image": retrieval_recall(audio_emb, image_emb, labels, labels),
                    "image_to_audio": retrieval_recall(image_emb, audio_emb, labels, labels)}
            for level, labels in levels.items()}


def rates_at_recall(confidence: np.ndarray, sounding: np.ndarray, kinds: np.ndarray, curves: dict,
                    recall_pct: float) -> dict[str, Any]:
    """The false-positive rates (percent, per kind of non-sounding pair) at the highest threshold whose
    recall reaches ``recall_pct`` (the False positives tab's rates, ``avdemo.negatives.at_threshold``)."""
    reached = np.flatnonzero(np.asarray(curves["recall"]) * 100.0 >= recall_pct)
    stats = at_threshold(confidence, sounding, kinds, curves, curves["thresholds"][reached[0]])
    return {"threshold": stats.threshold, "recall": stats.recall, "fpr": stats.fpr, "fpr_by_kind": stats.fpr_by_kind}


def _json_list(values: np.ndarray, cast=float) -> list:
    return [None if np.isnan(v) else cast(v) for v in np.asarray(values, dtype=np.float64)]


def score(preds: Predictions, samples: list[BenchmarkSample], confidence: str = "top25",
          ciou_threshold: float = 0.5) -> dict[str, Any]:
    """The report of one benchmark run: localization on sounding samples, retrieval among them, false
    positives when non-sounding pairs are present (``confidence``: "top25" or "peak" of the map, or
    "s_A"), and per-sample values (None where not defined) for the app."""
    if len(preds.maps) != len(samples):
        raise ValueError(f"{len(preds.maps)} predictions for {len(samples)} samples")
    n = len(samples)
    sounding = np.array([s.sounding for s in samples], dtype=bool)
    pos = np.flatnonzero(sounding)
    cious, adaptive, hits = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    conf = preds.s_A.astype(np.float64) if confidence == "s_A" else map_confidence(preds.maps, confidence)
    report: dict[str, Any] = {"n_samples": n, "n_sounding": len(pos), "n_non_sounding": n - len(pos),
                              "confidence": confidence, "ciou_threshold": ciou_threshold}
    if len(pos):
        maps, gt = preds.maps[pos], np.stack([samples[i].gt_map for i in pos])
        cious[pos], adaptive[pos], hits[pos] = ciou(maps, gt), adaptive_ciou(maps, gt), pointing_game(maps, gt)
        report["localization"] = {
            "n": len(pos),
            "ciou_success": success_rate(cious[pos], ciou_threshold), "ciou_auc": ciou_auc(cious[pos]),
            "mean_ciou": float(np.mean(cious[pos])),
            "adaptive_ciou_success": success_rate(adaptive[pos], ciou_threshold),
            "adaptive_ciou_auc": ciou_auc(adaptive[pos]), "mean_adaptive_ciou": float(np.mean(adaptive[pos])),
            "pointing_game": 100.0 * float(np.mean(hits[pos])),
        }
        groups = [samples[i].meta.get("group") for i in pos]
        if all(g is not None for g in groups):          # IS3: a scene succeeds when all its objects do
            report["localization"] |= {
                "n_groups": len(set(groups)),
                "iiou": group_success_rate(cious[pos], groups, ciou_threshold), "iauc": group_auc(cious[pos], groups),
                "adaptive_iiou": group_success_rate(adaptive[pos], groups, ciou_threshold),
                "adaptive_iauc": group_auc(adaptive[pos], groups)}
        report["retrieval"] = _retrieval(preds.image_emb[pos], preds.audio_emb[pos],
                                         [samples[i].class_name for i in pos])
    if len(pos) < n:
        fp = false_positive_metrics(conf, sounding, cious, ciou_threshold)
        fp["roc_auc"] = roc_auc(conf, sounding)
        kinds = np.array([s.kind for s in samples])
        fp["by_kind"] = {}
        for kind in sorted(set(kinds[~sounding])):
            c = conf[(kinds == kind) & ~sounding]
            fp["by_kind"][kind] = {"n": len(c), "mean_confidence": float(c.mean()),
                                   "confident_pct": 100.0 * float(np.mean(c >= fp["best_threshold"]))}
        fp["at_recall_90"] = rates_at_recall(conf, sounding, kinds, fp["curves"], 90.0)
        report["false_positives"] = fp
    report["per_sample"] = {
        "id": [s.id for s in samples], "kind": [s.kind for s in samples],
        "ciou": _json_list(cious), "adaptive_ciou": _json_list(adaptive),
        "pointing_hit": _json_list(hits, bool), "confidence": _json_list(conf),
    }
    return report


BLIND_BASELINES = ("centre prior", "all objects", "largest object")   # of avdemo.data.baselines.METHODS
PICTURE_NOT_SEEN = "picture not seen (held-out or new style), any audio"


def localization_by_media(report: dict[str, Any], samples: list[BenchmarkSample],
                          train_meta: Path) -> dict[str, dict[str, float]]:
    """Our data: the sounding samples' cIoU success and pointing game, grouped by whether their sounding
    picture and recording also appear in the training split (``train_meta``, its vggss.json): "seen",
    "held-out" (held out at random), "new style" (a held-out style or source of the pack), as "picture
    held-out, audio seen" and so on, plus all scenes whose picture training never saw. Shows how much of
    a score is recognition of seen media. Where the samples carry their scene's objects, each group also
    gets the best audio-blind baseline's pointing game and the oracle box's cIoU success on the same
    scenes (``avdemo.data.baselines``)."""
    from avdemo.data.baselines import score_entries
    from avdemo.data.catalog import read_manifest
    from avdemo.data.splits import heldout_style

    entries = json.loads(Path(train_meta).read_text())
    seen = {key: {e.get(key) for e in entries} for key in ("picture_media", "audio_media")}
    new_style = {m.id for m in read_manifest() if heldout_style(m)}
    per_sample, groups = report["per_sample"], defaultdict(list)
    for i, s in enumerate(samples):
        if not s.sounding:
            continue
        if not {"picture_media", "audio_media"} <= s.meta.keys():
            raise AVDemoError(f"sample {s.id} names no picture_media/audio_media: grouping by training "
                              f"media applies to the embedded benchmark")
        state = lambda key: ("seen" if s.meta[key] in seen[key] else
                             "new style" if s.meta[key] in new_style else "held-out")
        groups[f"picture {state('picture_media')}, audio {state('audio_media')}"].append(i)
        if state("picture_media") != "seen":
            groups[PICTURE_NOT_SEEN].append(i)
    cious, hits = np.array(per_sample["ciou"], dtype=float), np.array(per_sample["pointing_hit"], dtype=float)
    out = {}
    for name, idx in sorted(groups.items()):
        out[name] = {"n": len(idx), "ciou_success": success_rate(cious[idx], report["ciou_threshold"]),
                     "pointing_game": 100.0 * float(np.mean(hits[idx]))}
        if all("objects" in samples[i].meta for i in idx):
            blind = score_entries([{"bbox": samples[i].boxes, **samples[i].meta} for i in idx])
            best = max(BLIND_BASELINES, key=lambda m: blind[m]["pointing_game"])
            out[name].update(blind_pointing_game=blind[best]["pointing_game"], blind_method=best,
                             oracle_ciou_success=blind["oracle (box)"]["cIoU@0.5"])
    return out


def evaluate(model: AVLocalizer, samples: list[BenchmarkSample], batch_size: int = 32, progress: bool = True,
             confidence: str = "top25") -> tuple[dict[str, Any], Predictions]:
    """``run_model`` then ``score`` with the model's cIoU threshold."""
    preds = run_model(model, samples, batch_size=batch_size, progress=progress)
    return score(preds, samples, confidence=confidence, ciou_threshold=model.cfg.ciou_threshold), preds


def shuffled_audio(samples: list[BenchmarkSample], seed: int = 0) -> list[BenchmarkSample]:
    """The sounding samples, each heard with another sample's audio (a fixed derangement): the control
    that shows the map follows the sound. Ground truth stays the image's."""
    sounding = [s for s in samples if s.sounding]
    order = np.random.default_rng(seed).permutation(len(sounding))
    source = np.empty_like(order)
    source[order] = np.roll(order, 1)               # one random cycle: sample order[k] hears order[k - 1]
    return [replace(s, audio_path=sounding[j].audio_path) for s, j in zip(sounding, source)]


def behaviour(model: AVLocalizer, samples: list[BenchmarkSample], train_meta: Path | None = None,
              batch_size: int = 32) -> dict[str, Any]:
    """On our data, the switch test and the ear / eye / bridge diagnosis (keys ``switch``, ``diagnosis``;
    ``train_meta`` groups them by seen / not-seen media); nothing on other datasets."""
    if not any(s.sounding and "objects" in s.meta for s in samples):
        return {}
    catalog = load_catalog(sounds_only=True)
    found = {"switch": switch_test(model, samples, train_meta, batch_size=batch_size, catalog=catalog),
             "diagnosis": diagnose(model, samples, train_meta, catalog=catalog)}
    return {name: report for name, report in found.items() if report is not None}


def full_report(model: AVLocalizer, samples: list[BenchmarkSample], train_meta: Path | None = None,
                batch_size: int = 32, progress: bool = True, confidence: str = "top25") -> dict[str, Any]:
    """``evaluate``, and ``behaviour`` on our data; ``train_meta`` (the training split's vggss.json) adds
    the results by seen / not-seen media."""
    report, _ = evaluate(model, samples, batch_size=batch_size, progress=progress, confidence=confidence)
    if train_meta is not None:
        report["localization_by_media"] = localization_by_media(report, samples, train_meta)
    return report | behaviour(model, samples, train_meta, batch_size)


def card_test_metrics(model: AVLocalizer, samples: list[BenchmarkSample], report: dict[str, Any],
                      batch_size: int = 32) -> dict[str, Any]:
    """A model card's test metrics: the ``full_report`` of ``samples`` without per-sample values, and the
    localization of the shuffled-audio control."""
    control, _ = evaluate(model, shuffled_audio(samples), batch_size=batch_size, progress=False)
    return {"test": {k: v for k, v in report.items() if k != "per_sample"},
            "test_shuffled_audio": {"localization": control["localization"]}}


def write_card_metrics(checkpoint: str | Path, metrics: dict[str, Any], command: str) -> Path:
    """Store test metrics (``card_test_metrics``) in the model card of one of our local checkpoints,
    with the command that measured them; the rest of the card is kept."""
    path = card_path(Path(checkpoint))
    if not path.is_file():
        raise AVDemoError(f"--write-card: {checkpoint} has no model card ({path.name}); only our .safetensors have one")
    card = read_card(path)
    card["metrics"] = {**card.get("metrics", {}), **metrics}
    card.setdefault("provenance", {})["test_command"] = command
    atomic_write(path, lambda p: p.write_text(json.dumps(_json_safe(card), indent=2)))
    return path


def format_report(report: dict[str, Any]) -> str:
    """The headline numbers as a plain-text table (percentages unless marked)."""
    row = lambda name, *values: f"  {name:<28}" + "".join(f"{v:>9.2f}" for v in values)
    lines = [f"{report.get('benchmark', 'benchmark')}: {report['n_sounding']} sounding and "
             f"{report['n_non_sounding']} non-sounding pairs"]
    if loc := report.get("localization"):
        lines += [f"{'Localization':<30}{'success':>9}{'AUC':>9}{'mean':>9}",
                  row("cIoU", loc["ciou_success"], loc["ciou_auc"], loc["mean_ciou"]),
                  row("adaptive cIoU", loc["adaptive_ciou_success"], loc["adaptive_ciou_auc"],
                      loc["mean_adaptive_ciou"]),
                  row("pointing game", loc["pointing_game"])]
        if "iiou" in loc:
            lines += [row(f"iIoU, AUC ({loc['n_groups']} scenes)", loc["iiou"], loc["iauc"]),
                      row("adaptive iIoU, AUC", loc["adaptive_iiou"], loc["adaptive_iauc"])]
    if ret := report.get("retrieval"):
        lines.append(f"{'Retrieval':<30}{'R@1':>9}{'R@5':>9}{'R@10':>9}")
        lines += [row(f"{level} {direction.replace('_to_', ' -> ')}", *r.values())
                  for level, directions in ret.items() for direction, r in directions.items()]
    if fp := report.get("false_positives"):
        lines += [f"False positives (confidence {report['confidence']}, best threshold {fp['best_threshold']:.4f})",
                  row("AP", fp["AP"]), row("max-F1", fp["max_F1"]),
                  row("ROC-AUC sounding vs not", fp["roc_auc"]),
                  row("precision, sounding pairs", fp["precision_sounding"]),
                  row("precision, all pairs", fp["precision_all"])]
        lines += [row(f"confident {kind} (n={k['n']})", k["confident_pct"]) for kind, k in fp["by_kind"].items()]
        at90 = fp["at_recall_90"]
        lines += [row(f"at recall {at90['recall']:.1f}: {kind} FPR", rate) for kind, rate in at90["fpr_by_kind"].items()]
    if groups := report.get("localization_by_media"):
        lines.append(f"{'By training media':<30}{'success':>9}{'pointing':>9}{'blind pt':>9}{'oracle':>9}")
        lines += [row(f"{name} (n={g['n']})", g["ciou_success"], g["pointing_game"],
                      *([g["blind_pointing_game"], g["oracle_ciou_success"]] if "blind_method" in g else []))
                  for name, g in groups.items()]
    if sw := report.get("switch"):
        best_blind = lambda g, key: max(g[key].values())
        lines += [f"Switch test ({sw['n_trials']} trials in {sw['n_scenes']} scenes; sound dependence "
                  f"{sw['sound_dependence']:.2f}){'pixels':>8}{'box':>9}{'chance':>9}{'blind':>9}",
                  row("all trials", sw["pixels"], sw["box"], sw["chance_pixels"], best_blind(sw, "blind_pixels"))]
        lines += [row(f"{name} (n={g['n']})", g["pixels"], g["box"], g["chance_pixels"], best_blind(g, "blind_pixels"))
                  for name, g in sw.get("by_media", {}).items()]
        lines.append("  peak on: " + ", ".join(f"{place} {pct:.1f}" for place, pct in sw["peak_on"].items()))
    if dg := report.get("diagnosis"):
        lines.append(f"{'Ear / eye / bridge (category 1-NN)':<30}{'hits':>9}{'chance':>9}{'unseen':>9}")
        lines += [row(name.replace("_to_", " -> "), dg[name]["hits"], dg[name]["chance"],
                      *([dg[name]["not_seen"]["hits"]] if "not_seen" in dg[name] else []))
                  for name in NEIGHBOUR_MEASURES]
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    """nan and inf become null, so that the report is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def detect_benchmark(root: Path) -> str:
    """What a dataset folder holds: ``embedded`` (the VGG-SS layout: a ``vggss.json``) or the box benchmark
    whose metadata file it has (``BOX_BENCHMARKS``)."""
    root = Path(root)
    if (root / "vggss.json").is_file():
        return "embedded"
    found = [name for name, spec in BOX_BENCHMARKS.items() if (root / spec.meta).is_file()]
    if len(found) != 1:
        names = ", ".join(["vggss.json", *(spec.meta for spec in BOX_BENCHMARKS.values())])
        raise AVDemoError(f"{root}: expected exactly one of {names}; found {len(found)} box metadata files")
    return found[0]


def load_benchmark(benchmark: str, root: Path, meta: Path | None = None, ids: Path | None = None,
                   negatives: Path | None = None) -> list[BenchmarkSample]:
    """The samples of a named benchmark; ``embedded`` (our data, VGG-SS layout) takes its
    ``*_plus_silent.csv`` from ``root`` when no ``negatives`` are given. ``meta``, ``ids`` and ``negatives``
    may name a public list (``avdemo.benchmarks.PUBLIC_LISTS``, fetched once); ``vggss`` reads the public
    ``vggss.json`` when neither ``meta`` nor ``root`` has one."""
    meta, ids, negatives = (list_file(v) if v is not None else None for v in (meta, ids, negatives))
    if benchmark == "vggss" and meta is None and not (root / "vggss.json").is_file():
        meta = public_list("vggss.json")
    if benchmark in BOX_BENCHMARKS:
        if ids is not None or negatives is not None:
            raise AVDemoError(f"--ids and --negatives apply to VGG-SS and Flickr-SoundNet, not {benchmark}")
        return load_box_benchmark(benchmark, root, meta)
    if benchmark == "flickr":
        if meta is not None:
            raise AVDemoError("--meta applies to the VGG-SS layouts; Flickr-SoundNet reads root/Annotations")
        return load_flickr(root, ids=ids, negatives=negatives)
    if benchmark == "embedded" and negatives is None:
        found = sorted(root.glob("*_plus_silent.csv"))
        if len(found) > 1:
            raise AVDemoError(f"several non-sounding lists in {root}: {', '.join(p.name for p in found)}; "
                              f"choose one with --negatives")
        negatives = found[0] if found else None
    return load_vggss(root, meta=meta, ids=ids, negatives=negatives)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m avdemo.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True,
                        help="ours (.safetensors) or a .pth.tar: a path, an https:// URL or hf://owner/repo/file "
                             "(optionally #sha256=...)")
    parser.add_argument("--family", choices=sorted(FAMILIES),
                        help="the model family of a .pth file (default: read from its keys)")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="load a .pth file with full unpickling (it can run code: only for files you trust)")
    parser.add_argument("--benchmark", choices=("vggss", "flickr", "embedded", *BOX_BENCHMARKS), required=True)
    parser.add_argument("--root", type=Path, required=True, help="folder with frames/ and audio/")
    lists = ", ".join(PUBLIC_LISTS)
    parser.add_argument("--meta", type=Path, help="vggss.json, or a box benchmark's JSON (default: in ROOT; vggss: "
                        "the public vggss.json)")
    parser.add_argument("--ids", type=Path, help=f"a .txt/.csv list of the ids to evaluate, or a public list: {lists}")
    parser.add_argument("--negatives", type=Path, help="a *_plus_silent.csv of non-sounding pairs, or a public one")
    parser.add_argument("--confidence", choices=("top25", "peak", "s_A"), default="top25")
    parser.add_argument("--train-meta", type=Path, help="embedded benchmark: the training split's vggss.json, "
                        "to group results by whether the sounding picture and recording were seen in training")
    parser.add_argument("--out", type=Path, default=Path("report.json"))
    parser.add_argument("--write-card", action="store_true", help="our checkpoints: store the test metrics (and "
                        "the shuffled-audio control) in the checkpoint's model card, with this command")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    try:
        samples = load_benchmark(args.benchmark, args.root, args.meta, args.ids, args.negatives)
        check_files(samples)
        model = load_model(args.checkpoint, device=args.device, trusted=args.trust_checkpoint, family=args.family)
        report = full_report(model, samples, args.train_meta, batch_size=args.batch_size, confidence=args.confidence)
        if args.write_card:
            command = " ".join(["python -m avdemo.evaluate", *(argv if argv is not None else sys.argv[1:])])
            metrics = card_test_metrics(model, samples, report, args.batch_size)
            print(f"card written: {write_card_metrics(args.checkpoint, metrics, command)}")
    except AVDemoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = {"benchmark": args.benchmark, "root": str(args.root), "checkpoint": str(args.checkpoint),
              **report, "model_card": model.card}
    print(format_report(report))
    atomic_write(args.out, lambda p: p.write_text(json.dumps(_json_safe(report), indent=2)))
    print(f"report written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
