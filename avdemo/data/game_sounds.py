"""Recordings from the game data packages: 0 A.D. and MegaGlest (CC-BY-SA-3.0, the share-alike sub-pack)
and Widelands (GPL-2.0-or-later, the GPL sub-pack).

The numbered variants of one game sound (``cattle_01..07``, MegaGlest's ``pig_ack/die/select``,
Widelands' ``sheep_00..02``) are taken as cuts of one recording: they share a ``recording`` key, and at
most CUTS_PER_RECORDING of them (the first in path order) are used. 0 A.D. keeps its data in
``public.zip`` (3.2 GB); only the members needed are read from it. Left out: MegaGlest's horsemen (voices),
wolves, ambiences and the eagle pillar's ``eagle_attack*`` (on the audio contact sheet: broadband
whooshes without a call); Widelands' bench saws and sawmills (power saws) and wolves/coyotes; 0 A.D.'s
footsteps and generic deaths.
"""
from __future__ import annotations

import fnmatch
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from avdemo.data.sound_sources import Recording
from avdemo.data.sources import SOURCES

CUTS_PER_RECORDING = 3
ZERO_AD_ZIP = "usr/share/games/0ad/mods/public/public.zip"
ZERO_AD_ANIMAL = "audio/actor/fauna/animal/"
MEGAGLEST = "usr/share/games/megaglest/"
MG_UNITS = MEGAGLEST + "techs/megapack/factions/"
MG_COMMON = MEGAGLEST + "techs/megapack/commondata/sounds/"
WIDELANDS = "usr/share/games/widelands/data/sound/"


@dataclass(frozen=True)
class GameSound:
    """Files of one recording: ``patterns`` are globs in the package (0 A.D.: in ``public.zip``)."""
    recording: str
    category: str
    patterns: tuple[str, ...]


def _g(recording: str, category: str, *patterns: str) -> GameSound:
    return GameSound(recording, category, patterns)


