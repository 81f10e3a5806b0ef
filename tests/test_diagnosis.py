"""Ear / eye / bridge: each measure is 100 where the features name the category and chance where they
say nothing, and the diagnosis runs a model on a real built split."""
from __future__ import annotations

import json

import numpy as np
import pytest

from avdemo.benchmarks import load_vggss
from avdemo.data.splits import build_split
from avdemo.diagnosis import NEIGHBOUR_MEASURES, box_pooled_features, diagnose, diagnose_features, nearest_category_hits


def _case(informative: bool, rng=np.random.default_rng(0)):
    """6 categories; 4 objects per category in 12 scenes (distinct pictures); 3 recordings per category
    from 3 packages. Informative features: the category's one-hot with a little noise."""
    cats = [f"c{k}" for k in range(6)]
    object_cats = [c for c in cats for _ in range(4)]
    sound_cats = [c for c in cats for _ in range(3)]

    def features(labels):
        if not informative:
            return np.ones((len(labels), 8)) / np.sqrt(8)
        x = np.eye(8)[[cats.index(c) for c in labels]] + 0.05 * rng.random((len(labels), 8))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return dict(objects=features(object_cats), object_cats=object_cats, object_scene=[k % 12 for k in range(24)],
                object_picture=[f"p{k}" for k in range(24)], sounds=features(sound_cats), sound_cats=sound_cats,
                sound_package=[f"pkg{k % 3}" for k in range(18)])


def test_nearest_category_hits_ties_share_the_credit_and_exclude_disallowed_candidates():
    sim = np.array([[0.9, 0.9, 0.1, 0.95]])
    same = np.array([[True, False, True, True]])
    allowed = np.array([[True, True, True, False]])
    hits, chance, valid = nearest_category_hits(sim, same, allowed)
    assert hits[0] == 0.5 and chance[0] == pytest.approx(2 / 3) and valid[0]
    hits, _, valid = nearest_category_hits(sim, np.array([[False, False, False, True]]), allowed)
    assert not valid[0]                                        # its only match is not allowed: it does not count


def test_features_that_name_the_category_score_100_on_every_measure():
    report = diagnose_features(**_case(informative=True))
    assert all(report[m]["hits"] == 100.0 for m in NEIGHBOUR_MEASURES)
    assert all(row == {m: 100.0 for m in NEIGHBOUR_MEASURES} for row in report["per_class"].values())


def test_features_that_say_nothing_score_chance_on_every_measure():
    report = diagnose_features(**_case(informative=False))
    for m in NEIGHBOUR_MEASURES:
        assert report[m]["hits"] == pytest.approx(report[m]["chance"], abs=0.01)
    assert report["ear"]["chance"] == pytest.approx(100 * 2 / 12, abs=0.01)        # 2 of the 12 other-package
    assert report["object_to_sound"]["chance"] == pytest.approx(100 / 6, abs=0.01)


def test_box_pooling_weights_cells_by_their_share_of_the_box(tiny_model):
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    whole, left = box_pooled_features(tiny_model, frame, [[0, 0, 1, 1], [0, 0, 0.5, 1]])
    fmap = tiny_model.encode_image(tiny_model.preprocess_frames(frame)).detach()[0].numpy()   # (C, 4, 4)
    expect = lambda x: x / np.linalg.norm(x)
    np.testing.assert_allclose(whole, expect(fmap.mean((1, 2))), atol=1e-5)
    np.testing.assert_allclose(left, expect(fmap[:, :, :2].mean((1, 2))), atol=1e-5)


def test_diagnose_runs_a_model_on_a_built_split(tmp_path, tiny_model):
    folder = build_split("test", 12, tmp_path, seed=4, workers=1, progress=False)
    report = diagnose(tiny_model, load_vggss(folder))
    assert report["n_objects"] >= 12 and report["n_recordings"] > 12
    for m in NEIGHBOUR_MEASURES:
        assert 0 <= report[m]["hits"] <= 100 and 0 < report[m]["chance"] < 100
    assert set(report["per_class"]) >= {s["class"] for s in json.loads((folder / "vggss.json").read_text())}
