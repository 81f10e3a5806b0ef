"""The committed media pack and the functions that rebuild it."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from avdemo.data.build_pack import (CATEGORIES, DEFAULT_SOUNDFONT, LOUDNESS_DBFS, PACK_DIR, SAMPLE_RATE, Voice,
                                    finish_sound, phrase, render, shrink_picture, write_ogg)
from avdemo.data import picture_sources as pics
from avdemo.data.catalog import read_manifest
from avdemo.data.pack_docs import LICENCE_FILES, SUBPACK_LICENCES, coverage
from avdemo.data.sound_sources import opensfx_entries
from avdemo.data.sources import SOURCES, fetch_all

SHARE_ALIKE = ("SA", "GFDL", "NC")


def test_pack_is_small_and_every_manifest_file_exists():
    rows = read_manifest()
    assert all((PACK_DIR / m.file).is_file() for m in rows)
    listed = {m.file for m in rows}
    media = [p for pattern in ("*/*", "*/*/*") for p in PACK_DIR.glob(pattern) if p.parent.name in ("sounds", "pictures")]
    assert {str(p.relative_to(PACK_DIR)) for p in media} == listed
    total = sum(p.stat().st_size for p in PACK_DIR.rglob("*") if p.is_file())
    assert total < 60 * 2 ** 20
    names = {p.name for p in PACK_DIR.iterdir()} | {p.name for sub in SUBPACK_LICENCES for p in (PACK_DIR / sub).iterdir()}
    assert {"ATTRIBUTION.md", "COPYRIGHT-tuxpaint-stamps-default.txt"} <= names
    assert set(LICENCE_FILES.values()) <= names


def test_manifest_records_provenance_and_share_alike_only_in_its_subpack():
    rows = read_manifest()
    packages = {s.package: s.version for s in SOURCES.values()}
    for m in rows:
        assert packages[m.package] == m.version and m.original and m.licence and m.style, m.file
        assert not any(tag in m.licence.upper() for tag in SHARE_ALIKE) or m.file.startswith("share-alike/"), m.file
        assert m.kind == "picture" or m.recording, m.file
        assert m.licence in LICENCE_FILES or m.package in ("openclipart-svg", "fonts-symbola"), m.file
    attribution = (PACK_DIR / "ATTRIBUTION.md").read_text()
    assert all(p in attribution for p in {m.package for m in rows})


def test_no_spoken_description_and_no_duplicate_sound():
    sounds = [m for m in read_manifest() if m.kind == "sound"]
    assert sounds and not any("_desc" in m.original for m in sounds)
    assert all(m.original.endswith((".ogg", ".flac", ".wav")) or m.original.startswith(("fluidsynth", '"')) for m in sounds)
    decoded = {sf.read(PACK_DIR / m.file, dtype="int16")[0].tobytes() for m in sounds}
    assert len(decoded) == len(sounds)


def test_pack_meets_the_coverage_target_for_pictures():
    counts = coverage(read_manifest())
    assert len(counts) == len(CATEGORIES) == 53
    assert sum(c.pictures >= 8 and c.picture_sources >= 3 for c in counts.values()) >= 45
    assert all(c.pictures >= 1 and c.sounds >= 1 for c in counts.values())


def test_opensfx_reader_splits_the_container(tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(100, np.float32), 8000)
    entries = [(b"\x08\"Cow\". \x00", wav.read_bytes()), (b"\x02x\x00", wav.read_bytes())]
    table, body, offset = b"", b"", 16
    for name, data in entries:
        table += (offset | 0x80000000).to_bytes(4, "little") + len(data).to_bytes(4, "little")
        body += name + data
        offset += len(name) + len(data)
    (tmp_path / "x.cat").write_bytes(table + body)
    found = opensfx_entries(tmp_path / "x.cat")
    assert [t for t, _ in found] == ['"Cow". ', "x"] and all(d == wav.read_bytes() for _, d in found)


def test_every_category_has_a_sound_and_a_picture_and_pack_sounds_are_16k_mono():
    rows = read_manifest()
    for category in CATEGORIES:
        kinds = {m.kind for m in rows if m.category == category.name}
        assert kinds == {"sound", "picture"}, category.name
    for m in rows[:5] + [m for m in rows if m.kind == "sound"][:5]:
        if m.kind == "sound":
            info = sf.info(PACK_DIR / m.file)
            assert (info.samplerate, info.channels, info.format) == (SAMPLE_RATE, 1, "OGG")
        else:
            image = Image.open(PACK_DIR / m.file).convert("RGBA")
            assert max(image.size) <= 192 and np.asarray(image)[..., 3].min() == 0


def test_shrink_picture_crops_to_alpha_box_and_keeps_transparency(tmp_path):
    rgba = np.zeros((400, 300, 4), np.uint8)
    rgba[100:300, 50:150] = (200, 30, 30, 255)
    rgba[150:160, 60:70, 3] = 0                                      # a hole stays transparent
    for y, x in ((100, 50), (285, 50), (100, 135), (285, 135)):
        rgba[y:y + 15, x:x + 15, 3] = 0                              # cut corners: an outline, not a rectangle
    Image.fromarray(rgba).save(tmp_path / "in.png")
    assert shrink_picture(tmp_path / "in.png", tmp_path / "out.png")
    out = np.asarray(Image.open(tmp_path / "out.png").convert("RGBA"))
    assert out.shape[:2] == (192, 96)                                # 200 x 100 box, long side 192
    assert out[..., 3].max() >= 250 and out[50:55, 11:17, 3].max() < 128
    assert out[out[..., 3] >= 250][:, 0].min() > 150
    rgba[:, :, 3] = 255                                              # an opaque rectangle (a photo) is refused
    Image.fromarray(rgba).save(tmp_path / "photo.png")
    assert not shrink_picture(tmp_path / "photo.png", tmp_path / "photo_out.png")
    assert not (tmp_path / "photo_out.png").exists()


def test_write_ogg_gives_the_same_bytes_twice(tmp_path):
    wav = (0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    write_ogg(tmp_path / "a.ogg", wav)
    write_ogg(tmp_path / "b.ogg", wav)
    assert (tmp_path / "a.ogg").read_bytes() == (tmp_path / "b.ogg").read_bytes()
    assert np.abs(sf.read(tmp_path / "a.ogg")[0] - wav).max() < 0.05


def test_finish_sound_trims_silence_and_resamples_to_16k():
    rate = 44100
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    wav = np.concatenate([np.zeros(rate), tone, np.zeros(2 * rate)]).astype(np.float32)
    out = finish_sound(wav, rate)
    assert abs(len(out) / SAMPLE_RATE - 1.1) < 0.05                  # 1 s tone + 2 x 50 ms margins
    assert np.isclose(20 * np.log10(np.sqrt(np.mean(out[1000:-1000] ** 2))), LOUDNESS_DBFS, atol=0.5)
    spiky = wav * 0.03
    spiky[rate + 100] = 0.5                                           # a click on a quiet tone: the peak is capped
    assert np.isclose(np.abs(finish_sound(spiky, rate)).max(), 0.95, atol=0.01)


@pytest.mark.parametrize("style", ["melody", "chords", "drums", "cymbals", "drone", "tweets", "hits"])
def test_phrase_is_deterministic_and_plays_notes(style):
    voice = Voice(0, style, bank=128 if style in ("drums", "cymbals") else 0)
    a, desc = phrase(voice, np.random.default_rng(1))
    b, _ = phrase(voice, np.random.default_rng(1))
    notes = [m for m in a.tracks[0] if m.type == "note_on"]
    assert notes and [str(m) for m in a.tracks[0]] == [str(m) for m in b.tracks[0]]
    assert 2.0 < a.length <= 3.6 and style in desc


@pytest.mark.skipif(shutil.which("fluidsynth") is None or not DEFAULT_SOUNDFONT.is_file(),
                    reason="needs fluidsynth and fluid-soundfont-gm")
def test_render_gives_16k_mono_audio():
    midi, _ = phrase(Voice(40, "melody", 55, 80), np.random.default_rng(0))
    wav = render(midi, DEFAULT_SOUNDFONT, reverb=False)
    assert wav.ndim == 1 and 1.5 * SAMPLE_RATE < len(wav) <= 3.5 * SAMPLE_RATE and np.abs(wav).max() > 0.05


def _icon_set(tmp_path, icons, aliases, chars):
    package = tmp_path / "package"
    package.mkdir()
    (package / "icons.json").write_text(json.dumps({"icons": icons, "aliases": aliases, "width": 32, "height": 32}))
    (package / "chars.json").write_text(json.dumps(chars))
    return pics.IconSet(tmp_path)


def test_emoji_matching_follows_code_points_and_skips_traps(tmp_path):
    square = {"body": '<rect width="20" height="30" fill="currentColor"/>'}
    fx = _icon_set(tmp_path, {"dogface": square, "guitar": square, "cricket-game": square},
                   {"cricket": {"parent": "cricket-game"}}, {"1f436": "dogface", "1f3b8": "guitar", "1f997": "cricket"})
    points = {"dog-face": {"1f436"}, "guitar": {"1f3b8"}, "cricket": {"1f997"}}
    found = {(d.category, d.original) for d in pics.emoji_drawings("fxemoji", fx, points, "x")}
    assert ("dog, fox barking", "dogface") in found and ("playing acoustic guitar", "guitar") in found
    assert not any(name == "cricket-game" for _, name in found)       # cricket alias -> cricket game: a trap
    assert "playing electric guitar" not in {c for c, _ in found}
    assert "turkey" not in pics.emoji_names("turkey gobbling", "streamline-emojis")
    assert "#000000" in fx.svg("guitar") and 'viewBox="0 0 32 32"' in fx.svg("guitar")


@pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="needs rsvg-convert (librsvg2-bin)")
def test_rasterised_svg_becomes_a_cropped_picture(tmp_path):
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32" width="32" height="32">'
           '<circle cx="16" cy="16" r="10" fill="#c00"/></svg>')
    pics.rasterise(pics.Drawing("x", "test", "circle", svg=svg), tmp_path / "raw.png")
    assert shrink_picture(tmp_path / "raw.png", tmp_path / "out.png")
    out = np.asarray(Image.open(tmp_path / "out.png").convert("RGBA"))
    assert out.shape[:2] == (192, 192) and out[0, 0, 3] == 0 and out[96, 96, 3] >= 250


def test_fetch_all_uses_given_unpacked_sources_without_downloading(tmp_path):
    for source in SOURCES.values():
        (tmp_path / "given" / source.folder).mkdir(parents=True)
    roots = fetch_all(tmp_path / "downloads", tmp_path / "given")
    assert roots == {key: tmp_path / "given" / s.folder for key, s in SOURCES.items()}
    assert not (tmp_path / "downloads").exists()
