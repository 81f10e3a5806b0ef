"""Splits of the embedded benchmark and their writer (the VGG-SS layout).

Media are held out in two ways, and val/test/openset draw only from held-out (or shared) media:
- by style/source (pool ``style``): every picture of the HELDOUT_STYLES sets and of the HELDOUT_ARTISTS
  (Openclipart), every recording of the HELDOUT_SOUND_STYLES sources: a new-looking dog, a dog recorded
  elsewhere. Where a category would keep no training medium of a kind, its style media stay in play;
- at random per category (pool ``heldout``): of the remaining media of a category and kind, about a
  third when there are more than one; a category's only medium of a kind is ``shared``.
The open-set split marks half of the categories "heard" and half "unheard", as VGG-SS's heard/unheard
protocol (train on ``train/heard.txt``).

A split folder holds ``frames/<id>.jpg`` (224 px), ``audio/<id>.wav`` (16 kHz mono PCM16, 3 s),
``masks/<id>.png`` (0 background, k+1 where object k is visible), ``vggss.json``, ``<split>.txt`` (ids),
for val/test ``<split>_plus_silent.csv`` (non-sounding pairs) and ``build.json`` (what built it).
"""
from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import os
import shutil
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image
from tqdm import tqdm

from avdemo.data.baselines import write_baselines
from avdemo.data.catalog import SHARE_ALIKE_NOTE, SILENT_OBJECT, Catalog, Media, load_catalog
from avdemo.data.scenes import SceneConfig, SplitMedia, make_scene, negative_audio
from avdemo.cache import cache_root
from avdemo.errors import AVDemoError

SPLITS = ("train", "val", "test", "openset")
DEFAULT_SIZES = {"train": 10000, "val": 500, "test": 1000, "openset": 1000}
SPLIT_CODES = {name: k for k, name in enumerate(SPLITS)}
HELDOUT_SHARE = 1 / 3
# Held-out styles: designs that are not re-renderings of a training set (EmojiOne colour and monotone
# are one design, so both go), some Openclipart artists, and a whole soundfont.
HELDOUT_STYLES = ("twemoji", "emojione", "emojione-monotone")
HELDOUT_ARTISTS = ("Nicu Buculei", "Jarno Vasamaa", "mimooh", "peterm", "Susan Park")
HELDOUT_SOUND_STYLES = ("timgm6mb", "0ad", "megaglest", "widelands")
# Media dropped from the pack after the default model was trained (id -> category): they keep their place
# in the random held-out draw, so that no other medium changes pool (a training medium never moves to a
# held-out split).
RETIRED: dict[str, str] = {"sounds/animals_mammals_deer_deer": "deer, elk bugling"}
HELDOUT_POOLS = ("heldout", "style")
NEGATIVE_KINDS = ("silence", "noise", "offscreen")
NEGATIVE_SPLITS = ("val", "test")


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def _key(text: str) -> int:
    return zlib.crc32(text.encode())


def heldout_style(m: Media) -> bool:
    """Whether a medium belongs to a held-out style/source (see HELDOUT_STYLES and friends)."""
    if m.kind == "sound":
        return m.style in HELDOUT_SOUND_STYLES
    return m.style in HELDOUT_STYLES or (m.style == "openclipart" and m.author in HELDOUT_ARTISTS)


def media_pools(catalog: Catalog, seed: int = 0) -> dict[str, str]:
    """Media id -> ``train``, ``heldout`` (random), ``style`` (held-out style/source) or ``shared`` (the
    only medium of its category and kind)."""
    pools: dict[str, str] = {}
    categories = catalog.categories + [SILENT_OBJECT]
    for category in categories:
        for kind in ("sound", "picture"):
            ids = catalog.ids(category, kind)
            styled = [i for i in ids if heldout_style(catalog.media[i])]
            if len(styled) < len(ids):
                pools.update({i: "style" for i in styled})
                ids = [i for i in ids if i not in set(styled)]
            retired = [i for i, c in RETIRED.items() if c == category and i.startswith(f"{kind}s/")]
            if len(ids) == 1 and not retired:
                pools[ids[0]] = "shared"
                continue
            ids = sorted(ids + retired)
            held = max(1, round(HELDOUT_SHARE * len(ids))) if ids else 0
            order = _rng(seed, _key(category), _key(kind)).permutation(len(ids))
            for rank, k in enumerate(order):
                pools[ids[k]] = "heldout" if rank < held else "train"
    return {i: pool for i, pool in pools.items() if i not in RETIRED}


