"""Rebuild the media pack (``avdemo/data/pack/``) from pinned npm and Debian packages (see sources.py).

Pictures: Tux Paint stamps, ten emoji sets, game-icons, Openclipart drawings and Symbola glyphs, each
cropped to its alpha box, shrunk to at most 192 px, 256-colour PNG with alpha. Sounds: Tux Paint stamps'
own recordings (never the spoken ``*_desc*.ogg``), OpenSFX and Sonic Pi recordings, game recordings
(0 A.D. and MegaGlest in the share-alike sub-pack ``share-alike/``, Widelands in ``gpl/``) and fluidsynth
renders of three soundfonts (FluidR3 GM, FluidR3 GS sound effects, TimGM6mb); 16 kHz mono, trimmed,
loudness-normalised OGG Vorbis; recordings whose event is faint against their own background are cut to
the event or dropped (sound_checks.py). Duplicates (same decoded pixels or samples) are dropped. Stamps
outside the categories become silent objects. ``manifest.csv`` records every file's provenance and source
recording; ATTRIBUTION.md (one per sub-pack too) and one picture and one audio contact sheet per category
are written from it.
"""
from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import mido
import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from PIL import Image
from tqdm import tqdm

from avdemo.cache import cache_root
from avdemo.data import picture_sources as pics
from avdemo.data import sound_sources as snd
from avdemo.data.catalog import MANIFEST_FIELDS, PACK_DIR, SAMPLE_RATE, SILENT_OBJECT, Media
from avdemo.data.game_sounds import GAME_SOUNDS, game_recordings
from avdemo.data.pack_docs import (COPYRIGHT_FILES, LICENCE_FILES, SUBPACK_LICENCES, write_attribution,
                                   write_contact_sheets)
from avdemo.data.sound_checks import keep_event
from avdemo.data.sound_sheets import write_sound_sheets
from avdemo.data.sources import SOURCES, Source
from avdemo.errors import AVDemoError

STAMPS_IN_DEB = "usr/share/tuxpaint/stamps"
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SOUNDFONTS = {"fluid-soundfont-gm": "usr/share/sounds/sf2/FluidR3_GM.sf2",
              "fluid-soundfont-gs": "usr/share/sounds/sf2/FluidR3_GS.sf2",
              "timgm6mb-soundfont": "usr/share/sounds/sf2/TimGM6mb.sf2"}
SYMBOLA_FONT = "usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf"
PICTURE_MAX_SIDE = 192
PICTURE_COLOURS = 256
MAX_SOUND_S = 6.0
TRIM_FLOOR_DB = -40.0
LOUDNESS_DBFS = -20.0
PEAK_MAX = 0.95
OPAQUE_BOX_SHARE = 0.97           # pictures whose alpha box is this opaque are photos/rectangles
MIN_OBJECT_SHARE = 0.01           # pictures with fewer pixels of alpha >= 128 (a scene's object mask) are dropped
RENDER_S = 3.5
# Recordings the faint-event check would drop, kept after a look at their spectrogram (why).
KEEP_FAINT = {"sounds/animals_mammals_rodents_squirrel.ogg": "a steady chatter, and the category's only recording"}


@dataclass(frozen=True)
class Voice:
    """A General MIDI voice to render: ``bank`` 128 is the percussion channel (``program`` = kit)."""
    program: int
    style: str                      # melody | chords | drums | cymbals | drone | tweets | hits
    low: int = 48                   # MIDI note range of melodies / chords
    high: int = 72
    bank: int = 0


@dataclass(frozen=True)
class Category:
    """A sounding category: stamps with their own recording, stamps showing the kind, GM renders."""
    name: str
    sounds: tuple[str, ...] = ()    # stamp paths without extension, relative to the stamps folder
    pictures: tuple[str, ...] = ()
    voices: tuple[Voice, ...] = ()
    renders: int = 0