GAME_SOUNDS: dict[str, tuple[GameSound, ...]] = {
    "0ad-data": (
        _g("cattle", "cattle mooing", ZERO_AD_ANIMAL + "cattle_0*.ogg"),
        _g("chicken", "chicken clucking", ZERO_AD_ANIMAL + "chicken_1*.ogg"),
        _g("elephant", "elephant trumpeting", ZERO_AD_ANIMAL + "elephant_*.ogg"),
        _g("horse", "horse neighing", ZERO_AD_ANIMAL + "horse_*.ogg"),
        _g("lion", "lion, tiger roaring", ZERO_AD_ANIMAL + "lion_*.ogg"),
        _g("pig", "pig oinking", ZERO_AD_ANIMAL + "pig_*.ogg"),
        _g("sheep", "sheep bleating", ZERO_AD_ANIMAL + "sheep_1*.ogg"),
        _g("goat", "goat bleating", "audio/actor/fauna/death/goat_1*.ogg"),
        _g("camel", "camel grunting", ZERO_AD_ANIMAL + "camel_10.ogg", "audio/actor/fauna/death/death_camel_10.ogg"),
        _g("peacock", "bird squawking", ZERO_AD_ANIMAL + "peacock_call_*.ogg"),
        _g("flamingo", "bird squawking", ZERO_AD_ANIMAL + "flamingo_*.ogg"),
        _g("thunder", "thunder", "audio/ambient/weather/thunder_1*.ogg"),
        _g("hand saw", "sawing wood", "audio/resource/construction/con_saw_*.ogg"),
        _g("dog", "dog, fox barking", "audio/voice/global/civ_dog_bark.ogg"),
    ),
    "megaglest-data": (
        _g("cow", "cattle mooing", MG_COMMON + "cow_*.wav"),
        _g("bull", "cattle mooing", MG_UNITS + "indian/units/bull/sounds/bull_*.wav"),
        _g("mudchute cow", "cattle mooing", MEGAGLEST + "tilesets/*/sounds/mudchute_cow_*.ogg"),
        _g("pig", "pig oinking", MG_COMMON + "pig_*.wav"),
        _g("wild sow", "pig oinking", MG_UNITS + "norsemen/units/wild_sow/sounds/pig_*.wav"),
        _g("tileset chicken", "chicken clucking", MEGAGLEST + "tilesets/*/sounds/chicken.wav"),
        _g("chicken", "chicken clucking", MG_UNITS + "egypt/units/chicken/sounds/chicken_*.wav"),
        _g("rooster", "chicken crowing", MEGAGLEST + "tilesets/*/sounds/rooster.ogg"),
        _g("bee", "bee, wasp, etc. buzzing", MG_UNITS + "indian/units/beehive/sounds/bee*.wav"),
        _g("thunderbird", "bird squawking", MG_UNITS + "indian/units/thunderbird/sounds/eagle_*.wav"),
        _g("hawk", "bird squawking", MEGAGLEST + "tilesets/*/sounds/hawk.ogg"),
        _g("elephant", "elephant trumpeting", MG_UNITS + "persian/units/elephant/sounds/ele[0-9].wav"),
        _g("sheep", "sheep bleating", MG_UNITS + "persian/units/sheep/sounds/sheep*.wav"),
        _g("owl", "owl hooting", MEGAGLEST + "tilesets/*/sounds/owl.ogg"),
    ),
    "widelands-data": (
        *(_g(f"bird {k}", "bird chirping, tweeting", WIDELANDS + f"animals/bird{k}_*.ogg") for k in range(1, 7)),
        _g("crickets 1", "cricket chirping", WIDELANDS + "animals/crickets1_*.ogg"),
        _g("crickets 2", "cricket chirping", WIDELANDS + "animals/crickets2_*.ogg"),
        _g("frog", "frog croaking", WIDELANDS + "animals/frog.ogg"),
        _g("moose", "deer, elk bugling", WIDELANDS + "animals/moose_*.ogg"),
        _g("stag", "deer, elk bugling", WIDELANDS + "animals/stag_*.ogg"),
        _g("boar", "pig oinking", WIDELANDS + "animals/boar.ogg"),
        _g("donkey", "donkey, zebra braying", WIDELANDS + "farm/donkey.ogg"),
        _g("duck", "duck, goose quacking", "usr/share/games/widelands/data/world/critters/duck/duck_*.ogg"),
        _g("horse", "horse neighing", WIDELANDS + "farm/horse_*.ogg"),
        _g("sheep", "sheep bleating", WIDELANDS + "farm/sheep_*.ogg"),
        _g("ox", "cattle mooing", WIDELANDS + "farm/ox_*.ogg"),
        _g("hammering", "hammering", WIDELANDS + "hammering/hammering_*.ogg"),
        _g("geologist hammer", "hammering", WIDELANDS + "hammering/geologist_hammer.ogg"),
        _g("hand saw", "sawing wood", WIDELANDS + "atlanteans/saw/sawing_*.ogg"),
    ),
}


def _members(root: Path, key: str) -> tuple[list[str], Callable[[str], bytes]]:
    """Every file path of a package (0 A.D.: of its ``public.zip``) and a reader of one path's bytes."""
    if key == "0ad-data":
        archive = zipfile.ZipFile(root / ZERO_AD_ZIP)
        return archive.namelist(), archive.read
    paths = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.suffix in (".ogg", ".wav"))
    return paths, lambda path: (root / path).read_bytes()


def game_recordings(key: str, root: Path) -> list[Recording]:
    """The GAME_SOUNDS of one package, decoded to mono (at most CUTS_PER_RECORDING files per recording)."""
    source = SOURCES[key]
    paths, read = _members(root, key)
    recordings = []
    for sound in GAME_SOUNDS[key]:
        found = sorted({p for pattern in sound.patterns for p in fnmatch.filter(paths, pattern)})
        for k, path in enumerate(found[:CUTS_PER_RECORDING]):
            audio, rate = sf.read(io.BytesIO(read(path)), dtype="float32", always_2d=True)
            name = f"{sound.recording.replace(' ', '_')}_{k}"
            recordings.append(Recording(sound.category, name, path, source.licence, source.author, audio.mean(1),
                                        rate, f"{key}: {sound.recording}"))
    return recordings