def pool_table(catalog: Catalog, seed: int = 0) -> str:
    """Markdown table of the media each category gives train and val/test/openset: ``train`` counts
    train + shared media, ``held out`` counts random + style + shared (style in brackets)."""
    pools = media_pools(catalog, seed)
    lines = ["| category | pictures train | pictures held out (style) | recordings train "
             "| recordings held out (style) |", "|---|---|---|---|---|"]
    for category in catalog.categories:
        cells = []
        for kind in ("picture", "sound"):
            found = [pools[i] for i in catalog.ids(category, kind)]
            shared, style = found.count("shared"), found.count("style")
            cells += [str(found.count("train") + shared), f"{found.count('heldout') + style + shared} ({style})"]
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def heard_categories(catalog: Catalog, seed: int = 0) -> list[str]:
    """Half of the sounding categories (rounded up), drawn with ``seed``: the open-set "heard" ones."""
    categories = catalog.categories
    order = _rng(seed, _key("heard")).permutation(len(categories))
    return sorted(categories[k] for k in order[: math.ceil(len(categories) / 2)])


def split_media(catalog: Catalog, split: str, seed: int = 0) -> SplitMedia:
    """What ``split`` may draw from: train media for train, held-out (and shared) media otherwise."""
    if split not in SPLITS:
        raise AVDemoError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    pools = media_pools(catalog, seed)
    allowed = {"shared", "train"} if split == "train" else {"shared", *HELDOUT_POOLS}

    def pick(category: str, kind: str) -> tuple[str, ...]:
        return tuple(i for i in catalog.ids(category, kind) if pools[i] in allowed)

    return SplitMedia(categories=tuple(catalog.categories),
                      pictures={c: pick(c, "picture") for c in catalog.categories},
                      sounds={c: pick(c, "sound") for c in catalog.categories},
                      silent=pick(SILENT_OBJECT, "picture"))


def norm_coord(px: int, size: int) -> float:
    """Pixel edge -> normalised coordinate, rounded up at 6 decimals so ``int(v * size) == px``."""
    return math.ceil(px * 10 ** 6 / size) / 10 ** 6


def norm_box(box_px: tuple[int, int, int, int], width: int, height: int | None = None) -> list[float]:
    """Pixel box (x1, y1, x2, y2) -> normalised xyxy (x by ``width``, y by ``height``, default square)."""
    x1, y1, x2, y2 = box_px
    height = height or width
    return [norm_coord(x1, width), norm_coord(y1, height), norm_coord(x2, width), norm_coord(y2, height)]


@dataclass(frozen=True)
class SplitJob:
    """Everything a worker needs to write scene ``index`` of a split."""
    split: str
    seed: int
    folder: Path
    cfg: SceneConfig
    heard: tuple[str, ...]


_WORKER: dict = {}      # per-process: the decoded catalog and split media (filled once by _init_worker)


def _init_worker(job: SplitJob, catalog: Catalog, media: SplitMedia) -> None:
    _WORKER.update(job=job, catalog=catalog, media=media)


def _write_wav(path: Path, wav: np.ndarray, sample_rate: int) -> None:
    """PCM16 WAV, encoded in memory (soundfile's flush on a real file costs more than the encoding)."""
    buf = io.BytesIO()
    sf.write(buf, wav, sample_rate, format="WAV", subtype="PCM_16")
    path.write_bytes(buf.getvalue())


def _write_one(index: int) -> tuple[dict, dict | None]:
    """Write frame, audio, mask (and for val/test a negative audio) of scene ``index``; return its
    vggss.json entry and its negatives row."""
    job: SplitJob = _WORKER["job"]
    catalog: Catalog = _WORKER["catalog"]
    media: SplitMedia = _WORKER["media"]
    cfg, size = job.cfg, job.cfg.image_size
    rng = _rng(job.seed, SPLIT_CODES[job.split], index)
    scene = make_scene(rng, catalog, media, cfg)
    sid = f"{job.split}_{index:06d}"
    Image.fromarray(scene.image).save(job.folder / "frames" / f"{sid}.jpg", quality=cfg.jpeg_quality)
    Image.fromarray(scene.labels).save(job.folder / "masks" / f"{sid}.png", optimize=False)
    _write_wav(job.folder / "audio" / f"{sid}.wav", scene.audio, cfg.sample_rate)
    sounding = scene.objects[scene.sounding]
    areas = [o.area(size) for o in scene.objects]
    offsets = [np.hypot((x1 + x2 - size) / 2, (y1 + y2 - size) / 2) for x1, y1, x2, y2 in
               (o.box_px for o in scene.objects)]
    entry = {
        "file": sid, "class": sounding.category, "bbox": [norm_box(sounding.box_px, size)],
        "split": job.split, "mask": f"masks/{sid}.png", "mask_value": scene.sounding + 1,
        "audio_media": scene.recording, "picture_media": sounding.picture,
        "objects": [{"category": o.category, "picture": o.picture, "bbox": norm_box(o.box_px, size),
                     "area": round(a, 4), "sounding": o.sounding} for o, a in zip(scene.objects, areas)],
        "is_largest": bool(np.argmax(areas) == scene.sounding),
        "is_most_central": bool(np.argmin(offsets) == scene.sounding),
    }
    if job.split == "openset":
        entry["open_set"] = "heard" if sounding.category in job.heard else "unheard"
    negative = None
    if job.split in NEGATIVE_SPLITS:
        kind = NEGATIVE_KINDS[index % len(NEGATIVE_KINDS)]
        nrng = _rng(job.seed, SPLIT_CODES[job.split], index, _key(kind))
        wav = None
        if kind == "offscreen":
            present = {o.category for o in scene.objects}
            offscreen = str(nrng.choice([c for c in media.categories if c not in present]))
            wav = catalog.sounds[str(nrng.choice(media.sounds[offscreen]))]
        aid = f"{sid}_{kind}"
        _write_wav(job.folder / "audio" / f"{aid}.wav", negative_audio(nrng, kind, cfg, wav), cfg.sample_rate)
        negative = {"video": sid, "audio": aid, "label": "non-sounding", "kind": kind}
    return entry, negative


