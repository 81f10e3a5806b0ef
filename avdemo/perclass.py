"""Failures by category: the benchmark metrics of an index, one row per class, worst first.

Per class, over its sounding pairs: cIoU success (the share localized at the index's own cIoU threshold,
``SampleIndex.ciou_threshold``: 0.5, the papers' cIoU@0.5, for every model this project ships; the column
is not named by the threshold so that its name stays one thing), pointing game, and class-level R@1 in
both directions (a query hits when the best-ranked item of the whole sounding gallery has the query's
class, as ``avdemo.metrics.retrieval_recall``). With a confidence threshold, also the share of the class's
sounding pairs that count as false positives there (confident but mislocalized: SLAVC's definition, as
``avdemo.negatives``); non-sounding pairs have no class, so they have no row. On our data, also which
side fails for the class: its switch-test score and its ear, eye and bridge (``SIDES``).
"""
from __future__ import annotations

import numpy as np

from .index import SampleIndex
from .metrics import best_match_rank, ciou_success

COLUMNS = ("class", "pairs", "cIoU success", "pointing game", "R@1 audio→image", "R@1 image→audio",
           "false positives at threshold")
# on our data (the index's switch test and diagnosis, ``avdemo.switch``, ``avdemo.diagnosis``): column ->
# (report, key of its per-class row)
SIDES = {"switch: peak on the played object": ("switch", "pixels"), "ear": ("diagnosis", "ear"),
         "eye": ("diagnosis", "eye"), "bridge sound→object": ("diagnosis", "sound_to_object"),
         "bridge object→sound": ("diagnosis", "object_to_sound")}


def _pct(mask: np.ndarray) -> float:
    return round(100.0 * float(np.mean(mask)), 1) if mask.size else float("nan")


def per_class(index: SampleIndex, confidence: str = "s_A",
              threshold: float | None = None) -> list[dict[str, float | int | str | None]]:
    """One row per class of the index's sounding pairs (``COLUMNS``, in percent), lowest cIoU success first;
    "false positives at threshold" is None without a ``threshold``. Where the index has the switch test
    and the diagnosis (our data), each row also has the ``SIDES`` columns (None for a class they lack)."""
    pos = index.gallery
    labels = np.asarray(index.class_names)[pos]
    if len(pos) == 0 or not all(labels):
        return []
    same = labels[:, None] == labels[None, :]
    image_emb, audio_emb = index.image_emb[pos], index.audio_emb[pos]
    hit_a2i = best_match_rank(audio_emb @ image_emb.T, same) < 1
    hit_i2a = best_match_rank(image_emb @ audio_emb.T, same) < 1
    good = ciou_success(index.scores["ciou"][pos], ciou_threshold=index.ciou_threshold)
    pointing = index.scores["pointing_hit"][pos] > 0.5
    confident = index.confidence(confidence)[pos] >= threshold if threshold is not None else None
    rows = []
    for name in sorted(set(labels)):
        m = labels == name
        rows.append({"class": str(name), "pairs": int(m.sum()), "cIoU success": _pct(good[m]),
                     "pointing game": _pct(pointing[m]), "R@1 audio→image": _pct(hit_a2i[m]),
                     "R@1 image→audio": _pct(hit_i2a[m]),
                     "false positives at threshold": None if confident is None else _pct(confident[m] & ~good[m]),
                     **{column: index.info[report]["per_class"].get(str(name), {}).get(key)
                        for column, (report, key) in SIDES.items() if report in index.info}})
    return sorted(rows, key=lambda r: (r["cIoU success"], r["pointing game"], r["class"]))
