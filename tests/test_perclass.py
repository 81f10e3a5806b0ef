"""The per-class table: every number equals a plain-loop transcription over the index's samples."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from appdata import app_data

from avdemo.index import load_index
from avdemo.perclass import COLUMNS, SIDES, per_class


@pytest.fixture
def index(tmp_path_factory, tiny_config):
    return load_index(app_data(tmp_path_factory.mktemp("appdata"), tiny_config).index)


def _top1_class(query: np.ndarray, gallery: np.ndarray, labels: np.ndarray) -> str:
    sims = [float(np.dot(query, g)) for g in gallery]
    best = 0
    for j, s in enumerate(sims):              # the first of equally similar items wins
        if s > sims[best]:
            best = j
    return labels[best]


def test_per_class_rows_equal_a_plain_loop(index):
    threshold = float(np.median(index.confidence("s_A")))
    rows = per_class(index, "s_A", threshold)
    pos = list(index.gallery)
    labels = np.array([index.class_names[i] for i in pos])
    assert sorted(r["class"] for r in rows) == sorted(set(labels)) and all(set(r) == {*COLUMNS, *SIDES} for r in rows)
    assert sum(r["pairs"] for r in rows) == len(pos) == int(index.sounding.sum())
    for row in rows:
        members = [i for i in pos if index.class_names[i] == row["class"]]
        ciou_ok = [index.scores["ciou"][i] >= 0.5 for i in members]
        assert row["cIoU success"] == round(100 * sum(ciou_ok) / len(members), 1)
        assert row["pointing game"] == round(100 * sum(index.scores["pointing_hit"][i] == 1 for i in members)
                                             / len(members), 1)
        a2i = [_top1_class(index.audio_emb[i], index.image_emb[pos], labels) == row["class"] for i in members]
        i2a = [_top1_class(index.image_emb[i], index.audio_emb[pos], labels) == row["class"] for i in members]
        assert row["R@1 audio→image"] == round(100 * sum(a2i) / len(members), 1)
        assert row["R@1 image→audio"] == round(100 * sum(i2a) / len(members), 1)
        fp = [index.scores["s_A"][i] >= threshold and not ok for i, ok in zip(members, ciou_ok)]
        assert row["false positives at threshold"] == round(100 * sum(fp) / len(members), 1)
    keys = [(r["cIoU success"], r["pointing game"], r["class"]) for r in rows]
    assert keys == sorted(keys)                                       # worst first


def test_cIoU_success_is_counted_at_the_index_s_own_cIoU_threshold(index):
    cious = index.scores["ciou"][index.gallery]
    ciou_threshold = float(np.median(cious))                   # half the pairs on each side
    assert index.ciou_threshold == 0.5 and ciou_threshold != 0.5
    own = dataclasses.replace(index, info={**index.info, "ciou_threshold": ciou_threshold})
    assert own.ciou_threshold == ciou_threshold
    rows = {r["class"]: r for r in per_class(own)}
    for name, row in rows.items():
        members = [i for i in index.gallery if index.class_names[i] == name]
        assert row["cIoU success"] == round(100 * sum(index.scores["ciou"][i] >= ciou_threshold for i in members)
                                            / len(members), 1)
    at_half = {r["class"]: r["cIoU success"] for r in per_class(index)}
    assert any(row["cIoU success"] != at_half[name] for name, row in rows.items())


def test_each_class_shows_its_switch_score_ear_eye_and_bridge_from_the_index(index):
    switch, diagnosis = index.info["switch"]["per_class"], index.info["diagnosis"]["per_class"]
    rows = {r["class"]: r for r in per_class(index)}
    assert switch and diagnosis
    for name, row in rows.items():
        assert row["switch: peak on the played object"] == switch.get(name, {}).get("pixels")
        assert (row["ear"], row["eye"], row["bridge sound→object"], row["bridge object→sound"]) == tuple(
            diagnosis.get(name, {}).get(m) for m in ("ear", "eye", "sound_to_object", "object_to_sound"))
    assert any(row["eye"] is not None for row in rows.values())
    plain = dataclasses.replace(index, info={k: v for k, v in index.info.items() if k not in ("switch", "diagnosis")})
    assert all(set(r) == set(COLUMNS) for r in per_class(plain))       # another dataset: no such columns


def test_without_a_threshold_there_is_no_false_positive_column_value(index):
    assert all(r["false positives at threshold"] is None for r in per_class(index))


def test_an_index_without_class_names_has_no_rows(index):
    nameless = dataclasses.replace(index, class_names=np.array([""] * len(index)))
    assert per_class(nameless) == []