def default_root() -> Path:
    """Where the embedded benchmark's splits are generated: ``<cache_root()>/embedded``."""
    return cache_root() / "embedded"


def build_split(split: str, n: int, out: Path | None = None, seed: int = 0, cfg: SceneConfig = SceneConfig(),
                workers: int = 2, catalog: Catalog | None = None, progress: bool = True) -> Path:
    """Generate ``n`` scenes of ``split`` into ``out/<split>`` (default ``out``: ``default_root()``;
    replaced when complete; the same seed gives the same bytes whatever the number of workers).
    Returns the split folder."""
    if split not in SPLITS:
        raise AVDemoError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    catalog = catalog or load_catalog()
    media = split_media(catalog, split, seed)
    heard = tuple(heard_categories(catalog, seed))
    out = Path(out or default_root())
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".{split}."))
    try:
        for sub in ("frames", "audio", "masks"):
            (tmp / sub).mkdir()
        job = SplitJob(split, seed, tmp, cfg, heard)
        start = time.perf_counter()
        bar = dict(total=n, desc=f"{split} scenes", unit="scene", disable=not progress)
        if workers > 1:
            with multiprocessing.get_context("fork").Pool(workers, _init_worker, (job, catalog, media)) as pool:
                results = list(tqdm(pool.imap(_write_one, range(n), chunksize=8), **bar))
        else:
            _init_worker(job, catalog, media)
            results = [_write_one(i) for i in tqdm(range(n), **bar)]
        seconds = time.perf_counter() - start
        share_alike = sum(catalog.media[entry["audio_media"]].share_alike for entry, _ in results)
        _write_index(tmp, split, results, {
            "split": split, "scenes": n, "seed": seed, "config": asdict(cfg), "workers": workers,
            "seconds": round(seconds, 2), "scenes_per_s": round(n / max(seconds, 1e-9), 1),
            "heard_categories": list(heard),
            "share_alike": {"scenes": share_alike, "licence": SHARE_ALIKE_NOTE if share_alike else ""},
            "pack_crc32": _key(json.dumps(sorted(m.file for m in catalog.media.values())))})
        final = out / split
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        _WORKER.clear()
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _write_index(folder: Path, split: str, results: list[tuple[dict, dict | None]], build: dict) -> None:
    entries = [entry for entry, _ in results]
    (folder / "vggss.json").write_text("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")
    (folder / f"{split}.txt").write_text("".join(e["file"] + "\n" for e in entries))
    if split == "train":
        heard = set(build["heard_categories"])
        (folder / "heard.txt").write_text("".join(e["file"] + "\n" for e in entries if e["class"] in heard))
    if split == "openset":
        for group in ("heard", "unheard"):
            (folder / f"{group}_test.txt").write_text(
                "".join(e["file"] + "\n" for e in entries if e["open_set"] == group))
    negatives = [row for _, row in results if row is not None]
    if negatives:
        with open(folder / f"{split}_plus_silent.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["video", "audio", "label", "kind"], lineterminator="\n")
            writer.writeheader()
            writer.writerows(negatives)
    (folder / "build.json").write_text(json.dumps(build, indent=1) + "\n")


def ensure_split(split: str, root: Path | None = None, n: int | None = None, seed: int = 0) -> Path:
    """The folder of ``split`` under ``root`` (default: ``default_root()``), built first (default size)
    when missing."""
    root = Path(root or default_root())
    folder = root / split
    if (folder / "build.json").is_file() and (folder / "vggss.json").is_file():
        return folder
    folder = build_split(split, n or DEFAULT_SIZES[split], root, seed)
    if split != "train":                                 # evaluation splits ship their baselines
        write_baselines(folder)
    return folder
