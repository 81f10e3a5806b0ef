"""Readers for the localization benchmarks: VGG-SS, Flickr-SoundNet and their non-sounding extensions;
IS3, VPO (single- and multi-source) and AVSBench (S4, MS3).

Layouts (METHOD.md): ``<root>/frames/<id>.jpg`` (or ``<id>/image_050.jpg``, or .png) and
``<root>/audio/<id>.wav``; VGG-SS boxes and classes in ``vggss.json``, Flickr-SoundNet boxes in
``<root>/Annotations/<id>.xml``; non-sounding pairs in ``*_plus_silent.csv`` (``video,audio,label[,kind]``:
the frame of ``video`` heard with the audio of ``audio``). The box benchmarks (``BOX_BENCHMARKS``) read
the reference evaluation's metadata file (``{image, audio, gt_box}`` entries, 224-pixel xyxy boxes) and
find each sample by the last components of its paths: ``<root>/frames/<image key><image suffix>`` and
``<root>/audio/<audio key>.wav``.

The public lists of VGG-SS and Flickr-SoundNet (``PUBLIC_LISTS``) are not shipped: ``public_list`` fetches
each from its authors' repository, pinned by sha256, once, into ``<cache_root()>/benchmark_lists/``.
"""
from __future__ import annotations

import csv
import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np
import soundfile as sf
from PIL import Image

from .audio import REFERENCE_CENTRE_S
from .cache import cache_root, file_sha256
from .errors import AVDemoError
from .fetch import download
from .metrics import GT_SIZE, gt_map_consensus, gt_map_from_boxes, gt_map_from_pixel_boxes

@dataclass(frozen=True)
class PublicList:
    """A benchmark list as its authors publish it: where (a raw file at a fixed commit) and its bytes."""

    url: str
    sha256: str


_HARD_WAY = "https://raw.githubusercontent.com/hche11/Localizing-Visual-Sounds-the-Hard-Way/" \
            "8fe8cbbf810e804cf8cc9b244bb5d77ec8aa8315/metadata/"
_EZ_VSL = "https://raw.githubusercontent.com/stoneMo/EZ-VSL/95ff5bff30191fed11856699a7669419fa59b356/metadata/"
_ALIGNMENT = "https://raw.githubusercontent.com/kaistmm/SSLalignment/e7ae3c5518e5a4d911c49e034d906612cf922aff/metadata/"
# VGG-SS (Chen et al., CVPR 2021), its open-set splits (EZ-VSL, ECCV 2022), the official evaluation's id
# lists and SLAVC's non-sounding extensions (NeurIPS 2022) as kaistmm/SSLalignment publishes them.
_PUBLISHED = {   # list name: (the repository folder it is read from, its sha256)
    "vggss.json": (_HARD_WAY, "ae300b4a259267e6fe839970d495862edd70bfe3da63d925bcdb34054ed3b15e"),
    "vggss_test.csv": (_HARD_WAY, "971081929d45caf21a148a6ca968822d96e8316331d0cc0bafb1783acb4d2c35"),
    "vggss_heard_test.csv": (_EZ_VSL, "70a01c6828e7b84531823616ebb2e32e75bbaf5e44c715fa366b61111ab33c4e"),
    "vggss_unheard_test.csv": (_EZ_VSL, "11883813db359df63e1a28f69bb53e1ceef7f5b8d68e0149de5792540acb9e17"),
    "ours_vggss.txt": (_ALIGNMENT, "24546044696e8ea0aff172dc7acef36f84adfc7a00611c601c8ab7294ce3b6e2"),
    "vggss_test_plus_silent.csv": (_ALIGNMENT, "905a009428e16d1108e5af112d8e682dbe1702a2ed897b3d56753ff587018e4e"),
    "flickr_test.csv": (_ALIGNMENT, "238dbe3d91befda692b9b8a9a1a0c2e14b1642de0801c8459adf59ae7f11f268"),
    "test_flickr_250.txt": (_ALIGNMENT, "6fc9c8147f5fd30f9c8849e15a79fd2c68eb55e8b7f3241695287350b22c9897"),
    "flickr_test_plus_silent.csv": (_ALIGNMENT, "45a0d32b64a9ef9e567d3eaf4a4a29683cdb0f7f4e1924a0e26cde24fa298643"),
}
PUBLIC_LISTS = {name: PublicList(base + name, sha256) for name, (base, sha256) in _PUBLISHED.items()}


