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


@dataclass(frozen=True)
class Media:
    """One row of ``manifest.csv``; ``id`` is its file path without suffix (``sounds/animals_..._dog``)."""
    id: str
    file: str
    category: str
    kind: str                       # sound | picture
    source: str

    @property
    def silent(self) -> bool:
        return self.category == SILENT_OBJECT


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
                          "rebuild it with `python -m avdemo.data pack --deb tuxpaint-stamps-default_*.deb`")
    with open(path, newline="") as f:
        return [Media(id=str(Path(row["file"]).with_suffix("")), **row) for row in csv.DictReader(f)]


def load_catalog(pack_dir: Path = PACK_DIR) -> Catalog:
    """Decode the whole pack (about 500 pictures and 230 sounds; a few seconds)."""
    rows = read_manifest(pack_dir)
    pictures, sounds = {}, {}
    for m in rows:
        if m.kind == "picture":
            pictures[m.id] = np.asarray(Image.open(Path(pack_dir) / m.file).convert("RGBA"))
        else:
            wav, rate = sf.read(Path(pack_dir) / m.file, dtype="float32")
            if rate != SAMPLE_RATE or wav.ndim != 1:
                raise AVDemoError(f"{m.file}: expected 16 kHz mono, got {rate} Hz, shape {wav.shape}")
            sounds[m.id] = wav
    return Catalog(media={m.id: m for m in rows}, pictures=pictures, sounds=sounds)
