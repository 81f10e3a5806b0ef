"""Scene composition and scene audio of the embedded benchmark."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from avdemo.data.catalog import Catalog, Media
from avdemo.data.scenes import (SceneConfig, SplitMedia, compose, event_track, make_scene, mask_box,
                                negative_audio, scene_audio)

RATE = 16000


def _disc(colour: tuple[int, int, int], size: int = 120) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = np.where(np.hypot(xx, yy) <= size / 2, 255, 0)
    return rgba


@pytest.fixture
def disc_catalog() -> tuple[Catalog, SplitMedia]:
    """A pure-red disc that sounds (a 0.2 s tone) and a pure-blue disc that is silent."""
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(int(0.2 * RATE)) / RATE)).astype(np.float32)
    media = {"p/red": Media("p/red", "p/red.png", "red", "picture", "test"),
             "p/blue": Media("p/blue", "p/blue.png", "silent object", "picture", "test"),
             "s/tone": Media("s/tone", "s/tone.ogg", "red", "sound", "test")}
    catalog = Catalog(media, {"p/red": _disc((255, 0, 0)), "p/blue": _disc((0, 0, 255))}, {"s/tone": tone})
    split = SplitMedia(categories=("red",), pictures={"red": ("p/red",)}, sounds={"red": ("s/tone",)},
                       silent=("p/blue",))
    return catalog, split


def test_sounding_mask_is_the_drawn_alpha_shape_and_box_its_tight_box(disc_catalog):
    catalog, split = disc_catalog
    whole_discs = 0
    for n_objects, seeds in ((1, range(6)), (2, range(6, 12))):
        cfg = dataclasses.replace(SceneConfig(), objects_p=(0.0,) * (n_objects - 1) + (1.0,))
        for seed in seeds:
            image, labels, objects = compose(np.random.default_rng(seed), catalog, split, "red", cfg)
            mask = labels == 1
            assert objects[0].sounding and objects[0].category == "red"
            assert objects[0].box_px == mask_box(mask)
            red = image[mask].astype(int)
            assert np.mean((red[:, 0] > red[:, 1] + 40) & (red[:, 0] > red[:, 2] + 40)) > 0.95
            x1, y1, x2, y2 = objects[0].box_px
            if n_objects == 1 and x1 > 0 and y1 > 0 and x2 < 224 and y2 < 224:
                assert abs(mask.sum() / ((x2 - x1) * (y2 - y1)) - np.pi / 4) < 0.05   # a whole disc
                whole_discs += 1
            if len(objects) == 2:
                assert objects[1].box_px == mask_box(labels == 2) and not objects[1].sounding
                blue = image[labels == 2].astype(int)
                assert np.mean(blue[:, 2] > blue[:, 0] + 40) > 0.95
    assert whole_discs > 0


def test_sounding_object_stays_mostly_visible_and_off_centre(disc_catalog):
    catalog, split = disc_catalog
    cfg = SceneConfig()
    offsets = []
    for seed in range(20):
        _, labels, objects = compose(np.random.default_rng(seed), catalog, split, "red", cfg)
        assert 1 <= len(objects) <= 2 and sum(o.sounding for o in objects) == 1
        x1, y1, x2, y2 = objects[0].box_px
        offsets.append(np.hypot((x1 + x2) / 2 - 112, (y1 + y2) / 2 - 112) / 224)
    assert np.mean(np.array(offsets) >= cfg.central_radius - 0.05) > 0.6


@pytest.mark.parametrize("seconds", [0.1, 0.8, 5.0])
def test_event_covers_the_centre_second(seconds):
    cfg = SceneConfig()
    wav = np.random.default_rng(0).uniform(-0.5, 0.5, int(seconds * RATE)).astype(np.float32)
    for seed in range(10):
        track = event_track(np.random.default_rng(seed), wav, cfg)
        assert track.shape == (cfg.audio_samples,)
        loud = np.flatnonzero(np.abs(track) > 1e-4)
        assert loud[0] <= RATE and loud[-1] >= 2 * RATE - 1
        for quarter in np.split(track[RATE:2 * RATE], 4):   # gaps between repeats are shorter than 0.25 s
            assert np.abs(quarter).max() > 1e-3 or seconds < 0.5


def test_scene_audio_is_3s_and_event_loudness_in_range(disc_catalog):
    catalog, _ = disc_catalog
    cfg = SceneConfig()
    audio = scene_audio(np.random.default_rng(3), catalog.sounds["s/tone"], cfg)
    assert audio.dtype == np.float32 and audio.shape == (3 * RATE,) and np.abs(audio).max() <= 1
    centre_db = 20 * np.log10(np.sqrt(np.mean(audio[RATE:2 * RATE] ** 2)))
    assert cfg.event_dbfs[0] - 8 < centre_db < cfg.event_dbfs[1] + 3


def test_negative_audio_kinds():
    cfg = SceneConfig()
    rng = np.random.default_rng(0)
    assert not negative_audio(rng, "silence", cfg).any()
    noise = negative_audio(rng, "noise", cfg)
    assert cfg.noise_dbfs[0] - 1 < 20 * np.log10(np.sqrt(np.mean(noise ** 2))) < cfg.noise_dbfs[1] + 1
    offscreen = negative_audio(rng, "offscreen", cfg, np.ones(RATE, np.float32) * 0.1)
    assert np.abs(offscreen[RATE:2 * RATE]).max() > 0.01
    with pytest.raises(ValueError):
        negative_audio(rng, "offscreen", cfg)


def test_make_scene_is_a_pure_function_of_the_rng(disc_catalog):
    catalog, split = disc_catalog
    a = make_scene(np.random.default_rng(11), catalog, split, SceneConfig())
    b = make_scene(np.random.default_rng(11), catalog, split, SceneConfig())
    assert np.array_equal(a.image, b.image) and np.array_equal(a.audio, b.audio)
    assert np.array_equal(a.labels, b.labels) and a.objects == b.objects


def test_scenes_draw_categories_uniformly_whatever_their_number_of_recordings(disc_catalog):
    catalog, split = disc_catalog
    tone = catalog.sounds["s/tone"]
    media = dict(catalog.media, **{"p/green": Media("p/green", "p/green.png", "green", "picture", "test")})
    sounds = {"s/tone": tone, **{f"s/g{k}": tone * 0.5 for k in range(20)}}     # 1 red recording, 20 green
    rich = Catalog(media, dict(catalog.pictures, **{"p/green": _disc((0, 255, 0))}), sounds)
    rich_split = SplitMedia(categories=("green", "red"), pictures={"red": ("p/red",), "green": ("p/green",)},
                            sounds={"red": ("s/tone",), "green": tuple(f"s/g{k}" for k in range(20))},
                            silent=split.silent)
    cfg = SceneConfig(image_size=64)
    rng = np.random.default_rng(0)
    scenes = [make_scene(rng, rich, rich_split, cfg) for _ in range(300)]
    drawn = [s.objects[s.sounding].category for s in scenes]
    assert abs(drawn.count("red") / len(drawn) - 0.5) < 0.1            # not 1 in 21