def public_list(name: str) -> Path:
    """The local file of a public benchmark list (``PUBLIC_LISTS``): downloaded from its repository once,
    checked against its sha256, and reused without a network afterwards. ``$AVDEMO_BENCHMARK_LISTS``,
    when set, is a folder that holds the lists instead (used as they are, e.g. copies made elsewhere)."""
    if name not in PUBLIC_LISTS:
        raise AVDemoError(f"{name}: not a public benchmark list; known: {', '.join(PUBLIC_LISTS)}")
    if folder := os.environ.get("AVDEMO_BENCHMARK_LISTS"):
        path = Path(folder) / name
        if not path.is_file():
            raise AVDemoError(f"{name} is not in AVDEMO_BENCHMARK_LISTS ({folder})")
        return path
    spec, path = PUBLIC_LISTS[name], cache_root() / "benchmark_lists" / name
    if path.is_file() and file_sha256(path) == spec.sha256:
        return path
    return download(spec.url, path, spec.sha256)


def list_file(value: str | Path) -> Path:
    """A list given on the command line: a file, or the name of a public list (``public_list``)."""
    path = Path(value)
    return public_list(str(value)) if not path.exists() and str(value) in PUBLIC_LISTS else path


FRAME_NAMES = ("{id}.jpg", "{id}.png", "{id}/image_050.jpg", "{id}/image_050.png")
NON_SOUNDING = "non-sounding"


@dataclass
class BenchmarkSample:
    """One frame/audio pair of a benchmark, with its ground truth when something visible is sounding."""

    id: str
    image_path: Path
    audio_path: Path
    class_name: str
    gt_map: np.ndarray | None   # (224, 224) float32 in 0..1; None for non-sounding pairs
    boxes: list                 # VGG-SS: normalised xyxy; Flickr: per-annotator lists of 256-px xyxy
    sounding: bool
    kind: str                   # "sounding" | "non-sounding" | "silence" | "noise" | "offscreen"
    meta: dict = field(default_factory=dict)   # extra metadata of the entry (e.g. our data's keys)
    audio_centre_s: float | None = REFERENCE_CENTRE_S  # the window heard (``clip_window``): the reference's,
                                                        # or None: the clip's middle (our generated data)


