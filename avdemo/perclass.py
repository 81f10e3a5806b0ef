"""Failures by category: the benchmark metrics of an index, one row per class, worst first.

Per class, over its sounding pairs: cIoU@0.5 (success rate), pointing game, and class-level R@1 in both
directions (a query hits when the best-ranked item of the whole sounding gallery has the query's class,
as ``avdemo.metrics.retrieval_recall``). With a confidence threshold, also the share of the class's
sounding pairs that count as false positives there (confident but mislocalized: SLAVC's definition, as
``avdemo.negatives``); non-sounding pairs have no class, so they have no row.
"""
from __future__ import annotations

import numpy as np

from .index import SampleIndex
from .metrics import best_match_rank

COLUMNS = ("class", "pairs", "cIoU@0.5", "pointing game", "R@1 audio→image", "R@1 image→audio",
           "false positives at threshold")


def _pct(mask: np.ndarray) -> float:
    return round(100.0 * float(np.mean(mask)), 1) if mask.size else float("nan")


def per_class(index: SampleIndex, confidence: str = "s_A", threshold: float | None = None,
              ciou_threshold: float = 0.5) -> list[dict[str, float | int | str | None]]:
    """One row per class of the index's sounding pairs (``COLUMNS``, in percent), lowest cIoU@0.5 first;
    "false positives at threshold" is None without a ``threshold``."""
    pos = index.gallery
    labels = np.asarray(index.class_names)[pos]
    if len(pos) == 0 or not all(labels):
        return []
    same = labels[:, None] == labels[None, :]
    image_emb, audio_emb = index.image_emb[pos], index.audio_emb[pos]
    hit_a2i = best_match_rank(audio_emb @ image_emb.T, same) < 1
    hit_i2a = best_match_rank(image_emb @ audio_emb.T, same) < 1
    cious = np.nan_to_num(index.scores["ciou"][pos], nan=-np.inf)
    good = cious >= ciou_threshold
    pointing = index.scores["pointing_hit"][pos] > 0.5
    confident = index.confidence(confidence)[pos] >= threshold if threshold is not None else None
    rows = []
    for name in sorted(set(labels)):
        m = labels == name
        rows.append({"class": str(name), "pairs": int(m.sum()), "cIoU@0.5": _pct(good[m]),
                     "pointing game": _pct(pointing[m]), "R@1 audio→image": _pct(hit_a2i[m]),
                     "R@1 image→audio": _pct(hit_i2a[m]),
                     "false positives at threshold": None if confident is None else _pct(confident[m] & ~good[m])})
    return sorted(rows, key=lambda r: (r["cIoU@0.5"], r["pointing game"], r["class"]))
