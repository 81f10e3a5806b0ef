"""Recordings from OpenSFX and Sonic Pi, and which soundfont voices are rendered for which category.

OpenSFX keeps its sounds in one container (``opensfx.cat``: a table of (offset, size) pairs, then per
sound a length-prefixed name carrying its credit and licence, then a RIFF WAV). Only CC0 and CC-BY-3.0
sounds are taken (never the CC-BY-SA helicopter); the "lion roar" is left out (possibly a human voice).
"""
from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from avdemo.errors import AVDemoError

OPENSFX_CAT = "usr/share/games/openttd/baseset/opensfx/opensfx.cat"
SONIC_PI_SAMPLES = "usr/share/sonic-pi/samples"
SONIC_PI_COPYRIGHT = "usr/share/doc/sonic-pi-samples/copyright"
PERMISSIVE = ("Creative Commons Zero 1.0", "Creative Commons Attribution 3.0 Unported")

# OpenSFX sound index -> category (indices of opensfx 1.0.3; the build checks each title).
OPENSFX: dict[int, tuple[str, str]] = {
    36: ("sheep bleating", "Sheep"),
    37: ("cattle mooing", "Cow"),
    38: ("horse neighing", "Horse"),
    39: ("hammering", "Building bridge"),
    40: ("sawing wood", "Sawmill"),
    66: ("bird chirping, tweeting", "Tropical: Bird (1)"),
    68: ("chimpanzee, gorilla hooting", "Tropical: Monkeys"),
    72: ("bird chirping, tweeting", "Tropical: Bird (2)"),
}

SONIC_PI: dict[str, tuple[str, ...]] = {
    "crow cawing": ("misc_crow",),
    "playing cymbal": ("drum_cymbal_open", "drum_cymbal_closed", "drum_cymbal_hard", "drum_cymbal_soft",
                       "drum_cymbal_pedal", "drum_splash_soft", "drum_splash_hard"),
    "playing drum kit": ("loop_amen", "loop_breakbeat", "drum_roll", "drum_snare_hard", "drum_heavy_kick",
                         "drum_tom_hi_hard", "drum_tom_mid_hard", "drum_tom_lo_hard"),
    "playing electric guitar": ("guit_em9", "guit_e_slide", "guit_harmonics", "guit_e_fifths"),
}

# Single files: source key -> (path in the package, category, SPDX licence, author), licences from the
# packages' Debian copyright files.
FILES: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "lomiri-sounds": (("usr/share/sounds/lomiri/camera/click/camera_click.ogg", "camera shutter clicking", "CC0-1.0",
                       "jdaniel1999 (https://freesound.org/people/jdaniel1999/sounds/376205/)"),),
    "deepin-sound-theme": (("usr/share/sounds/deepin/stereo/camera-shutter.wav", "camera shutter clicking",
                            "GPL-3.0-only", "Deepin Technology Co., Ltd."),),
}


@dataclass(frozen=True)
class Recording:
    """A decoded recording with its provenance."""
    category: str
    name: str                       # short file-name stem
    original: str
    licence: str
    author: str
    wav: np.ndarray                 # mono float32
    rate: int
    recording: str = ""             # the source recording (cuts of one file share it); default: original


def _mono(data: bytes | Path) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(data) if isinstance(data, bytes) else data, dtype="float32", always_2d=True)
    return audio.mean(1), rate


def opensfx_entries(cat: Path) -> list[tuple[str, bytes]]:
    """(title, WAV bytes) of every sound in an ``opensfx.cat``."""
    data = cat.read_bytes()
    count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    entries = []
    for k in range(count):
        offset, size = struct.unpack_from("<II", data, 8 * k)
        offset &= 0x7FFFFFFF
        length = data[offset]
        title = data[offset + 1: offset + 1 + length].rstrip(b"\0").decode("latin-1")
        entries.append((title, data[offset + 1 + length: offset + 1 + length + size]))
    return entries


def opensfx_recordings(root: Path) -> list[Recording]:
    entries = opensfx_entries(root / OPENSFX_CAT)
    recordings = []
    for index, (category, title) in sorted(OPENSFX.items()):
        text, wav_bytes = entries[index]
        licence = re.search(r"License: (Creative Commons [A-Za-z -]+ \d\.\d(?: Unported)?)", text)
        if not text.startswith(f'"{title}"') or licence is None or licence.group(1) not in PERMISSIVE:
            raise AVDemoError(f"opensfx sound {index} is not the permissive {title!r} expected: {text[:120]}")
        author = "; ".join(re.findall(r'(?:by|By) "?([^".]+)"?', text))
        wav, rate = _mono(wav_bytes)
        name = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")
        spdx = "CC0-1.0" if "Zero" in licence.group(1) else "CC-BY-3.0"
        recordings.append(Recording(category, name, text, spdx, author, wav, rate))
    return recordings


def sonic_pi_licences(copyright_text: str) -> dict[str, tuple[str, str]]:
    """Sample stem -> (licence, copyright holder) from the Debian copyright file."""
    found = {}
    for stanza in copyright_text.split("\n\n"):
        files = re.search(r"^Files:\s*etc/samples/(\S+)\.flac", stanza, re.M)
        licence = re.search(r"^License:\s*(\S+)", stanza, re.M)
        holder = re.search(r"^Copyright:\s*(.*)", stanza, re.M)
        source = re.search(r"^Source:\s*(\S+)", stanza, re.M)
        if files and licence:
            who = (holder.group(1).strip() if holder else "") + (f" ({source.group(1)})" if source else "")
            found[files.group(1)] = (licence.group(1), who)
    return found


def sonic_pi_recordings(root: Path) -> list[Recording]:
    licences = sonic_pi_licences((root / SONIC_PI_COPYRIGHT).read_text())
    recordings = []
    for category, stems in sorted(SONIC_PI.items()):
        for stem in stems:
            licence, author = licences.get(stem, ("", ""))
            if licence != "CC0":
                raise AVDemoError(f"sonic-pi sample {stem}: licence {licence!r}, expected CC0")
            wav, rate = _mono(root / SONIC_PI_SAMPLES / f"{stem}.flac")
            original = f"{SONIC_PI_SAMPLES}/{stem}.flac"
            recordings.append(Recording(category, stem, original, "CC0-1.0", author, wav, rate))
    return recordings


def file_recordings(key: str, root: Path) -> list[Recording]:
    """The FILES of one package."""
    recordings = []
    for path, category, licence, author in FILES[key]:
        wav, rate = _mono(root / path)
        recordings.append(Recording(category, Path(path).stem, path, licence, author, wav, rate))
    return recordings
