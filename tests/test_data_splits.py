"""Splits of the embedded benchmark: held-out media, determinism, the VGG-SS layout on disk."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from avdemo.benchmarks import load_vggss
from avdemo.data.catalog import load_catalog
from avdemo.data.scenes import mask_box
from avdemo.data.splits import (HELDOUT_POOLS, HELDOUT_SOUND_STYLES, HELDOUT_STYLES, RETIRED, build_split,
                                ensure_split, heard_categories, heldout_style, media_pools, norm_coord, pool_table,
                                split_media)
from avdemo.metrics import gt_map_from_boxes

N = 6


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def test_split(catalog, tmp_path_factory):
    return build_split("test", N, tmp_path_factory.mktemp("embedded"), seed=5, workers=1, catalog=catalog,
                       progress=False)


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "build.json"}


def test_same_seed_gives_the_same_bytes_whatever_the_workers(catalog, test_split, tmp_path):
    again = build_split("test", N, tmp_path / "a", seed=5, workers=2, catalog=catalog, progress=False)
    assert _files(again) == _files(test_split)
    other = build_split("test", 2, tmp_path / "b", seed=6, workers=1, catalog=catalog, progress=False)
    assert (other / "frames/test_000000.jpg").read_bytes() != (test_split / "frames/test_000000.jpg").read_bytes()
    assert not list(tmp_path.glob("a/.*")) and not list(tmp_path.glob("b/.*"))      # no temp folders left


def test_heldout_media_never_reach_train(catalog):
    pools = media_pools(catalog)
    train, test = split_media(catalog, "train"), split_media(catalog, "test")
    for category in catalog.categories:
        for kind, tr, te in (("sound", train.sounds, test.sounds), ("picture", train.pictures, test.pictures)):
            ids = catalog.ids(category, kind)
            if len(ids) > 1:                                 # only a category's single non-style medium is shared
                assert tr[category] and te[category]
                assert all(pools[i] == "shared" for i in set(tr[category]) & set(te[category]))
                assert set(te[category]) <= {i for i in ids if pools[i] in (*HELDOUT_POOLS, "shared")}
            else:
                assert tr[category] == te[category] == tuple(ids)
    assert train.silent and test.silent and not set(train.silent) & set(test.silent)


def test_heldout_styles_never_reach_train_and_reach_test(catalog):
    pools = media_pools(catalog)
    train, test = split_media(catalog, "train"), split_media(catalog, "test")
    train_ids = {i for ids in (*train.pictures.values(), *train.sounds.values()) for i in ids}
    test_ids = {i for ids in (*test.pictures.values(), *test.sounds.values()) for i in ids}
    styled = {i for i, pool in pools.items() if pool == "style"}
    assert styled and not styled & train_ids and styled <= test_ids | set(test.silent)
    assert {catalog.media[i].style for i in styled} >= set(HELDOUT_STYLES) | set(HELDOUT_SOUND_STYLES)
    assert all(heldout_style(catalog.media[i]) for i in styled)
    for category in catalog.categories:                     # every category keeps training media of each kind
        assert train.pictures[category] and train.sounds[category]


def test_a_retired_medium_keeps_its_place_so_training_media_stay_in_training(catalog):
    pools = media_pools(catalog)
    assert not set(RETIRED) & set(pools) and not set(RETIRED) & set(catalog.media)
    assert pools["sounds/animals_mammals_deer_caribou"] == pools["sounds/animals_mammals_deer_doe"] == "train"


def test_pool_table_counts_every_medium_of_each_category(catalog):
    rows = pool_table(catalog).splitlines()[2:]
    assert len(rows) == len(catalog.categories)
    first = rows[0].split(" | ")
    assert first[0] == f"| {catalog.categories[0]}" and int(first[1]) >= 1


def test_built_test_scenes_use_only_heldout_or_shared_media(catalog, test_split):
    pools = media_pools(catalog, seed=5)
    for entry in json.loads((test_split / "vggss.json").read_text()):
        used = [entry["audio_media"]] + [o["picture"] for o in entry["objects"]]
        assert all(pools[m] in (*HELDOUT_POOLS, "shared") for m in used)


def test_layout_is_vggss_and_the_benchmark_loader_reads_it(test_split):
    entries = json.loads((test_split / "vggss.json").read_text())
    assert [e["file"] for e in entries] == (test_split / "test.txt").read_text().split()
    for e in entries:
        image = Image.open(test_split / "frames" / f"{e['file']}.jpg")
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (224, 224))
        info = sf.info(test_split / "audio" / f"{e['file']}.wav")
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 48000)
        assert sum(o["sounding"] for o in e["objects"]) == 1 and e["class"] != "silent object"
    with open(test_split / "test_plus_silent.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["video", "audio", "label", "kind"] and len(rows) == N
    assert sorted(r["kind"] for r in rows) == sorted(["silence", "noise", "offscreen"] * (N // 3))
    classes = {e["file"]: {o["category"] for o in e["objects"]} for e in entries}
    for r in rows:
        wav, rate = sf.read(test_split / "audio" / f"{r['audio']}.wav")
        assert rate == 16000 and len(wav) == 48000 and r["label"] == "non-sounding"
        assert (np.abs(wav).max() == 0) == (r["kind"] == "silence")
    samples = load_vggss(test_split, negatives=test_split / "test_plus_silent.csv")
    assert len(samples) == 2 * N and sum(s.sounding for s in samples) == N
    assert all(s.image_path.is_file() and s.audio_path.is_file() for s in samples)
    assert all(classes[s.meta["video"]] for s in samples if not s.sounding)


def test_boxes_are_the_tight_boxes_of_the_saved_masks(test_split):
    for e in json.loads((test_split / "vggss.json").read_text()):
        labels = np.asarray(Image.open(test_split / e["mask"]))
        sounding = labels == e["mask_value"]
        x1, y1, x2, y2 = mask_box(sounding)
        box = np.zeros((224, 224))
        box[y1:y2, x1:x2] = 1
        assert np.array_equal(gt_map_from_boxes(e["bbox"]), box)
        for k, o in enumerate(e["objects"]):
            assert np.array_equal(gt_map_from_boxes([o["bbox"]]) > 0, _box_map(labels == k + 1))
        assert e["objects"][e["mask_value"] - 1]["sounding"]


def _box_map(mask):
    x1, y1, x2, y2 = mask_box(mask)
    out = np.zeros(mask.shape, bool)
    out[y1:y2, x1:x2] = True
    return out


def test_norm_coord_survives_the_reference_int_scaling():
    assert all(int(norm_coord(px, 224) * 224) == px for px in range(225))


def test_openset_marks_half_the_categories_heard(catalog, tmp_path):
    heard = heard_categories(catalog)
    assert 0 < len(heard) - len(catalog.categories) / 2 <= 1
    folder = build_split("openset", 8, tmp_path, workers=1, catalog=catalog, progress=False)
    entries = json.loads((folder / "vggss.json").read_text())
    for group in ("heard", "unheard"):
        ids = set((folder / f"{group}_test.txt").read_text().split())
        assert ids == {e["file"] for e in entries if (e["class"] in heard) == (group == "heard")}


def test_ensure_split_builds_a_missing_split_once(catalog, tmp_path, monkeypatch):
    import avdemo.data.splits as splits

    calls = []
    real = splits.build_split
    monkeypatch.setattr(splits, "build_split",
                        lambda *a, **k: calls.append(a) or real(*a, catalog=catalog, workers=1, progress=False, **k))
    folder = ensure_split("val", tmp_path, n=3)
    assert folder == tmp_path / "val" and (folder / "baselines.json").is_file()
    assert ensure_split("val", tmp_path, n=3) == folder and len(calls) == 1
