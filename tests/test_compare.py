"""Disagreements of two models on one dataset, against plain loops over the two indexes."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from appdata import app_data

from avdemo import AVDemoError, save_model
from avdemo.compare import DISAGREEMENT_DIRECTIONS, disagreements, false_alarm, summary_rows
from avdemo.index import ensure_index, load_index
from avdemo.model import AVLocalizer


@pytest.fixture
def indexes(tmp_path_factory, tiny_config):
    data = app_data(tmp_path_factory.mktemp("appdata"), tiny_config)
    torch.manual_seed(7)
    other = save_model(AVLocalizer(tiny_config).eval(), tmp_path_factory.mktemp("model-b") / "b.safetensors")
    return load_index(data.index), ensure_index(other, data.split, cache_dir=tmp_path_factory.mktemp("index-b"),
                                                progress=False)


def test_cIoU_disagreements_both_ways_equal_a_plain_loop(indexes):
    a, b = indexes
    sounding = [i for i in range(len(a)) if a.sounding[i]]
    gains = {i: b.scores["ciou"][i] - a.scores["ciou"][i] for i in sounding}
    fixes = disagreements(a, b, "ciou", "B fixes A")
    breaks = disagreements(a, b, "ciou", "B breaks A")
    assert fixes.samples.tolist() == sorted((i for i in sounding if gains[i] > 0), key=lambda i: (-gains[i], i))
    assert breaks.samples.tolist() == sorted((i for i in sounding if gains[i] < 0), key=lambda i: (gains[i], i))
    assert len(fixes.samples) + len(breaks.samples) > 0
    np.testing.assert_allclose(fixes.gain, fixes.b - fixes.a)
    rows = breaks.rows(a, "ciou")
    assert [r["id"] for r in rows] == [a.ids[i] for i in breaks.samples] and all(r["B better by"] < 0 for r in rows)


def test_pointing_disagreements_break_ties_by_cIoU(indexes):
    a, b = indexes
    result = disagreements(a, b, "pointing", "B fixes A")
    expected = [i for i in range(len(a)) if a.sounding[i] and b.scores["pointing_hit"][i] > a.scores["pointing_hit"][i]]
    ciou_gain = {i: b.scores["ciou"][i] - a.scores["ciou"][i] for i in expected}
    assert result.samples.tolist() == sorted(expected, key=lambda i: (-ciou_gain[i], i))
    assert set(result.gain.tolist()) <= {1.0}


def test_false_alarms_compare_percentiles_of_each_models_own_sounding_confidences(indexes):
    a, b = indexes
    for index in (a, b):
        conf = index.confidence("s_A")
        sounding_conf = [conf[j] for j in range(len(index)) if index.sounding[j]]
        expected = [sum(c < conf[i] for c in sounding_conf) / len(sounding_conf) for i in range(len(index))]
        np.testing.assert_allclose(false_alarm(index), expected)
    result = disagreements(a, b, "false alarm", "B fixes A")
    assert all(not a.sounding[i] for i in result.samples) and (result.gain > 0).all()
    assert (np.diff(result.gain) <= 0).all()


def test_a_model_agrees_with_itself_and_other_datasets_are_refused(indexes):
    a, _ = indexes
    for direction in DISAGREEMENT_DIRECTIONS:
        assert len(disagreements(a, a, "ciou", direction).samples) == 0
    shorter = dataclasses.replace(a, ids=a.ids[:-1])
    with pytest.raises(AVDemoError, match="different datasets"):
        disagreements(a, shorter)


def test_summary_rows_put_every_models_headline_numbers_side_by_side(indexes):
    a, b = indexes
    rows = {r["metric"]: r for r in summary_rows([a, b, a], ["one", "two", "three"])}
    loc_a, loc_b = a.info["summary"]["localization"], b.info["summary"]["localization"]
    assert rows["cIoU@0.5"]["one"] == round(loc_a["ciou_success"], 1) and rows["cIoU@0.5"]["two"] == round(loc_b["ciou_success"], 1)
    assert rows["pointing game"]["two - one"] == round(loc_b["pointing_game"] - loc_a["pointing_game"], 1)
    assert rows["pointing game"]["three - one"] == 0 and rows["cIoU AUC"]["three"] == rows["cIoU AUC"]["one"]
    fp = b.info["summary"]["false_positives"]["s_A"]
    assert rows["FP AP (s_A)"]["two"] == round(fp["AP"], 1) and "class R@1 audio→image" in rows
    recall = a.info["summary"]["retrieval"]["class"]["image_to_audio"]
    assert rows["class R@5 image→audio"]["one"] == round(recall["R@5"], 1)
    assert list(summary_rows([a], ["solo"])[0]) == ["metric", "solo"]