A, B, M = "animals/", "animals/birds/", "animals/mammals/"
MUSIC, KITS = "hobbies/music/", (0, 8, 16, 24, 25, 32, 40, 48)
CATEGORIES: tuple[Category, ...] = (
    Category("dog, fox barking", (M + "dogs/dog", M + "dogs/fox"), (M + "dogs/dog", M + "dogs/dingo", M + "dogs/fox")),
    Category("cat meowing", ("seasonal/halloween/blackcat",), ("seasonal/halloween/blackcat",)),
    Category("cattle mooing", (M + "bovines/cow", M + "bovines/cow_white", M + "bovines/bull", M + "bovines/bison"),
             (M + "bovines/cow", M + "bovines/cow_white", M + "bovines/bull", M + "bovines/bison",
              M + "bovines/yak", M + "bovines/zebu")),
    Category("goat bleating", (M + "bovines/goat", M + "bovines/mountaingoat"),
             (M + "bovines/goat", M + "bovines/mountaingoat")),
    Category("sheep bleating", (M + "bovines/sheep", M + "bovines/sheep_lamb"),
             (M + "bovines/sheep", M + "bovines/sheep_lamb", M + "bovines/ram")),
    Category("pig oinking", (M + "pig", M + "pig_golden", M + "pig_golden2"),
             (M + "pig", M + "pig_golden", M + "pig_golden2", M + "wildboar")),
    Category("horse neighing", (M + "equines/horse",), (M + "equines/horse",)),
    Category("donkey, zebra braying", (M + "equines/donkey", M + "equines/zebra"),
             (M + "equines/donkey", M + "equines/donkey_eating", M + "equines/zebra")),
    Category("chicken clucking", (B + "hen",), (B + "hen", B + "chicken_profile")),
    Category("chicken crowing", (B + "rooster",), (B + "rooster",)),
    Category("duck, goose quacking", (B + "duck", B + "drake", B + "gander"), (B + "duck", B + "drake", B + "gander")),
    Category("bird chirping, tweeting", (B + "blackbird", B + "lark"), (B + "blackbird", B + "lark", "seasonal/easter/bluebird"),
             (Voice(123, "tweets", 60, 96),), renders=8),
    Category("bird squawking", (B + "tucan", B + "quetzal", B + "vulture", B + "heron_greatblue_flying", B + "seagull"),
             (B + "tucan", B + "quetzal", B + "vulture", B + "heron_greatblue", B + "heron_greatblue_flying",
              B + "seagull", B + "silver-gull", B + "rainbow-lorikeet", B + "adelaide-rosella")),
    Category("crow cawing", (B + "crow",), (B + "crow", B + "magpie")),
    Category("owl hooting", (B + "owl",), (B + "owl",)),
    Category("cuckoo bird calling", (B + "cuckoo",), (B + "cuckoo",)),
    Category("turkey gobbling", (B + "turkey",), (B + "turkey",)),
    Category("penguins braying", (B + "penguin",), (B + "penguin", B + "little-penguin", B + "magellanic_penguin",
                                                   B + "cartoon/tux", B + "cartoon/pengwin")),
    Category("frog croaking", (A + "amphibians/frog",), (A + "amphibians/frog", A + "amphibians/frog-1")),
    Category("bee, wasp, etc. buzzing", (A + "insects/bee", A + "insects/hornet", A + "insects/mosquito"),
             (A + "insects/bee", A + "insects/hornet", A + "insects/hoverfly", A + "insects/fly")),
    Category("cricket chirping", (A + "insects/grasshopper",), (A + "insects/grasshopper",)),
    Category("chimpanzee, gorilla hooting", (M + "apes/chimp", M + "apes/gorilla"), (M + "apes/chimp", M + "apes/gorilla")),
    Category("whale, dolphin calling", (M + "aquatic/whale", M + "aquatic/orca", M + "aquatic/dolphin"),
             (M + "aquatic/whale", M + "aquatic/orca", M + "aquatic/dolphin")),
    Category("sea lion barking", (M + "aquatic/sea_lion",), (M + "aquatic/sea_lion",)),
    Category("lion, tiger roaring", (M + "cats/lion", M + "cats/tiger"),
             (M + "cats/lion", M + "cats/lion-2", M + "cats/cartoon/lion", M + "cats/tiger", M + "cats/tiger_sumatran")),
    Category("bear growling", (M + "bears/bear",), (M + "bears/bear", M + "bears/european-bear")),
    Category("elephant trumpeting", (M + "elephant",), (M + "elephant",)),
    Category("deer, elk bugling", (M + "deer/caribou", M + "deer/deer", M + "deer/doe"),
             (M + "deer/caribou", M + "deer/deer", M + "deer/doe", M + "deer/wapiti")),
    Category("camel grunting", (M + "camel/camel", M + "camel/dromedary"), (M + "camel/camel", M + "camel/dromedary")),
    Category("mouse squeaking", (M + "rodents/mouse",), (M + "rodents/mouse", M + "rodents/rat")),
    Category("squirrel chattering", (M + "rodents/squirrel",), (M + "rodents/squirrel",)),
    Category("koala bellowing", (A + "marsupials/koala",), (A + "marsupials/koala",)),
    Category("hippopotamus grunting", (M + "hippopotamus",), (M + "hippopotamus",)),
    Category("playing violin, fiddle", (MUSIC + "string/violin",), (MUSIC + "string/violin",),
             (Voice(40, "melody", 55, 88), Voice(110, "melody", 55, 84)), renders=16),
    Category("playing cello", (MUSIC + "string/cello",), (MUSIC + "string/cello",), (Voice(42, "melody", 36, 64),), renders=16),
    Category("playing bassoon", (MUSIC + "wind/bassoon",), (MUSIC + "wind/bassoon",), (Voice(70, "melody", 34, 62),), renders=16),
    Category("playing trumpet", (), (MUSIC + "brass/trumpet",),
             (Voice(56, "melody", 55, 80), Voice(59, "melody", 55, 80)), renders=16),
    Category("playing acoustic guitar", (), (MUSIC + "string/guitar_classical", MUSIC + "string/guitar2"),
             (Voice(24, "chords", 40, 76), Voice(25, "chords", 40, 76)), renders=16),
    Category("playing electric guitar", (), (MUSIC + "string/guitar_electric",),
             tuple(Voice(p, "chords", 40, 79) for p in (26, 27, 28, 29, 30)), renders=16),
    Category("playing bass guitar", (), (MUSIC + "string/guitar_electric_bass",),
             tuple(Voice(p, "melody", 28, 52) for p in (33, 34, 35, 36, 37)), renders=16),
    Category("playing drum kit", (MUSIC + "percussion/drumkit", MUSIC + "percussion/drum_tomtom_floor"),
             (MUSIC + "percussion/drumkit", MUSIC + "percussion/drum_tomtom_floor"),
             tuple(Voice(k, "drums", bank=128) for k in KITS), renders=16),
    Category("playing cymbal", (MUSIC + "percussion/cymbal_crash",), (MUSIC + "percussion/cymbal_crash",),
             tuple(Voice(k, "cymbals", bank=128) for k in KITS), renders=12),
    Category("helicopter", (), ("vehicles/flight/cartoon/eddieCopter",), (Voice(125, "drone", 36, 72),), renders=8),
    Category("fire truck siren", ("vehicles/emergency/firetruck",),
             ("vehicles/emergency/firetruck", "vehicles/emergency/cartoon/fire_engine")),
    Category("race car, auto racing", ("town/flags/checkeredflag",), ("vehicles/race/indycar", "vehicles/auto/sportscar2")),
    Category("fireworks banging", ("seasonal/newyears/fireworks",), ("seasonal/newyears/fireworks", "seasonal/newyears/fireworks2")),
    Category("thunder", ("naturalforces/lightningbolt",), ("naturalforces/lightningbolt",)),
    Category("hammering", ("household/tools/hammer", "household/tools/mallet_metal"),
             ("household/tools/hammer", "household/tools/mallet_metal")),
    Category("sawing wood", ("household/tools/saw",), ("household/tools/saw",)),
    Category("scissors cutting", ("household/arttools/scissors_small_closed", "household/arttools/scissors_small_open"),
             ("household/arttools/scissors_small_closed", "household/arttools/scissors_small_open")),
    Category("camera shutter clicking", ("hobbies/camera_35mm",), ("hobbies/camera_35mm",)),
    Category("people eating apple", ("food/fruit/apple_red",),
             ("food/fruit/apple_red", "food/fruit/apple_fuji", "food/fruit/apple_granny_smith", "food/fruit/apple_green",
              "food/fruit/apple_sierra_beauty", "food/fruit/cartoon/apple")),
    Category("rubber duck squeaking", ("household/rubberduck",), ("household/rubberduck",)),
)
# Stamps that never sound here: everything outside the categories above, less these.
SILENT_EXCLUDE = ("symbols/*", "*_mirror", "military/*", "medical/syringe", "seasonal/christmas/Roast_turkey",
                  "food/fruit/cartoon/apple_core", "town/roadsigns/*")


