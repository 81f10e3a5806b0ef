"""The media pack in memory: manifest rows, decoded pictures (RGBA) and sounds (16 kHz mono)."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from avdemo.errors import AVDemoError

PACK_DIR = Path(__file__).parent / "pack"
SAMPLE_RATE = 16000                 # every pack sound is 16 kHz mono
SILENT_OBJECT = "silent object"     # the category of stamps that never sound
SHARE_ALIKE_NOTE = ("built with share-alike (CC-BY-SA-3.0) recordings of the pack's share-alike sub-pack: "
                    "this is under CC-BY-SA-3.0 too (credits in avdemo/data/pack/share-alike/ATTRIBUTION.md)")
MANIFEST_FIELDS = ("file", "category", "kind", "package", "version", "original", "licence", "author", "style",
                   "recording")


@dataclass(frozen=True)
class Media:
    """One row of ``manifest.csv``; ``id`` is its file path without suffix (``sounds/animals_..._dog``).
    ``package``/``version``: the npm or Debian package it comes from; ``original``: the name (or render
    recipe) there; ``style``: the set, artist group or source it belongs to (used by the held-out splits);
    ``recording`` (sounds): the source recording it is made from; renders of one sample at several pitches
    and cuts of one file share it, so distinct recordings are counted by it."""
    id: str
    file: str
    category: str
    kind: str                       # sound | picture
    package: str
    version: str = ""
    original: str = ""
    licence: str = ""
    author: str = ""
    style: str = ""
    recording: str = ""

    @property
    def silent(self) -> bool:
        return self.category == SILENT_OBJECT

    @property
    def share_alike(self) -> bool:
        """Whether its licence is share-alike (what is built from it carries that licence)."""
        return "-SA-" in self.licence


@dataclass
class Catalog:
    """Every medium of the pack, decoded: ``pictures[id]`` (h, w, 4) uint8, ``sounds[id]`` (T,) float32."""
    media: dict[str, Media]
    pictures: dict[str, np.ndarray]
    sounds: dict[str, np.ndarray]

    @property
    def categories(self) -> list[str]:
        """Sounding categories (those with at least one sound and one picture), sorted."""
        with_sound = {m.category for m in self.media.values() if m.kind == "sound"}
        with_picture = {m.category for m in self.media.values() if m.kind == "picture"}
        return sorted(with_sound & with_picture)

    def ids(self, category: str, kind: str) -> list[str]:
        """Sorted media ids of one category and kind."""
        return sorted(m.id for m in self.media.values() if m.category == category and m.kind == kind)


def read_manifest(pack_dir: Path = PACK_DIR) -> list[Media]:
    path = Path(pack_dir) / "manifest.csv"
    if not path.is_file():
        raise AVDemoError(f"no media pack at {pack_dir} (manifest.csv missing): "
                          "rebuild it with `python -m avdemo.data pack`")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != MANIFEST_FIELDS:
            raise AVDemoError(f"{path}: columns {reader.fieldnames}, expected {list(MANIFEST_FIELDS)}; "
                              "rebuild the pack with `python -m avdemo.data pack`")
        return [Media(id=str(Path(row["file"]).with_suffix("")), **row) for row in reader]


def load_catalog(pack_dir: Path = PACK_DIR, sounds_only: bool = False) -> Catalog:
    """Decode the whole pack (about 1,900 pictures and 400 sounds; a few seconds), or only its sounds
    (``pictures`` stays empty)."""
    rows = read_manifest(pack_dir)
    pictures, sounds = {}, {}
    for m in rows:
        if m.kind == "picture":
            if sounds_only:
                continue
            pictures[m.id] = np.asarray(Image.open(Path(pack_dir) / m.file).convert("RGBA"))
        else:
            wav, rate = sf.read(Path(pack_dir) / m.file, dtype="float32")
            if rate != SAMPLE_RATE or wav.ndim != 1:
                raise AVDemoError(f"{m.file}: expected 16 kHz mono, got {rate} Hz, shape {wav.shape}")
            sounds[m.id] = wav
    return Catalog(media={m.id: m for m in rows}, pictures=pictures, sounds=sounds)
