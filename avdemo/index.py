"""The index of a dataset under one model: what the app's retrieval, embedding and false-positive views show.

    python -m avdemo.index build --checkpoint PATH --root SPLIT_DIR [--out CACHE_DIR] [--batch-size N]
    torchrun --nproc-per-node 4 -m avdemo.index build ...     # each rank one shard, rank 0 merges

Per sample of a split in the VGG-SS layout (sounding pairs and its ``*_plus_silent.csv`` non-sounding
pairs): both embeddings (s_A space), the low-resolution map S, s_L, s_A, map confidences, cIoU. Per
dataset: UMAP coordinates of images and sounds together (fitted once, here), thumbnails, and a faiss
index per modality over the sounding pairs. Cached on disk in a folder named by the checkpoint's content
hash and the dataset's identity, so a changed checkpoint or dataset gets a new index.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from tqdm import tqdm

from .buildqueue import check_cancelled
from .benchmarks import BOX_BENCHMARKS, BenchmarkSample, check_files, read_frame
from .cache import cache_root, file_sha256
from .checkpoints import card_path, load_model
from .fetch import resolve_checkpoint
from .errors import AVDemoError
from .evaluate import behaviour, detect_benchmark, load_benchmark, run_model, score
from .metrics import (ciou_auc, false_positive_metrics, gt_map_from_boxes, map_confidence, retrieval_recall,
                      roc_auc, success_rate)
from .model import AVLocalizer

FORMAT = "avdemo-index/2"
THUMB_SIZE = 128               # thumbnails are square, as the model sees the frame
FLAT_MAX = 100_000             # exact inner-product search up to this many items, IVF above
CONFIDENCES = ("s_A", "top25", "peak")
SCORES = ("s_L", "s_A", "conf_top25", "conf_peak", "ciou", "adaptive_ciou", "pointing_hit")
ARRAYS = ("image_emb", "audio_emb", "maps_lowres", *SCORES)


def default_cache_dir() -> Path:
    """``$AVDEMO_INDEX_DIR``, else ``<cache_root()>/index``."""
    return Path(os.environ.get("AVDEMO_INDEX_DIR") or cache_root() / "index")


@dataclass
class SampleIndex:
    """A loaded index: per-sample lists and arrays (N samples), thumbnails, UMAP, faiss searchers."""

    folder: Path
    info: dict[str, Any]          # checkpoint, dataset, model card, summary metrics
    root: Path                    # the dataset split folder
    ids: list[str]
    class_names: np.ndarray       # (N,) str ("" for non-sounding pairs)
    kinds: np.ndarray             # (N,) "sounding" | "silence" | "noise" | "offscreen" | "non-sounding"
    groups: np.ndarray            # (N,) the sample's split (and heard/unheard in the open-set split)
    sounding: np.ndarray          # (N,) bool
    image_paths: list[Path]
    audio_paths: list[Path]
    boxes: list[list]             # normalised xyxy boxes (VGG-SS layout), [] for non-sounding pairs
    masks: list[dict | None]      # {"path": label PNG relative to root, "value": the object's label} or None
    scores: dict[str, np.ndarray]  # SCORES -> (N,) float, NaN where undefined (cIoU of a non-sounding pair)
    image_emb: np.ndarray         # (N, D) z_v
    audio_emb: np.ndarray         # (N, D) z_a
    maps_lowres: np.ndarray       # (N, h, w) raw cosine maps S
    umap_image: np.ndarray        # (N, 2) UMAP coordinates of the sample's image
    umap_audio: np.ndarray        # (N, 2) ... and of its sound
    thumbs: np.ndarray            # (I, THUMB_SIZE, THUMB_SIZE, 3) uint8, one per distinct image
    thumb_row: np.ndarray         # (N,) row of each sample's image in ``thumbs``
    gallery: np.ndarray           # (G,) sample indices of the sounding pairs, the rows of both searchers
    image_search: faiss.Index     # z_v of the gallery (inner product)
    audio_search: faiss.Index     # z_a of the gallery

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def ciou_threshold(self) -> float:
        """The cIoU a pair needs to count as localized, the model's when the index was built (0.5 for
        indexes that predate the setting)."""
        return float(self.info.get("ciou_threshold", 0.5))

    def confidence(self, measure: str) -> np.ndarray:
        """(N,) confidence that something visible is sounding: ``s_A``, ``top25`` or ``peak`` of the map."""
        if measure not in CONFIDENCES:
            raise AVDemoError(f"unknown confidence {measure!r}; use one of {', '.join(CONFIDENCES)}")
        return self.scores["s_A" if measure == "s_A" else f"conf_{measure}"]

    def gt_map(self, i: int) -> np.ndarray | None:
        """(224, 224) ground truth of sample ``i``, None for a non-sounding pair."""
        return gt_map_from_boxes(self.boxes[i]) if self.boxes[i] else None

    def thumbnail(self, i: int) -> np.ndarray:
        return np.asarray(self.thumbs[self.thumb_row[i]])

    def label(self, i: int) -> str:
        """A short human label: ``#i id · class · kind``."""
        what = self.class_names[i] or "-"
        return f"#{i} {self.ids[i]} · {what} · {self.kinds[i]}"

    def search(self, modality: str, query_emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` sounding pairs whose ``modality`` ("image" or "audio") embedding is most similar to
        each query (Q, D): (similarities (Q, k), sample indices (Q, k)), best first."""
        searcher = {"image": self.image_search, "audio": self.audio_search}[modality]
        sims, rows = searcher.search(np.ascontiguousarray(query_emb, dtype=np.float32), min(k, len(self.gallery)))
        return sims, self.gallery[rows]

    def table(self) -> list[dict[str, Any]]:
        """One row per sample: id, class, kind, group and every score (None where undefined)."""
        rows = []
        for i in range(len(self)):
            row = {"index": i, "id": self.ids[i], "class": str(self.class_names[i]), "kind": str(self.kinds[i]),
                   "group": str(self.groups[i]), "sounding": bool(self.sounding[i])}
            row.update({name: None if np.isnan(v) else float(v) for name in SCORES for v in [self.scores[name][i]]})
            rows.append(row)
        return rows


# --- building -----------------------------------------------------------------------------------

def checkpoint_key(checkpoint: Path) -> str:
    """``<checkpoint>-<weights+card hash>``: how every index folder of the checkpoint's begins."""
    checkpoint = Path(checkpoint)
    ckpt = hashlib.sha256(FORMAT.encode())
    ckpt.update(file_sha256(checkpoint).encode())
    card = card_path(checkpoint)
    if checkpoint.suffix == ".safetensors" and card.is_file():
        ckpt.update(card.read_bytes())
    return f"{checkpoint.name.split('.')[0]}-{ckpt.hexdigest()[:12]}"


def index_folder_name(checkpoint: Path, root: Path, max_pairs: int | None = None) -> str:
    """``<checkpoint_key>-<split>-<dataset hash>[-p<max_pairs>]``: the dataset hash covers its resolved
    path and its metadata files (``vggss.json``, ``*_plus_silent.csv``, a box benchmark's JSON)."""
    root = Path(root).resolve()
    data = hashlib.sha256(str(root).encode())
    box_meta = [root / spec.meta for spec in BOX_BENCHMARKS.values()]
    for meta in [root / "vggss.json", *sorted(root.glob("*_plus_silent.csv")), *box_meta]:
        if meta.is_file():
            data.update(meta.name.encode() + file_sha256(meta).encode())
    subset = f"-p{max_pairs}" if max_pairs else ""
    return f"{checkpoint_key(checkpoint)}-{root.name}-{data.hexdigest()[:12]}{subset}"


def subset(samples: list[BenchmarkSample], max_pairs: int | None) -> list[BenchmarkSample]:
    """At most ``max_pairs`` of the samples, evenly spaced (so sounding and non-sounding pairs keep their
    shares); all of them without a limit."""
    if not max_pairs or len(samples) <= max_pairs:
        return samples
    return [samples[i] for i in np.unique(np.linspace(0, len(samples) - 1, max_pairs).round().astype(int))]


def compute_samples(model: AVLocalizer, samples: list[BenchmarkSample], batch_size: int = 32,
                    progress: bool = True, desc: str = "indexing") -> dict[str, np.ndarray]:
    """``run_model`` and ``score`` batch by batch (so that no (N, 224, 224) array is ever held):
    embeddings, low-res maps and the per-sample ``SCORES``."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ARRAYS}
    with tqdm(total=len(samples), desc=desc, unit="pair", disable=not progress) as bar:
        for start in range(0, len(samples), batch_size):
            batch = samples[start:start + batch_size]
            preds = run_model(model, batch, batch_size=batch_size, progress=False)
            per = score(preds, batch, ciou_threshold=model.cfg.ciou_threshold)["per_sample"]
            as_float = lambda values: np.array([np.nan if v is None else float(v) for v in values])
            values = {"image_emb": preds.image_emb, "audio_emb": preds.audio_emb, "maps_lowres": preds.maps_lowres,
                      "s_L": preds.s_L, "s_A": preds.s_A, "conf_top25": map_confidence(preds.maps, "top25"),
                      "conf_peak": map_confidence(preds.maps, "peak"), "ciou": as_float(per["ciou"]),
                      "adaptive_ciou": as_float(per["adaptive_ciou"]), "pointing_hit": as_float(per["pointing_hit"])}
            for name, value in values.items():
                parts[name].append(np.asarray(value, dtype=np.float32))
            bar.update(len(batch))
            check_cancelled()
    return {name: np.concatenate(arrays) for name, arrays in parts.items()}


def split_metrics(arrays: dict[str, np.ndarray], samples: list[BenchmarkSample],
                  ciou_threshold: float) -> dict[str, Any]:
    """Split-level numbers: localization of the sounding pairs, retrieval among them (class and instance
    level, both directions), and false-positive AP / max-F1 / ROC-AUC for each confidence measure."""
    sounding = np.array([s.sounding for s in samples])
    pos = np.flatnonzero(sounding)
    out: dict[str, Any] = {"n_samples": len(samples), "n_sounding": len(pos), "n_non_sounding": len(samples) - len(pos)}
    if len(pos):
        cious = arrays["ciou"][pos]
        out["localization"] = {"ciou_success": success_rate(cious, ciou_threshold), "ciou_auc": ciou_auc(cious),
                               "mean_ciou": float(np.mean(cious)),
                               "pointing_game": 100.0 * float(np.mean(arrays["pointing_hit"][pos]))}
        image_emb, audio_emb = arrays["image_emb"][pos], arrays["audio_emb"][pos]
        levels = {"instance": np.arange(len(pos))}
        if all(samples[i].class_name for i in pos):
            levels["class"] = np.array([samples[i].class_name for i in pos])
        out["retrieval"] = {level: {"audio_to_image": retrieval_recall(audio_emb, image_emb, labels, labels),
                                    "image_to_audio": retrieval_recall(image_emb, audio_emb, labels, labels)}
                            for level, labels in levels.items()}
    if len(pos) < len(samples):
        out["false_positives"] = {}
        for measure in CONFIDENCES:
            conf = arrays["s_A" if measure == "s_A" else f"conf_{measure}"]
            fp = false_positive_metrics(conf, sounding, arrays["ciou"], ciou_threshold)
            out["false_positives"][measure] = {"AP": fp["AP"], "max_F1": fp["max_F1"],
                                               "best_threshold": fp["best_threshold"],
                                               "roc_auc": roc_auc(conf, sounding)}
    return out


def umap_coordinates(image_emb: np.ndarray, audio_emb: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A joint 2-D UMAP (cosine) of the images and the sounds: ((I, 2), (A, 2)). The first fit in a
    process spends about 30 s compiling (numba), so this runs at index time only."""
    import umap   # slow to import; only the build needs it

    points = np.concatenate([image_emb, audio_emb]).astype(np.float32)
    n_neighbors = max(2, min(15, len(points) - 1))
    coords = umap.UMAP(n_neighbors=n_neighbors, metric="cosine", random_state=seed, n_jobs=1,
                       init="spectral" if len(points) > n_neighbors + 2 else "random").fit_transform(points)
    return coords[:len(image_emb)].astype(np.float32), coords[len(image_emb):].astype(np.float32)


def make_searcher(emb: np.ndarray) -> faiss.Index:
    """Inner-product search over L2-normalised rows: exact (flat) up to ``FLAT_MAX`` items, else IVF with
    about 4 sqrt(n) lists, trained on the data, probing 16 of them."""
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    n, d = emb.shape
    if n <= FLAT_MAX:
        index = faiss.IndexFlatIP(d)
    else:
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, int(4 * np.sqrt(n)), faiss.METRIC_INNER_PRODUCT)
        index.train(emb)
        index.nprobe = 16
    index.add(emb)
    return index


def thumbnail(frame_uint8: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    return np.asarray(Image.fromarray(frame_uint8).resize((size, size), Image.BICUBIC))


def _unique_rows(paths: list[Path]) -> tuple[list[Path], np.ndarray]:
    """Distinct paths in first-seen order, and each item's row among them."""
    rows: dict[Path, int] = {}
    row_of_item = np.array([rows.setdefault(p, len(rows)) for p in paths])
    return list(rows), row_of_item


def _group(sample: BenchmarkSample, split: str) -> str:
    return "/".join(g for g in (sample.meta.get("split") or split, sample.meta.get("open_set", "")) if g)


def _mask(sample: BenchmarkSample) -> dict | None:
    """Our embedded data's silhouette of the sounding object: a label PNG and the object's value."""
    if sample.sounding and "mask" in sample.meta and "mask_value" in sample.meta:
        return {"path": sample.meta["mask"], "value": sample.meta["mask_value"]}
    return None


def write_index(folder: Path, arrays: dict[str, np.ndarray], samples: list[BenchmarkSample], root: Path,
                info: dict[str, Any], seed: int = 0, progress: bool = True) -> None:
    """Finish an index from the per-sample arrays: thumbnails, UMAP, summary, faiss; write ``folder``
    atomically (built in a temporary sibling, then renamed)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    os.chmod(tmp, 0o755)
    try:
        images, image_row = _unique_rows([s.image_path for s in samples])
        audios, audio_row = _unique_rows([s.audio_path for s in samples])
        thumbs = np.stack([thumbnail(read_frame(p)) for p in tqdm(images, desc="thumbnails", disable=not progress)])
        first_image = np.unique(image_row, return_index=True)[1]
        first_audio = np.unique(audio_row, return_index=True)[1]
        if progress:
            print(f"UMAP of {len(images)} images and {len(audios)} sounds ...", file=sys.stderr, flush=True)
        image_xy, audio_xy = umap_coordinates(arrays["image_emb"][first_image], arrays["audio_emb"][first_audio], seed)
        sounding = np.array([s.sounding for s in samples])
        gallery = np.flatnonzero(sounding)
        for name in ARRAYS:
            np.save(tmp / f"{name}.npy", arrays[name])
        np.save(tmp / "umap_image.npy", image_xy[image_row])
        np.save(tmp / "umap_audio.npy", audio_xy[audio_row])
        np.save(tmp / "thumbs.npy", thumbs)
        np.save(tmp / "thumb_row.npy", image_row)
        np.save(tmp / "gallery.npy", gallery)
        faiss.write_index(make_searcher(arrays["image_emb"][gallery]), str(tmp / "image.faiss"))
        faiss.write_index(make_searcher(arrays["audio_emb"][gallery]), str(tmp / "audio.faiss"))
        rel = lambda p: os.path.relpath(p, root)
        info = {**info, "format": FORMAT, "root": str(root),
                "summary": split_metrics(arrays, samples, info.get("ciou_threshold", 0.5)),
                "samples": [{"id": s.id, "class": s.class_name, "kind": s.kind, "group": _group(s, root.name),
                             "sounding": s.sounding, "image": rel(s.image_path), "audio": rel(s.audio_path),
                             "boxes": s.boxes, "mask": _mask(s)} for s in samples]}
        (tmp / "index.json").write_text(json.dumps(info))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def merge_shards(shards: list[dict[str, np.ndarray]], n: int) -> dict[str, np.ndarray]:
    """The per-sample arrays of ``n`` samples from the shards of ``len(shards)`` ranks, where rank r
    computed samples r, r + world, r + 2 world, ..."""
    world = len(shards)
    order = np.argsort(np.concatenate([np.arange(n)[r::world] for r in range(world)]))
    return {name: np.concatenate([shard[name] for shard in shards])[order] for name in shards[0]}


def _dist_rank_world() -> tuple[int, int]:
    """(rank, world size) under torchrun (a gloo group is started), else (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def build_index(checkpoint: str | Path, root: str | Path, cache_dir: str | Path | None = None,
                batch_size: int = 32, device: str | None = None, seed: int = 0, progress: bool = True,
                model: AVLocalizer | None = None, max_pairs: int | None = None) -> Path:
    """Index the split at ``root`` (at most ``max_pairs`` of its pairs, ``subset``) under ``checkpoint``
    into ``cache_dir``; returns the index folder.

    Under torchrun each rank embeds every WORLD_SIZE-th sample and saves its shard; rank 0 merges them
    and writes the index (the other ranks return the folder once it is written). ``checkpoint``: a path,
    URL or hf:// reference (``avdemo.fetch``)."""
    checkpoint, root = resolve_checkpoint(checkpoint), Path(root).resolve()
    folder = Path(cache_dir or default_cache_dir()) / index_folder_name(checkpoint, root, max_pairs)
    rank, world = _dist_rank_world()
    if device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    model = model or load_model(checkpoint, device=device)
    every = load_benchmark(detect_benchmark(root), root)
    samples = subset(every, max_pairs)
    if not samples:
        raise AVDemoError(f"{root}: the dataset has no samples")
    check_files(samples)
    shard = compute_samples(model, samples[rank::world], batch_size, progress,
                            desc=f"indexing (rank {rank}/{world})" if world > 1 else "indexing")
    if world > 1:
        shards = folder.parent / f".{folder.name}.shards"
        shards.mkdir(parents=True, exist_ok=True)
        np.savez(shards / f"rank{rank}.npz", **shard)
        dist.barrier()
        if rank == 0:
            shard = merge_shards([dict(np.load(shards / f"rank{r}.npz")) for r in range(world)], len(samples))
            shutil.rmtree(shards)
    if rank == 0:
        info = {"checkpoint": str(checkpoint), "model_card": getattr(model, "card", {}),
                "subset": {"pairs": len(samples), "of": len(every)} if len(samples) < len(every) else None,
                "ciou_threshold": model.cfg.ciou_threshold, "map_size": model.cfg.map_size,
                **behaviour(model, samples, batch_size=batch_size)}         # the Per class tab's sides
        write_index(folder, shard, samples, root, info, seed, progress)
    if world > 1:
        dist.barrier()
    return folder


# --- loading ------------------------------------------------------------------------------------

def load_index(folder: str | Path) -> SampleIndex:
    """An index folder written by ``build_index`` (large arrays memory-mapped)."""
    folder = Path(folder)
    if not (folder / "index.json").is_file():
        raise AVDemoError(f"{folder}: not an index folder (no index.json); build one with "
                          f"`python -m avdemo.index build --checkpoint ... --root ...`")
    info = json.loads((folder / "index.json").read_text())
    if info.get("format") != FORMAT:
        raise AVDemoError(f"{folder}: index format {info.get('format')!r}, this version reads {FORMAT!r}; rebuild it")
    samples = info.pop("samples")
    root = Path(info["root"])
    load = lambda name: np.load(folder / f"{name}.npy", mmap_mode="r")
    return SampleIndex(
        folder=folder, info=info, root=root, ids=[s["id"] for s in samples],
        class_names=np.array([s["class"] for s in samples], dtype=str),
        kinds=np.array([s["kind"] for s in samples], dtype=str),
        groups=np.array([s["group"] for s in samples], dtype=str),
        sounding=np.array([s["sounding"] for s in samples], dtype=bool),
        image_paths=[root / s["image"] for s in samples], audio_paths=[root / s["audio"] for s in samples],
        boxes=[s["boxes"] for s in samples], masks=[s["mask"] for s in samples],
        scores={name: np.asarray(load(name)) for name in SCORES},
        image_emb=np.asarray(load("image_emb")), audio_emb=np.asarray(load("audio_emb")),
        maps_lowres=load("maps_lowres"), umap_image=np.asarray(load("umap_image")),
        umap_audio=np.asarray(load("umap_audio")), thumbs=load("thumbs"), thumb_row=np.asarray(load("thumb_row")),
        gallery=np.asarray(load("gallery")), image_search=faiss.read_index(str(folder / "image.faiss")),
        audio_search=faiss.read_index(str(folder / "audio.faiss")))


def ensure_index(checkpoint: str | Path, root: str | Path, cache_dir: str | Path | None = None,
                 progress: bool = True, model: AVLocalizer | None = None, batch_size: int = 32,
                 max_pairs: int | None = None) -> SampleIndex:
    """The index of ``root`` (at most ``max_pairs`` of its pairs) under ``checkpoint``, built first when the
    cache has none."""
    checkpoint = resolve_checkpoint(checkpoint)
    folder = Path(cache_dir or default_cache_dir()) / index_folder_name(checkpoint, Path(root), max_pairs)
    if not (folder / "index.json").is_file():
        build_index(checkpoint, root, cache_dir, batch_size=batch_size, progress=progress, model=model,
                    max_pairs=max_pairs)
    return load_index(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m avdemo.index", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="index a dataset split (VGG-SS layout) under a checkpoint")
    build.add_argument("--checkpoint", required=True,
                       help="ours (.safetensors) or a .pth.tar: a path, an https:// URL or hf://owner/repo/file")
    build.add_argument("--root", type=Path, required=True,
                       help="a dataset folder: frames/, audio/ and vggss.json (or a box benchmark's JSON)")
    build.add_argument("--out", type=Path, default=None,
                       help="cache folder (default: $AVDEMO_INDEX_DIR or $AVDEMO_CACHE/index)")
    build.add_argument("--batch-size", type=int, default=32)
    build.add_argument("--device", default=None, help="default: cuda (this rank's GPU) when present, else cpu")
    build.add_argument("--seed", type=int, default=0, help="UMAP seed")
    args = parser.parse_args(argv)
    try:
        folder = build_index(args.checkpoint, args.root, args.out, args.batch_size, args.device, args.seed)
    except AVDemoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"index written to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