def stamp_id(stamp: str) -> str:
    """Pack file stem of a stamp path: ``animals/mammals/dogs/dog`` -> ``animals_mammals_dogs_dog``."""
    return stamp.replace("/", "_").replace("-", "_")


def trim_silence(wav: np.ndarray, sample_rate: int, floor_db: float = TRIM_FLOOR_DB, margin_s: float = 0.05) -> np.ndarray:
    """Drop leading and trailing 10 ms frames quieter than ``floor_db`` below the loudest frame."""
    hop = sample_rate // 100
    frames = wav[: len(wav) // hop * hop].reshape(-1, hop)
    energy_db = 10 * np.log10((frames ** 2).mean(1) + 1e-12)
    loud = np.flatnonzero(energy_db > energy_db.max() + floor_db)
    margin = int(margin_s * sample_rate)
    return wav[max(0, loud[0] * hop - margin): (loud[-1] + 1) * hop + margin]


def finish_sound(wav: np.ndarray, sample_rate: int, max_s: float = MAX_SOUND_S, fade_s: float = 0.01) -> np.ndarray:
    """Mono float (T,) at any rate -> 16 kHz, trimmed, at most ``max_s`` (faded ends), loudness-normalised
    (RMS of the frames within 30 dB of the loudest at LOUDNESS_DBFS, peak at most PEAK_MAX), float32."""
    wav16 = AF.resample(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), sample_rate, SAMPLE_RATE).numpy()
    wav16 = trim_silence(wav16, SAMPLE_RATE)[: int(max_s * SAMPLE_RATE)]
    fade = np.linspace(0, 1, min(int(fade_s * SAMPLE_RATE), len(wav16) // 2), dtype=np.float32)
    wav16[: len(fade)] *= fade
    wav16[len(wav16) - len(fade):] *= fade[::-1]
    return normalise_loudness(wav16)


def normalise_loudness(wav: np.ndarray) -> np.ndarray:
    """Scale so the active part's RMS is LOUDNESS_DBFS, unless that would push the peak past PEAK_MAX."""
    hop = SAMPLE_RATE // 100
    count = max(1, -(-len(wav) // hop))
    frames = np.pad(wav, (0, count * hop - len(wav))).reshape(count, hop)
    energy = (frames ** 2).mean(1)
    active = energy[energy > energy.max() * 10 ** (-3.0)]
    rms = float(np.sqrt(active.mean())) if len(active) else 0.0
    gain = min(10 ** (LOUDNESS_DBFS / 20) / max(rms, 1e-6), PEAK_MAX / max(float(np.abs(wav).max()), 1e-6))
    return (wav * gain).astype(np.float32)


def write_ogg(path: Path, wav16: np.ndarray) -> None:
    """OGG Vorbis, with the stream serial (random in libsndfile) pinned so that rebuilds give the same bytes."""
    buf = io.BytesIO()
    sf.write(buf, wav16, SAMPLE_RATE, format="OGG", subtype="VORBIS")
    path.write_bytes(pin_ogg_serial(buf.getvalue()))


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def pin_ogg_serial(data: bytes, serial: int = 1) -> bytes:
    """Rewrite every Ogg page's stream serial number to ``serial`` and fix its checksum."""
    out, pos = bytearray(data), 0
    while pos < len(out):
        if out[pos: pos + 4] != b"OggS":
            raise AVDemoError("not an Ogg stream")
        segments = out[pos + 26]
        size = 27 + segments + sum(out[pos + 27: pos + 27 + segments])
        out[pos + 14: pos + 18] = serial.to_bytes(4, "little")
        out[pos + 22: pos + 26] = bytes(4)
        out[pos + 22: pos + 26] = _ogg_crc(bytes(out[pos: pos + size])).to_bytes(4, "little")
        pos += size
    return bytes(out)


def shrink_picture(src: Path, dst: Path) -> bool:
    """Crop to the alpha box, shrink to PICTURE_MAX_SIDE (premultiplied), save a 256-colour RGBA PNG.
    Returns False (and writes nothing) for an empty picture, an opaque rectangle (no object outline) or a
    faint outline (almost no pixel of alpha >= 128)."""
    image = Image.open(src).convert("RGBA")
    box = image.getchannel("A").point(lambda a: 255 if a >= 16 else 0).getbbox()
    if box is None:
        return False
    image = image.crop(box)
    if (np.asarray(image.getchannel("A")) >= 250).mean() > OPAQUE_BOX_SHARE:
        return False
    image = image.convert("RGBa")
    image.thumbnail((PICTURE_MAX_SIDE, PICTURE_MAX_SIDE), Image.LANCZOS)
    if (np.asarray(image.getchannel(3)) >= 128).mean() < MIN_OBJECT_SHARE:
        return False                                       # a faint outline: scenes would draw no object
    image.convert("RGBA").quantize(PICTURE_COLOURS, method=Image.Quantize.FASTOCTREE).save(dst, optimize=True)
    return True


def phrase(voice: Voice, rng: np.random.Generator, duration_s: float = RENDER_S,
           font: str = "FluidR3_GM") -> tuple[mido.MidiFile, str]:
    """A random phrase for ``voice`` filling ``duration_s``; returns the MIDI file and a description."""
    tempo_bpm = int(rng.integers(70, 161))
    velocity = int(rng.integers(55, 121))
    ticks_per_beat = 480
    beats = duration_s * tempo_bpm / 60
    channel = 9 if voice.bank == 128 else 0
    events: list[tuple[float, int, int, int]] = []          # (beat, note, velocity, 1 on / 0 off)

    def note(beat: float, pitch: int, length: float, vel: int) -> None:
        vel = int(np.clip(vel + rng.integers(-10, 11), 1, 127))
        events.extend([(beat, pitch, vel, 1), (beat + length, pitch, 0, 0)])

    if voice.style in ("melody", "tweets"):
        scale = np.array([0, 2, 4, 5, 7, 9, 11] if rng.random() < 0.5 else [0, 2, 3, 5, 7, 8, 10])
        root = int(rng.integers(voice.low, voice.high - 11))
        degree, beat = int(rng.integers(0, 7)), 0.0
        lengths = (0.25, 0.5) if voice.style == "tweets" else (0.5, 1.0, 1.5, 2.0)
        while beat < beats:
            length = float(rng.choice(lengths))
            degree = int(np.clip(degree + rng.integers(-2, 3), -7, 13))
            pitch = int(np.clip(root + 12 * (degree // 7) + scale[degree % 7], voice.low, voice.high))
            note(beat, pitch, length * (0.6 if voice.style == "tweets" else 0.95), velocity)
            beat += length
    elif voice.style == "chords":
        shapes = ([0, 4, 7, 12], [0, 3, 7, 12], [0, 7, 12, 16], [0, 5, 7, 12])
        beat, strum = 0.0, rng.random() < 0.6
        while beat < beats:
            root = int(rng.integers(voice.low, voice.high - 16))
            chord = [root + i for i in shapes[int(rng.integers(len(shapes)))]]
            length = float(rng.choice((1.0, 2.0)))
            if strum:
                for k, pitch in enumerate(chord):
                    note(beat + 0.04 * k, pitch, length, velocity)
            else:
                for k in range(int(length * 2)):
                    note(beat + 0.5 * k, chord[k % len(chord)], 0.5, velocity)
            beat += length
    elif voice.style == "drums":
        hat, fill = int(rng.choice((42, 44, 46, 51))), rng.random() < 0.4
        for k in range(int(beats * 2)):
            beat = k / 2
            note(beat, hat, 0.25, velocity - 20)
            if k % 4 == 0 or (k % 8 == 7 and rng.random() < 0.5):
                note(beat, 36, 0.25, velocity)
            if k % 4 == 2:
                note(beat, int(rng.choice((38, 40))), 0.25, velocity)
            if fill and k % 8 == 6:
                note(beat + 0.25, int(rng.choice((41, 43, 45, 47, 48, 50))), 0.25, velocity)
    elif voice.style == "cymbals":
        cymbals, beat = (49, 57, 51, 59, 52, 55), 0.0
        while beat < beats:
            note(beat, int(rng.choice(cymbals)), 1.0, velocity)
            beat += float(rng.choice((0.5, 1.0, 2.0)))
    elif voice.style == "hits":
        beat = 0.0
        while beat < beats:
            note(beat, int(rng.integers(voice.low, voice.high + 1)), 0.9, velocity)
            beat += float(rng.choice((1.0, 1.5, 2.0)))
    elif voice.style == "drone":
        note(0.0, int(rng.integers(voice.low, voice.high)), beats, velocity)
    else:
        raise ValueError(f"unknown style {voice.style!r}")

    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm)))
    if 0 < voice.bank < 128:
        track.append(mido.Message("control_change", channel=channel, control=0, value=voice.bank))
    track.append(mido.Message("program_change", channel=channel, program=voice.program))
    now = 0
    for beat, pitch, vel, on in sorted(events, key=lambda e: (e[0], e[3])):
        tick = int(round(min(beat, beats) * ticks_per_beat))
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, channel=channel, note=pitch, velocity=vel, time=tick - now))
        now = tick
    description = (f"fluidsynth {font} bank {voice.bank} program {voice.program}, {voice.style}, "
                   f"notes {voice.low}-{voice.high}, {tempo_bpm} bpm, velocity {velocity}")
    return midi, description


def render(midi: mido.MidiFile, soundfont: Path, reverb: bool) -> np.ndarray:
    """Render a MIDI file with fluidsynth at 16 kHz; returns mono float32 (T,)."""
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "phrase.mid", Path(tmp) / "phrase.wav"
        midi.save(mid)
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.7", "-r", str(SAMPLE_RATE), "-R", str(int(reverb)),
                        "-C", "0", "-F", str(wav), str(soundfont), str(mid)], check=True, capture_output=True)
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    return finish_sound(audio.mean(1), rate, max_s=RENDER_S)



