"""The switch test: constructed maps score what they must (chance, 100, 1/k), trials play recordings
training never used where the split has one, and the whole test runs on a real built split."""
from __future__ import annotations

import json

import numpy as np
import pytest

from avdemo.benchmarks import load_vggss
from avdemo.data.catalog import SILENT_OBJECT, load_catalog
from avdemo.data.splits import build_split, split_media
from avdemo.switch import (PEAK_PLACES, map_correlations, peak_share, scene_labels, score_trials, summarize_trials,
                           switch_test, switch_trials)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, catalog):
    """A real test split of 60 scenes, its samples, and its switch trials."""
    root = tmp_path_factory.mktemp("switch")
    folder = build_split("test", 60, root, seed=3, workers=1, catalog=catalog, progress=False)
    samples = load_vggss(folder)
    trials = switch_trials(samples, split_media(catalog, "test").sounds)
    labels = {i: scene_labels(samples[i]) for i in {t.sample for t in trials}}
    return folder, samples, trials, labels


def _summary(maps, trials, labels, samples):
    scores = score_trials(maps, trials, labels, samples)
    return summarize_trials(scores, scores, {}, trials), scores


def test_the_sounds_only_catalog_has_the_same_sounds_and_no_pictures(catalog):
    sounds = load_catalog(sounds_only=True)
    assert sounds.pictures == {} and sounds.sounds.keys() == catalog.sounds.keys() and sounds.media == catalog.media
    assert all(np.array_equal(sounds.sounds[k], catalog.sounds[k]) for k in catalog.sounds)


def test_peak_share_splits_ties_and_counts_single_peaks():
    region = np.zeros((1, 4, 4), bool)
    region[0, :2] = True
    assert peak_share(np.ones((1, 4, 4)), region)[0] == 0.5                # flat: the region's share
    one = np.zeros((1, 4, 4))
    one[0, 3, 3] = 1
    assert peak_share(one, region)[0] == 0.0 and peak_share(one, ~region)[0] == 1.0


def test_trials_are_every_sounding_category_object_of_scenes_with_two_or_more(scenes):
    _, samples, trials, labels = scenes
    assert len({t.sample for t in trials}) >= 10
    for i in {t.sample for t in trials}:
        objects = samples[i].meta["objects"]
        playable = [k + 1 for k, o in enumerate(objects) if o["category"] != SILENT_OBJECT]
        assert sorted(t.label for t in trials if t.sample == i) == playable and len(playable) >= 2
        assert set(np.unique(labels[i])) <= set(range(len(objects) + 1))
    for t in trials:
        assert samples[t.sample].meta["objects"][t.label - 1]["category"] == t.category
    singles = [i for i, s in enumerate(samples)
               if sum(o["category"] != SILENT_OBJECT for o in s.meta["objects"]) < 2]
    assert singles and not {t.sample for t in trials} & set(singles)


def test_a_constant_map_scores_exactly_chance(scenes):
    _, samples, trials, labels = scenes
    report, scores = _summary([np.zeros((224, 224))] * len(trials), trials, labels, samples)
    areas = [np.mean(labels[t.sample] == t.label) for t in trials]
    assert report["pixels"] == pytest.approx(100 * np.mean(areas), abs=0.01)
    assert report["pixels"] == report["chance_pixels"] and 0 < report["pixels"] < 50
    assert sum(scores.places[p] for p in PEAK_PLACES) == pytest.approx(np.ones(len(trials)))
    assert report["sound_dependence"] is None                              # flat maps correlate with nothing


def test_the_played_objects_own_mask_scores_100_and_the_maps_follow_the_sound(scenes):
    _, samples, trials, labels = scenes
    maps = [(labels[t.sample] == t.label).astype(np.float32) for t in trials]
    report, _ = _summary(maps, trials, labels, samples)
    assert report["pixels"] == report["box"] == report["peak_on"]["played object"] == 100.0
    assert report["peak_on"]["background"] == report["peak_on"]["another object"] == 0.0
    assert report["sound_dependence"] < 0


def test_a_map_that_always_shows_the_first_object_scores_one_in_k(scenes):
    _, samples, trials, labels = scenes
    first = {}
    for t in trials:
        first.setdefault(t.sample, t.label)
    maps = [(labels[t.sample] == first[t.sample]).astype(np.float32) for t in trials]
    report, scores = _summary(maps, trials, labels, samples)
    k = {i: sum(t.sample == i for t in trials) for i in first}
    assert report["pixels"] == pytest.approx(100 * len(first) / len(trials), abs=0.01)
    for i in first:                                                        # 1/k in each scene
        idx = [j for j, t in enumerate(trials) if t.sample == i]
        assert scores.pixels[idx].mean() == pytest.approx(1 / k[i])
    assert report["sound_dependence"] == pytest.approx(1.0)              # the sound changes nothing


def test_map_correlations_of_identical_and_opposite_maps():
    a = np.random.default_rng(0).random((8, 8))
    assert map_correlations(np.stack([a, a, -a])) == pytest.approx([1.0, -1.0, -1.0])


def test_trials_play_a_recording_training_never_used_where_the_split_has_one(scenes, catalog):
    _, samples, _, _ = scenes
    pools = split_media(catalog, "test").sounds
    seen = {"pictures": set(), "recordings": {r for pool in pools.values() for r in pool[1:]}}
    trials = switch_trials(samples, pools, seen)
    assert trials and all(t.recording == pools[t.category][0] for t in trials)
    assert not any(t.recording_seen for t in trials) and not any(t.picture_seen for t in trials)
    all_seen = {"pictures": set(), "recordings": {r for pool in pools.values() for r in pool}}
    assert all(t.recording_seen for t in switch_trials(samples, pools, all_seen))


def test_switch_test_runs_a_model_on_a_built_split_with_blind_maps_and_media_groups(scenes, tiny_model, tmp_path):
    folder, samples, trials, _ = scenes
    train_meta = tmp_path / "train.json"
    train_meta.write_text(json.dumps([{"audio_media": trials[0].recording, "picture_media": trials[0].picture,
                                       "objects": [{"picture": trials[0].picture}]}]))
    report = switch_test(tiny_model, samples, train_meta, batch_size=16)
    assert report["n_trials"] == len(trials) and report["n_scenes"] == len({t.sample for t in trials})
    assert set(report["blind_pixels"]) == {"centre prior", "all objects", "largest object"}
    assert 0 <= report["pixels"] <= 100 and -1 <= report["sound_dependence"] <= 1
    assert sum(report["peak_on"].values()) == pytest.approx(100, abs=0.05)
    assert sum(g["n"] for g in report["by_media"].values()) == len(trials)
    assert any(name.startswith("picture seen") for name in report["by_media"])
    assert sum(c["n"] for c in report["per_class"].values()) == len(trials)
    again = switch_test(tiny_model, samples, train_meta, batch_size=16)
    assert again == report                                                 # trials and renders are fixed
