"""Models on one dataset: their headline numbers side by side (any number of models), and where two of
them disagree, sample by sample, both ways.

``disagreements(a, b, measure)`` compares the indexes of models A and B over the same dataset split:
- ``ciou``: the cIoU of sounding pairs (higher is better);
- ``pointing``: the pointing-game hit of sounding pairs (ties broken by the cIoU difference);
- ``false alarm``: on non-sounding pairs, how sounding the pair looks to each model: the share of that
  model's own sounding pairs whose confidence is below the pair's (lower is better). A percentile, so
  models whose confidences live on different scales compare fairly.
"B fixes A" lists the samples where B does better, most first; "B breaks A" where it does worse.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import AVDemoError
from .index import SampleIndex

DISAGREEMENT_MEASURES = ("ciou", "pointing", "false alarm")
DISAGREEMENT_DIRECTIONS = ("B fixes A", "B breaks A")


@dataclass
class Disagreements:
    """Samples where B does better (or worse) than A, most first, with both models' values."""

    samples: np.ndarray      # (K,) sample indices into both indexes
    a: np.ndarray            # (K,) A's value of the measure
    b: np.ndarray            # (K,) B's value
    gain: np.ndarray         # (K,) how much better B does (negative when it breaks A)

    def rows(self, index: SampleIndex, measure: str) -> list[dict]:
        """One row per sample for a table or an export (values rounded to 4 digits)."""
        return [{"sample": int(i), "id": index.ids[i], "class": str(index.class_names[i]), "kind": str(index.kinds[i]),
                 f"A {measure}": round(float(a), 4), f"B {measure}": round(float(b), 4),
                 "B better by": round(float(g), 4)}
                for i, a, b, g in zip(self.samples, self.a, self.b, self.gain)]


def false_alarm(index: SampleIndex, confidence: str = "s_A") -> np.ndarray:
    """(N,) for each pair, the share of the index's sounding pairs whose confidence is below its own."""
    conf = index.confidence(confidence)
    reference = np.sort(conf[index.sounding])
    return np.searchsorted(reference, conf, side="left") / max(len(reference), 1)


def disagreements(a: SampleIndex, b: SampleIndex, measure: str = "ciou", direction: str = DISAGREEMENT_DIRECTIONS[0],
                  confidence: str = "s_A") -> Disagreements:
    """Where model B (index ``b``) does better (``"B fixes A"``) or worse (``"B breaks A"``) than model A
    on the same dataset, by ``measure`` (``DISAGREEMENT_MEASURES``); samples where they agree are left out."""
    if measure not in DISAGREEMENT_MEASURES or direction not in DISAGREEMENT_DIRECTIONS:
        raise AVDemoError(f"measure must be one of {DISAGREEMENT_MEASURES} and direction one of "
                          f"{DISAGREEMENT_DIRECTIONS}")
    if a.ids != b.ids:
        raise AVDemoError("the two indexes are of different datasets (their sample ids differ)")
    if measure == "false alarm":
        keep = np.flatnonzero(~a.sounding)
        va, vb = false_alarm(a, confidence)[keep], false_alarm(b, confidence)[keep]
        gain, tie_break = va - vb, np.zeros(len(keep))
    else:
        keep = np.flatnonzero(a.sounding)
        column = "ciou" if measure == "ciou" else "pointing_hit"
        va, vb = a.scores[column][keep], b.scores[column][keep]
        gain = vb - va
        tie_break = b.scores["ciou"][keep] - a.scores["ciou"][keep]
    sign = 1.0 if direction == DISAGREEMENT_DIRECTIONS[0] else -1.0
    chosen = np.flatnonzero(sign * gain > 0)
    order = chosen[np.lexsort((keep[chosen], -sign * tie_break[chosen], -sign * gain[chosen]))]
    return Disagreements(samples=keep[order], a=va[order], b=vb[order], gain=gain[order])


def headline_numbers(summary: dict) -> dict[str, float]:
    """The headline numbers of an index summary (``index.info["summary"]``), by name, in percent: the one
    reading of a summary that the app's cards, recall lines and comparison tables use."""
    out = {}
    if loc := summary.get("localization"):
        out |= {"cIoU@0.5": loc["ciou_success"], "cIoU AUC": loc["ciou_auc"], "pointing game": loc["pointing_game"]}
    for level, directions in (summary.get("retrieval") or {}).items():
        for direction, recall in directions.items():
            out |= {f"{level} R@{k} {direction.replace('_to_', '→')}": v for k, v in
                    ((name[2:], value) for name, value in recall.items() if name.startswith("R@"))}
    for measure, fp in (summary.get("false_positives") or {}).items():
        out |= {f"FP AP ({measure})": fp["AP"], f"FP max-F1 ({measure})": fp["max_F1"],
                f"sounding ROC-AUC ({measure})": fp["roc_auc"]}
    return {name: value for name, value in out.items() if value is not None}


def summary_rows(indexes: list[SampleIndex], labels: list[str]) -> list[dict]:
    """The models' headline numbers on one dataset, side by side (a column per model, named by
    ``labels``), with each model's difference from the first."""
    numbers = [headline_numbers(index.info["summary"]) for index in indexes]
    rows = []
    for name in numbers[0]:
        if all(name in n for n in numbers):
            row = {"metric": name} | {label: round(n[name], 1) for label, n in zip(labels, numbers)}
            rows.append(row | {f"{label} - {labels[0]}": round(n[name] - numbers[0][name], 1)
                               for label, n in zip(labels[1:], numbers[1:])})
    return rows