def read_frame(path: str | Path) -> np.ndarray:
    """An image file -> uint8 RGB (H, W, 3)."""
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))
    except (OSError, ValueError) as e:
        raise AVDemoError(f"cannot read the image {path}: {e}") from None


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A sound file -> (float32 waveform (T,) or (T, C), sample rate)."""
    try:
        wav, sample_rate = sf.read(str(path), dtype="float32")
    except (OSError, RuntimeError, sf.LibsndfileError) as e:
        raise AVDemoError(f"cannot read the audio {path}: {e}") from None
    return wav, int(sample_rate)


def check_files(samples: list[BenchmarkSample]) -> None:
    """Raise an AVDemoError naming the first missing frame or audio file and how many are missing."""
    paths = dict.fromkeys(p for s in samples for p in (s.image_path, s.audio_path))
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise AVDemoError(f"{len(missing)} of {len(paths)} benchmark files are missing; the first is "
                          f"{missing[0]} (expected frames/<id>.jpg or frames/<id>/image_050.jpg and "
                          f"audio/<id>.wav under the benchmark root)")


def frame_path(root: Path, sample_id: str) -> Path:
    """The first existing frame of ``sample_id`` among the known layouts (the .jpg path if none)."""
    candidates = [root / "frames" / name.format(id=sample_id) for name in FRAME_NAMES]
    return next((p for p in candidates if p.is_file()), candidates[0])


def read_ids(ids: list[str] | str | Path) -> list[tuple[str, str]]:
    """(id, label) pairs from a list or a .txt/.csv file: the first column is the id (an image
    extension such as ``.jpg`` is dropped), the optional second column a class label ("" when absent)."""
    if isinstance(ids, (str, Path)):
        path = Path(ids)
        if not path.is_file():
            raise AVDemoError(f"id list not found: {path}")
        with path.open(newline="") as f:
            rows = [[c.strip() for c in row] for row in csv.reader(f) if row and row[0].strip()]
    else:
        rows = [[str(i)] for i in ids]
    strip = lambda s: re.sub(r"\.(jpg|jpeg|png|wav|mp4)$", "", s, flags=re.IGNORECASE)
    return [(strip(row[0]), row[1] if len(row) > 1 else "") for row in rows]


def dataset_audio_centre_s(root: str | Path) -> float | None:
    """Where the clips of a dataset folder are heard (``BenchmarkSample.audio_centre_s``): at their middle
    for our generated data (a folder with ``avdemo.data``'s ``build.json``), as training hears them; else at
    the reference evaluation's window."""
    return None if (Path(root) / "build.json").is_file() else REFERENCE_CENTRE_S


def vggss_key(sample_id: str) -> str:
    """The vggss.json key of an id: ``YTID_000032`` as is; the official list's ``YTID_32000_42000``
    (start and end in ms) becomes ``YTID_000032``."""
    m = re.fullmatch(r"(.{11})_(\d+)_(\d+)", sample_id)
    return f"{m.group(1)}_{int(m.group(2)) // 1000:06d}" if m else sample_id


def read_negatives(root: Path, csv_path: str | Path) -> list[BenchmarkSample]:
    """Non-sounding pairs of a ``*_plus_silent.csv``: header ``video,audio,label`` and an optional
    ``kind`` column; every row must be labelled ``non-sounding``."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise AVDemoError(f"non-sounding list not found: {csv_path}")
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"video", "audio", "label"} <= set(rows[0]):
        raise AVDemoError(f"{csv_path.name}: expected the columns video,audio,label[,kind]; "
                          f"found {','.join(rows[0])}")
    samples = []
    for line, row in enumerate(rows, start=2):
        video, audio, label = ((row.get(k) or "").strip() for k in ("video", "audio", "label"))
        if not (video and audio) or label != NON_SOUNDING:
            raise AVDemoError(f"{csv_path.name} line {line}: expected video,audio,{NON_SOUNDING}; "
                              f"found {video!r}, {audio!r}, {label!r}")
        samples.append(BenchmarkSample(
            id=f"{video}+{audio}", image_path=frame_path(root, video),
            audio_path=root / "audio" / f"{audio}.wav", class_name="", gt_map=None, boxes=[],
            sounding=False, kind=(row.get("kind") or "").strip() or NON_SOUNDING,
            meta={"video": video, "audio": audio}))
    return samples


def load_vggss(root: str | Path, meta: str | Path | None = None, ids: list[str] | str | Path | None = None,
               negatives: str | Path | None = None) -> list[BenchmarkSample]:
    """VGG-SS (or our data in its layout): entries of ``meta`` (default ``root/vggss.json``:
    ``[{file, class, bbox: [[x1, y1, x2, y2] normalised], ...extra keys}]``), restricted to ``ids``,
    followed by the non-sounding pairs of ``negatives``. An entry without boxes is non-sounding."""
    root = Path(root)
    meta_path = Path(meta) if meta is not None else root / "vggss.json"
    if not meta_path.is_file():
        raise AVDemoError(f"VGG-SS metadata not found: {meta_path}")
    try:
        entries = {e["file"]: e for e in json.loads(meta_path.read_text())}
    except (ValueError, KeyError, TypeError) as e:
        raise AVDemoError(f"{meta_path.name}: not a VGG-SS list of {{file, class, bbox}} entries ({e})") from None
    wanted = list(entries) if ids is None else [vggss_key(i) for i, _ in read_ids(ids)]
    unknown = [i for i in wanted if i not in entries]
    if unknown:
        raise AVDemoError(f"{len(unknown)} ids are not in {meta_path.name}; the first is {unknown[0]!r}")
    samples = []
    for sample_id in wanted:
        entry = dict(entries[sample_id])
        boxes = entry.pop("bbox", [])
        samples.append(BenchmarkSample(
            id=sample_id, image_path=frame_path(root, sample_id), audio_path=root / "audio" / f"{sample_id}.wav",
            class_name=str(entry.pop("class", "")),
            gt_map=gt_map_from_boxes(boxes).astype(np.float32) if boxes else None, boxes=boxes,
            sounding=bool(boxes), kind=entry.pop("kind", "sounding" if boxes else NON_SOUNDING),
            meta={k: v for k, v in entry.items() if k != "file"}))
    samples += read_negatives(root, negatives) if negatives is not None else []
    return [replace(s, audio_centre_s=dataset_audio_centre_s(root)) for s in samples]


def _box_xyxy(box: ET.Element, path: Path) -> list[int]:
    named = {c.tag: c.text for c in box}
    keys = ("xmin", "ymin", "xmax", "ymax")
    values = [named[k] for k in keys] if set(keys) <= set(named) else [c.text for c in list(box)[1:5]]
    try:
        if len(values) == 4:
            return [int(float(v)) for v in values]
    except (TypeError, ValueError):
        pass
    raise AVDemoError(f"{path.name}: a <{box.tag}> without four numeric coordinates")


def read_flickr_boxes(path: Path) -> list[list[list[int]]]:
    """Per-annotator boxes (xyxy, 256-px coordinates) of a Flickr-SoundNet annotation XML.

    Every ``<bbox>`` (or VOC-style ``<bndbox>``) element is a box, grouped by its parent element (one
    per annotator); coordinates come from ``xmin ymin xmax ymax`` children, or else, as the reference
    parser reads them, from the four children after the first."""
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as e:
        raise AVDemoError(f"cannot read the annotation {path}: {e}") from None
    annotators = [[_box_xyxy(b, path) for b in parent if b.tag in ("bbox", "bndbox")]
                  for parent in tree.getroot().iter()]
    return [boxes for boxes in annotators if boxes]


def load_flickr(root: str | Path, ids: list[str] | str | Path | None = None,
                negatives: str | Path | None = None) -> list[BenchmarkSample]:
    """Flickr-SoundNet: ids from ``ids`` (e.g. ``flickr_test.csv``, whose second column becomes the
    class label) or every ``root/Annotations/*.xml``; consensus ground truth; then ``negatives``."""
    root = Path(root)
    ann_dir = root / "Annotations"
    pairs = read_ids(ids) if ids is not None else [(p.stem, "") for p in sorted(ann_dir.glob("*.xml"))]
    if not pairs:
        raise AVDemoError(f"no Flickr-SoundNet annotations found in {ann_dir}")
    missing = [ann_dir / f"{i}.xml" for i, _ in pairs if not (ann_dir / f"{i}.xml").is_file()]
    if missing:
        raise AVDemoError(f"{len(missing)} annotation files are missing; the first is {missing[0]}")
    samples = []
    for sample_id, label in pairs:
        boxes = read_flickr_boxes(ann_dir / f"{sample_id}.xml")
        samples.append(BenchmarkSample(
            id=sample_id, image_path=frame_path(root, sample_id), audio_path=root / "audio" / f"{sample_id}.wav",
            class_name=label, gt_map=gt_map_consensus(boxes).astype(np.float32), boxes=boxes,
            sounding=True, kind="sounding"))
    return samples + (read_negatives(root, negatives) if negatives is not None else [])


@dataclass(frozen=True)
class BoxBenchmark:
    """A benchmark of the reference evaluation given as one JSON list of ``{image, audio, gt_box}``."""

    meta: str                 # the metadata file's name
    image_parts: int          # trailing path components that name a frame (the last without its suffix)
    audio_parts: int          # ... and its audio
    grouped: bool = False     # IS3: one entry per object; a scene's objects form a group (iIoU, iAUC)
    class_part: int | None = None   # which key component is the class (S4: the category), if any


BOX_BENCHMARKS = {
    "is3": BoxBenchmark("synthetic3240_bbox.json", 1, 1, grouped=True),
    "vpo_ss": BoxBenchmark("vpo_ss_bbox.json", 1, 1),
    "vpo_ms": BoxBenchmark("vpo_ms_bbox.json", 1, 1),
    "s4": BoxBenchmark("s4_box.json", 3, 2, class_part=0),
    "ms3": BoxBenchmark("ms3_box.json", 2, 1),
}


def path_key(path: str, parts: int) -> str:
    """The last ``parts`` components of a path, the file's suffix dropped: the reference's sample key."""
    components = PurePosixPath(path).with_suffix("").parts
    return "/".join(components[-parts:])


def load_box_benchmark(name: str, root: str | Path, meta: str | Path | None = None) -> list[BenchmarkSample]:
    """IS3, VPO-SS/MS or AVSBench S4/MS3 (``BOX_BENCHMARKS``) from its metadata file (default
    ``root/<the file's name>``); IS3's samples carry their scene as ``meta["group"]`` and the object as
    their class, S4's the category."""
    if name not in BOX_BENCHMARKS:
        raise AVDemoError(f"unknown box benchmark {name!r}; known: {', '.join(BOX_BENCHMARKS)}")
    spec, root = BOX_BENCHMARKS[name], Path(root)
    meta_path = Path(meta) if meta is not None else root / spec.meta
    if not meta_path.is_file():
        raise AVDemoError(f"{name} metadata not found: {meta_path} (the reference's {spec.meta})")
    try:
        entries = json.loads(meta_path.read_text())
        rows = [(str(e["image"]), str(e["audio"]), [float(v) for v in e["gt_box"]]) for e in entries]
    except (ValueError, KeyError, TypeError) as e:
        raise AVDemoError(f"{meta_path.name}: not a list of {{image, audio, gt_box}} entries ({e})") from None
    samples = []
    for image, audio, box in rows:
        if len(box) != 4:
            raise AVDemoError(f"{meta_path.name}: {image}: gt_box must be [x1, y1, x2, y2]")
        key = path_key(image, spec.image_parts)
        class_name = (key.split("/")[spec.class_part] if spec.class_part is not None else
                      key.rsplit("_", 1)[-1] if spec.grouped else "")
        samples.append(BenchmarkSample(
            id=key, image_path=root / "frames" / f"{key}{PurePosixPath(image).suffix}",
            audio_path=root / "audio" / f"{path_key(audio, spec.audio_parts)}.wav", class_name=class_name,
            gt_map=gt_map_from_pixel_boxes([box]).astype(np.float32),
            boxes=[[v / GT_SIZE for v in box]], sounding=True, kind="sounding",
            meta={"group": key.rsplit("_", 1)[0]} if spec.grouped else {}))
    return samples
