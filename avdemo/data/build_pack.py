"""Rebuild the curated media pack (``avdemo/data/pack/``) from Debian's ``tuxpaint-stamps-default`` and
fluidsynth renders of Debian's General MIDI soundfont ``fluid-soundfont-gm``.

Every stamp whose own recording is the thing's sound (never the spoken ``*_desc*.ogg``) joins a
category named like VGGSound's, with the pictures of its kind; instrument, bird and helicopter categories
are widened with General MIDI renders (many programs, pitches, tempi, velocities). Other stamps become
silent objects. Sounds: 16 kHz mono, trimmed, OGG Vorbis. Pictures: cropped to their alpha box,
shrunk, 256-colour PNG with alpha. ``manifest.csv`` lists file, category, kind and source.
"""
from __future__ import annotations

import csv
import fnmatch
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from PIL import Image
from tqdm import tqdm

from avdemo.data.catalog import PACK_DIR, SAMPLE_RATE, SILENT_OBJECT
from avdemo.errors import AVDemoError

STAMPS_IN_DEB = "usr/share/tuxpaint/stamps"
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
PICTURE_MAX_SIDE = 192
PICTURE_COLOURS = 256
MAX_SOUND_S = 6.0
TRIM_FLOOR_DB = -40.0
RENDER_S = 3.5


