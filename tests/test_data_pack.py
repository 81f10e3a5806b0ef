"""The committed media pack and the functions that rebuild it."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from avdemo.data.build_pack import (CATEGORIES, PACK_DIR, SAMPLE_RATE, Voice, finish_sound, phrase, render,
                                    shrink_picture, DEFAULT_SOUNDFONT)
from avdemo.data.catalog import read_manifest


def test_pack_is_small_and_every_manifest_file_exists():
    rows = read_manifest()
    assert all((PACK_DIR / m.file).is_file() for m in rows)
    total = sum(p.stat().st_size for p in PACK_DIR.rglob("*") if p.is_file())
    assert total < 10.5 * 2 ** 20
    assert {"LICENSE-GPL-2.txt", "ATTRIBUTION.md", "COPYRIGHT-tuxpaint-stamps.txt"} <= {p.name for p in PACK_DIR.iterdir()}


def test_no_spoken_description_is_used_as_a_sound():
    sounds = [m for m in read_manifest() if m.kind == "sound"]
    assert sounds and not any("_desc" in m.source for m in sounds)
    assert all(m.source.endswith(".ogg") or m.source.startswith("fluidsynth") for m in sounds)


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
    Image.fromarray(rgba).save(tmp_path / "in.png")
    shrink_picture(tmp_path / "in.png", tmp_path / "out.png")
    out = np.asarray(Image.open(tmp_path / "out.png").convert("RGBA"))
    assert out.shape[:2] == (192, 96)                                # 200 x 100 box, long side 192
    assert out[..., 3].max() >= 250 and out[50:55, 11:17, 3].max() < 128
    assert out[out[..., 3] >= 250][:, 0].min() > 150


def test_finish_sound_trims_silence_and_resamples_to_16k():
    rate = 44100
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    wav = np.concatenate([np.zeros(rate), tone, np.zeros(2 * rate)]).astype(np.float32)
    out = finish_sound(wav, rate)
    assert abs(len(out) / SAMPLE_RATE - 1.1) < 0.05                  # 1 s tone + 2 x 50 ms margins
    assert np.isclose(np.abs(out).max(), 0.9, atol=0.02)


@pytest.mark.parametrize("style", ["melody", "chords", "drums", "cymbals", "drone", "tweets"])
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
    assert wav.ndim == 1 and 1.5 * SAMPLE_RATE < len(wav) <= 3.5 * SAMPLE_RATE and np.abs(wav).max() > 0.5