# FluidR3 GS sound-effect variations (bank, program) per category: (voice, renders).
GS_SFX: dict[str, tuple[tuple[Voice, int], ...]] = {
    "dog, fox barking": ((Voice(123, "hits", 57, 63, bank=1), 3),),
    "bird chirping, tweeting": ((Voice(123, "tweets", 60, 84, bank=3), 2),),
    "thunder": ((Voice(122, "drone", 55, 65, bank=2), 2),),
    "fire truck siren": ((Voice(125, "drone", 57, 65, bank=5), 2),),
    "race car, auto racing": ((Voice(125, "drone", 57, 64, bank=3), 2), (Voice(125, "drone", 57, 64, bank=1), 1)),
}
TIMGM_RENDERS = 6                    # TimGM6mb renders per category with General MIDI voices


@dataclass
class PackWriter:
    """Writes media into the pack folder, drops content duplicates and collects the manifest rows."""
    out: Path
    rows: list[dict[str, str]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    duplicates: list[str] = field(default_factory=list)
    by_ear: list[str] = field(default_factory=list)     # recordings cut to their event or dropped as faint

    def _row(self, name: str, category: str, kind: str, source: Source, original: str, style: str,
             licence: str = "", author: str = "", recording: str = "") -> None:
        self.rows.append(dict(file=name, category=category, kind=kind, package=source.package, version=source.version,
                              original=original, licence=licence or source.licence, author=author or source.author,
                              style=style, recording=recording))

    def _fresh(self, digest: str, name: str) -> bool:
        if digest in self.seen:
            self.duplicates.append(name)
            return False
        self.seen.add(digest)
        return True

    def sound(self, name: str, wav16: np.ndarray, category: str, source: Source, original: str, style: str,
              recording: str, licence: str = "", author: str = "") -> None:
        """Add a finished 16 kHz sound (into the source's sub-pack) unless the same samples are already in
        the pack; ``recording`` names the source recording it is made from."""
        name = f"{source.subpack}/{name}" if source.subpack else name
        if not self._fresh(hashlib.sha1(np.round(wav16 * 32767).astype(np.int16).tobytes()).hexdigest(), name):
            return
        write_ogg(self.out / name, wav16)
        self._row(name, category, "sound", source, original, style, licence, author, recording)

    def recording(self, name: str, wav16: np.ndarray, category: str, source: Source, original: str, style: str,
                  recording: str = "", licence: str = "", author: str = "") -> None:
        """Add a recorded (not rendered) sound after the faint-event check: as it is, cut to its event
        (loudness-normalised again) or not at all; ``recording`` defaults to ``original``."""
        kept, note = keep_event(wav16)
        if kept is None and name in KEEP_FAINT:
            kept, note = wav16, f"kept: {KEEP_FAINT[name]}; {note.removeprefix('dropped ')}"
        if note:
            self.by_ear.append(f"{name} ({category}): {note}")
        if kept is not None:
            kept = normalise_loudness(kept) if kept is not wav16 else kept
            self.sound(name, kept, category, source, original, style, recording or original, licence, author)

    def picture(self, name: str, src: Path, category: str, source: Source, original: str, style: str,
                licence: str = "", author: str = "") -> None:
        """Add a picture (shrunk from ``src``) unless it is empty, an opaque rectangle or a duplicate."""
        dst = self.out / name
        if not shrink_picture(src, dst):
            self.duplicates.append(f"{name} (no outline)")
            return
        if not self._fresh(hashlib.sha1(np.asarray(Image.open(dst).convert("RGBA")).tobytes()).hexdigest(), name):
            dst.unlink()
            return
        self._row(name, category, "picture", source, original, style, licence, author)


def silent_stamps(stamps: Path) -> list[str]:
    """Stamp pictures that no category uses, less SILENT_EXCLUDE."""
    used = {p for c in CATEGORIES for p in c.pictures}
    found = sorted(str(p.relative_to(stamps).with_suffix("")) for p in stamps.rglob("*.png"))
    return [s for s in found if s not in used and not any(fnmatch.fnmatch(s, pat) for pat in SILENT_EXCLUDE)]


def add_tuxpaint(writer: PackWriter, root: Path) -> None:
    """Stamps' own recordings and pictures per category, then the silent objects."""
    stamps, source = root / STAMPS_IN_DEB, SOURCES["tuxpaint-stamps-default"]
    if not (stamps / "animals").is_dir():
        raise AVDemoError(f"{root} holds no Tux Paint stamps ({STAMPS_IN_DEB}/animals missing)")
    for category in CATEGORIES:
        for stamp in category.sounds:
            audio, rate = sf.read(stamps / f"{stamp}.ogg", dtype="float32", always_2d=True)
            writer.recording(f"sounds/{stamp_id(stamp)}.ogg", finish_sound(audio.mean(1), rate), category.name,
                             source, f"{STAMPS_IN_DEB}/{stamp}.ogg", "tuxpaint")
        for stamp in category.pictures:
            writer.picture(f"pictures/{stamp_id(stamp)}.png", stamps / f"{stamp}.png", category.name, source,
                           f"{STAMPS_IN_DEB}/{stamp}.png", "tuxpaint")
    for stamp in tqdm(silent_stamps(stamps), desc="silent objects"):
        writer.picture(f"pictures/{stamp_id(stamp)}.png", stamps / f"{stamp}.png", SILENT_OBJECT, source,
                       f"{STAMPS_IN_DEB}/{stamp}.png", "tuxpaint")


def _slug(text: str) -> str:
    return stamp_id(text.split(",")[0].replace(" ", "_").replace(".", "_"))


def add_renders(writer: PackWriter, roots: dict[str, Path], seed: int) -> None:
    """fluidsynth renders: FluidR3 GM voices (as before), FluidR3 GS sound effects, TimGM6mb GM voices."""
    fonts = {key: roots[key] / rel for key, rel in SOUNDFONTS.items()}
    rng = np.random.default_rng(seed)
    plans = (("fluid-soundfont-gm", "gm", "fluidr3", [(c.name, c.voices, c.renders) for c in CATEGORIES], rng),
             ("fluid-soundfont-gs", "gs", "fluidr3-gs",
              [(name, (v,), n) for name, group in GS_SFX.items() for v, n in group], np.random.default_rng([seed, 1])),
             ("timgm6mb-soundfont", "timgm", "timgm6mb",
              [(c.name, c.voices, TIMGM_RENDERS) for c in CATEGORIES if c.voices], np.random.default_rng([seed, 2])))
    for key, prefix, style, plan, plan_rng in plans:
        label, counters = fonts[key].stem, {}
        for category, voices, renders in tqdm(plan, desc=f"{label} renders"):
            for k in range(renders):
                midi, description = phrase(voices[k % len(voices)], plan_rng, font=label)
                reverb = bool(plan_rng.random() < 0.5)
                index = counters.setdefault(category, 0)
                counters[category] += 1
                voice = voices[k % len(voices)]
                writer.sound(f"sounds/{prefix}_{_slug(category)}_{index:02d}.ogg", render(midi, fonts[key], reverb),
                             category, SOURCES[key], f"{description}, reverb {'on' if reverb else 'off'}", style,
                             recording=f"{label} bank {voice.bank} program {voice.program}")


def add_recordings(writer: PackWriter, roots: dict[str, Path]) -> None:
    """OpenSFX, Sonic Pi, Lomiri and Deepin recordings (each with its own licence and author), then the
    game recordings of the sub-packs; packages missing from ``roots`` are skipped (a subset rebuild)."""
    readers = [("openttd-opensfx", "opensfx", "opensfx", snd.opensfx_recordings),
               ("sonic-pi-samples", "sonicpi", "sonic-pi", snd.sonic_pi_recordings),
               ("lomiri-sounds", "lomiri", "lomiri", partial(snd.file_recordings, "lomiri-sounds")),
               ("deepin-sound-theme", "deepin", "deepin", partial(snd.file_recordings, "deepin-sound-theme"))]
    readers += [(key, key.split("-")[0], key.split("-")[0], partial(game_recordings, key)) for key in GAME_SOUNDS]
    for key, prefix, style, found in (r for r in readers if r[0] in roots):
        for rec in tqdm(found(roots[key]), desc=f"{key} recordings"):
            writer.recording(f"sounds/{prefix}_{rec.name}.ogg", finish_sound(rec.wav, rec.rate), rec.category,
                             SOURCES[key], rec.original, style, rec.recording, rec.licence, rec.author)


def add_drawings(writer: PackWriter, roots: dict[str, Path], tmp: Path) -> None:
    """Emoji sets, game-icons, Openclipart and Symbola pictures, rasterised then shrunk."""
    sets = {name: pics.IconSet(roots[name]) for name in pics.EMOJI_SETS + ("game-icons",)}
    points = pics.code_points(sets)
    font = roots["fonts-symbola"] / SYMBOLA_FONT
    groups = [(name, pics.emoji_drawings(name, sets[name], points, SOURCES[name].author)) for name in pics.EMOJI_SETS]
    groups += [("game-icons", pics.game_icon_drawings(sets["game-icons"], SOURCES["game-icons"].author)),
               ("openclipart-svg", pics.openclipart_drawings(roots["openclipart-svg"])),
               ("fonts-symbola", pics.symbola_drawings(font, points))]
    for key, drawings in groups:
        for drawing in tqdm(drawings, desc=key):
            stem = Path(drawing.original).stem if drawing.style == "openclipart" else drawing.original.split()[-1]
            raster = tmp / "raster.png"
            pics.rasterise(drawing, raster, font)
            writer.picture(f"pictures/{_slug(drawing.style)}_{stamp_id(stem)}.png", raster, drawing.category,
                           SOURCES[key], drawing.original, drawing.style, author=drawing.author)


def sheets_dir() -> Path:
    """Where the per-category contact sheets go by default."""
    return cache_root() / "contact_sheets"


def build_pack(roots: dict[str, Path], out: Path = PACK_DIR, sheets: Path | None = None, seed: int = 0) -> Path:
    """Write the whole pack into ``out`` from the unpacked sources ``roots`` (see sources.fetch_all)."""
    missing = [tool for tool in ("fluidsynth", "rsvg-convert") if shutil.which(tool) is None]
    if missing:
        raise AVDemoError(f"need {', '.join(missing)}: apt-get install fluidsynth librsvg2-bin")
    for subpack in SUBPACK_LICENCES:
        shutil.rmtree(out / subpack, ignore_errors=True)
        (out / subpack / "sounds").mkdir(parents=True)
    for sub in ("sounds", "pictures"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)
    writer = PackWriter(out)
    add_tuxpaint(writer, roots["tuxpaint-stamps-default"])
    add_renders(writer, roots, seed)
    add_recordings(writer, roots)
    with tempfile.TemporaryDirectory() as tmp:
        add_drawings(writer, roots, Path(tmp))
    rows = sorted(writer.rows, key=lambda r: (r["category"] == SILENT_OBJECT, r["category"], r["kind"], r["file"]))
    with open(out / "manifest.csv", "w", newline="") as f:
        csv_writer = csv.DictWriter(f, fieldnames=list(MANIFEST_FIELDS), lineterminator="\n")
        csv_writer.writeheader()
        csv_writer.writerows(rows)
    copy_licences(roots, out)
    media = [Media(id=str(Path(r["file"]).with_suffix("")), **r) for r in rows]
    write_attribution(media, out, writer.duplicates, writer.by_ear)
    if sheets is not None:
        write_contact_sheets(media, out, sheets)
        write_sound_sheets(media, out, sheets)
    return out


LICENCE_DIR = Path(__file__).parent / "licences"


def copy_licences(roots: dict[str, Path], out: Path) -> None:
    """The licence texts (avdemo/data/licences/) and each Debian source's copyright file; a sub-pack gets
    its own licence texts and its sources' copyright files (the top level none of a sub-pack's only)."""
    for old in list(out.glob("LICENSE-*.txt")) + list(out.glob("COPYRIGHT-*.txt")):
        old.unlink()
    top_level = {LICENCE_FILES.get(s.licence) for s in SOURCES.values() if not s.subpack}
    only_subpacks = {name for names in SUBPACK_LICENCES.values() for name in names} - top_level
    for text in sorted(LICENCE_DIR.glob("*.txt")):
        if f"LICENSE-{text.name}" not in only_subpacks:
            shutil.copyfile(text, out / f"LICENSE-{text.name}")
    for key in COPYRIGHT_FILES:
        shutil.copyfile(roots[key] / f"usr/share/doc/{key}/copyright", out / f"COPYRIGHT-{key}.txt")
    for subpack, licences in SUBPACK_LICENCES.items():
        for name in licences:
            shutil.copyfile(LICENCE_DIR / name.removeprefix("LICENSE-"), out / subpack / name)
        for key, source in SOURCES.items():
            if source.subpack == subpack and key in roots:
                shutil.copyfile(roots[key] / f"usr/share/doc/{key}/copyright", out / subpack / f"COPYRIGHT-{key}.txt")

