"""Audio-blind baselines and the oracle under the reference metrics."""
from __future__ import annotations

import json

from avdemo.data.baselines import METHODS, baseline_table, score_entries, write_baselines


def _entry(boxes, sounding=0, open_set=None):
    objects = [{"category": f"c{k}", "picture": f"p{k}", "bbox": b, "sounding": k == sounding,
                "area": (b[2] - b[0]) * (b[3] - b[1])} for k, b in enumerate(boxes)]
    entry = {"file": "x", "class": "c0", "bbox": [boxes[sounding]], "objects": objects,
             "is_largest": max(objects, key=lambda o: o["area"])["sounding"], "is_most_central": False}
    if open_set:
        entry["open_set"] = open_set
    return entry


def test_oracle_box_hits_when_the_box_covers_a_quarter_to_most_of_the_image():
    scores = {area: score_entries([_entry([[0, 0, area, 1.0]])])["oracle (box)"]["cIoU@0.5"]
              for area in (0.2, 0.3, 0.45, 0.7, 0.9)}
    assert scores == {0.2: 0.0, 0.3: 100.0, 0.45: 100.0, 0.7: 100.0, 0.9: 100.0}


def test_binary_box_oracle_fails_above_half_the_image_because_ties_at_the_median_drop():
    scores = score_entries([_entry([[0, 0, 0.3, 1.0]]), _entry([[0, 0, 0.7, 1.0]])])
    assert scores["oracle (binary box)"]["cIoU@0.5"] == 50.0


def test_audio_blind_maps_miss_an_off_centre_sounding_object_beside_a_larger_central_one():
    entry = _entry([[0.0, 0.0, 0.5, 0.6], [0.3, 0.2, 1.0, 1.0]], sounding=0)
    scores = score_entries([entry])
    assert scores["centre prior"]["cIoU@0.5"] == 0.0
    assert scores["largest object"]["cIoU@0.5"] == 0.0
    assert scores["all objects"]["cIoU@0.5"] == 0.0
    assert scores["oracle (box)"]["cIoU@0.5"] == 100.0 and scores["oracle (box)"]["pointing_game"] == 100.0


def test_centred_single_object_is_won_by_every_baseline():
    scores = score_entries([_entry([[0.2, 0.2, 0.8, 0.8]])])
    assert all(scores[m]["cIoU@0.5"] == 100.0 for m in ("centre prior", "all objects", "largest object"))


def test_write_baselines_scores_the_split_and_each_open_set_group(tmp_path):
    entries = [_entry([[0, 0, 0.6, 0.6]], open_set="heard"), _entry([[0.1, 0.1, 0.9, 0.7]], open_set="unheard")]
    (tmp_path / "vggss.json").write_text(json.dumps(entries))
    result = json.loads(write_baselines(tmp_path).read_text())
    assert set(result["scores"]) == set(METHODS) == set(result["scores_heard"]) == set(result["scores_unheard"])
    assert result["stats"]["scenes"] == 2
    assert baseline_table(result["scores"]).count("\n") == len(METHODS) + 1