@dataclass(frozen=True)
class Voice:
    """A General MIDI voice to render: ``bank`` 128 is the percussion channel (``program`` = kit)."""
    program: int
    style: str                      # melody | chords | drums | cymbals | drone | tweets
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
    """Mono float (T,) at any rate -> 16 kHz, trimmed, at most ``max_s`` (faded ends), peak 0.9, float32."""
    wav16 = AF.resample(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), sample_rate, SAMPLE_RATE).numpy()
    wav16 = trim_silence(wav16, SAMPLE_RATE)[: int(max_s * SAMPLE_RATE)]
    fade = np.linspace(0, 1, min(int(fade_s * SAMPLE_RATE), len(wav16) // 2), dtype=np.float32)
    wav16[: len(fade)] *= fade
    wav16[len(wav16) - len(fade):] *= fade[::-1]
    return (0.9 * wav16 / max(np.abs(wav16).max(), 1e-6)).astype(np.float32)


def write_ogg(path: Path, wav16: np.ndarray) -> None:
    sf.write(path, wav16, SAMPLE_RATE, format="OGG", subtype="VORBIS")


def shrink_picture(src: Path, dst: Path) -> None:
    """Crop to the alpha box, shrink to PICTURE_MAX_SIDE (premultiplied), save a 256-colour RGBA PNG."""
    image = Image.open(src).convert("RGBA")
    image = image.crop(image.getchannel("A").point(lambda a: 255 if a >= 16 else 0).getbbox())
    image = image.convert("RGBa")
    image.thumbnail((PICTURE_MAX_SIDE, PICTURE_MAX_SIDE), Image.LANCZOS)
    image.convert("RGBA").quantize(PICTURE_COLOURS, method=Image.Quantize.FASTOCTREE).save(dst, optimize=True)


def phrase(voice: Voice, rng: np.random.Generator, duration_s: float = RENDER_S) -> tuple[mido.MidiFile, str]:
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
    elif voice.style == "drone":
        note(0.0, int(rng.integers(voice.low, voice.high)), beats, velocity)
    else:
        raise ValueError(f"unknown style {voice.style!r}")

    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm)))
    track.append(mido.Message("program_change", channel=channel, program=voice.program))
    now = 0
    for beat, pitch, vel, on in sorted(events, key=lambda e: (e[0], e[3])):
        tick = int(round(min(beat, beats) * ticks_per_beat))
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, channel=channel, note=pitch, velocity=vel, time=tick - now))
        now = tick
    description = (f"fluidsynth FluidR3_GM bank {voice.bank} program {voice.program}, {voice.style}, "
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


def silent_stamps(stamps: Path) -> list[str]:
    """Stamp pictures that no category uses, less SILENT_EXCLUDE."""
    used = {p for c in CATEGORIES for p in c.pictures}
    found = sorted(str(p.relative_to(stamps).with_suffix("")) for p in stamps.rglob("*.png"))
    return [s for s in found if s not in used and not any(fnmatch.fnmatch(s, pat) for pat in SILENT_EXCLUDE)]


def build_pack(stamps: Path, out: Path = PACK_DIR, soundfont: Path = DEFAULT_SOUNDFONT, seed: int = 0) -> Path:
    """Write the curated pack into ``out`` (sounds/, pictures/, manifest.csv, LICENSE files)."""
    if not (stamps / "animals").is_dir():
        raise AVDemoError(f"{stamps} is not the stamps folder of tuxpaint-stamps-default (no animals/ in it)")
    if not soundfont.is_file() or shutil.which("fluidsynth") is None:
        raise AVDemoError(f"need fluidsynth and the soundfont {soundfont}: apt-get install fluidsynth fluid-soundfont-gm")
    for sub in ("sounds", "pictures"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)
    rows: list[dict[str, str]] = []
    rng = np.random.default_rng(seed)
    for category in tqdm(CATEGORIES, desc="categories"):
        for stamp in category.sounds:
            audio, rate = sf.read(stamps / f"{stamp}.ogg", dtype="float32", always_2d=True)
            name = f"sounds/{stamp_id(stamp)}.ogg"
            write_ogg(out / name, finish_sound(audio.mean(1), rate))
            rows.append(dict(file=name, category=category.name, kind="sound", source=f"{STAMPS_IN_DEB}/{stamp}.ogg"))
        for k in range(category.renders):
            voice = category.voices[k % len(category.voices)]
            midi, description = phrase(voice, rng)
            reverb = bool(rng.random() < 0.5)
            name = f"sounds/gm_{stamp_id(category.name.split(',')[0].replace(' ', '_'))}_{k:02d}.ogg"
            write_ogg(out / name, render(midi, soundfont, reverb))
            rows.append(dict(file=name, category=category.name, kind="sound",
                             source=f"{description}, reverb {'on' if reverb else 'off'}"))
        for stamp in category.pictures:
            name = f"pictures/{stamp_id(stamp)}.png"
            shrink_picture(stamps / f"{stamp}.png", out / name)
            rows.append(dict(file=name, category=category.name, kind="picture", source=f"{STAMPS_IN_DEB}/{stamp}.png"))
    for stamp in tqdm(silent_stamps(stamps), desc="silent objects"):
        name = f"pictures/{stamp_id(stamp)}.png"
        shrink_picture(stamps / f"{stamp}.png", out / name)
        rows.append(dict(file=name, category=SILENT_OBJECT, kind="picture", source=f"{STAMPS_IN_DEB}/{stamp}.png"))
    copy_licences(stamps, out)
    with open(out / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "category", "kind", "source"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out


def copy_licences(stamps: Path, out: Path) -> None:
    """Copy the Debian copyright files of both sources and the GPL-2 text next to the media."""
    doc = stamps.parents[1] / "doc/tuxpaint-stamps-default/copyright"
    if not doc.is_file():
        doc = Path("/usr/share/doc/tuxpaint-stamps-default/copyright")
    shutil.copyfile(doc, out / "COPYRIGHT-tuxpaint-stamps.txt")
    shutil.copyfile(Path("/usr/share/doc/fluid-soundfont-gm/copyright"), out / "COPYRIGHT-fluid-soundfont.txt")
    shutil.copyfile(Path("/usr/share/common-licenses/GPL-2"), out / "LICENSE-GPL-2.txt")


def stamps_from_deb(deb: Path, into: Path) -> Path:
    """Extract a tuxpaint-stamps-default .deb with ``dpkg -x`` into ``into``; returns its stamps folder."""
    subprocess.run(["dpkg", "-x", str(deb), str(into)], check=True)
    return into / STAMPS_IN_DEB
