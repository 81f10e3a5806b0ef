"""False positives: how confident the model is on sounding pairs and on each kind of non-sounding pair
(silence, noise, an off-screen sound), at a threshold and over all thresholds, and which samples are worst.

The definitions are SLAVC's, as ``avdemo.metrics.false_positive_metrics`` computes them: at threshold t a
sample is confident when its confidence >= t; TP = confident, sounding and cIoU >= the cIoU threshold;
FP = confident otherwise; FN = not confident and sounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import ciou_success, false_positive_metrics, roc_auc

ORDERINGS = ("non-sounding, most confident first", "sounding, lowest cIoU first", "false positives at the threshold")


@dataclass
class ThresholdStats:
    """What a threshold does, in percent."""

    threshold: float
    fpr: float                      # non-sounding pairs that are confident
    fpr_by_kind: dict[str, float]   # ... per kind of non-sounding pair
    recall: float                   # TP / (TP + FN)
    precision: float                # TP / (TP + FP), 100 when nothing is confident
    detected: float                 # sounding pairs that are confident, whatever their cIoU


def detection_summary(confidence: np.ndarray, sounding: np.ndarray, cious: np.ndarray,
                      ciou_threshold: float = 0.5) -> dict:
    """AP, max-F1 (percent), the best-F1 threshold and ROC-AUC of sounding vs non-sounding, and the curves."""
    fp = false_positive_metrics(confidence, sounding, cious, ciou_threshold)
    return {**fp, "roc_auc": roc_auc(confidence, sounding)}


def at_threshold(confidence: np.ndarray, sounding: np.ndarray, kinds: np.ndarray, curves: dict,
                 threshold: float) -> ThresholdStats:
    """Rates at ``threshold``, read from ``curves`` (``detection_summary(...)["curves"]``: precision, recall and
    fpr at every distinct confidence, high to low) so that they agree with AP and max-F1."""
    confidence, sounding, kinds = np.asarray(confidence), np.asarray(sounding, dtype=bool), np.asarray(kinds)
    thresholds = np.asarray(curves["thresholds"])
    j = int(np.searchsorted(-thresholds, -threshold, side="right")) - 1   # lowest listed threshold >= t
    confident = confidence >= threshold
    by_kind = {str(kind): 100.0 * float(confident[kinds == kind].mean()) for kind in sorted(set(kinds[~sounding]))}
    if j < 0:                                                             # above every confidence
        return ThresholdStats(threshold, 0.0, by_kind, 0.0, 100.0, 0.0)
    return ThresholdStats(threshold=threshold, fpr=100.0 * curves["fpr"][j], fpr_by_kind=by_kind,
                          recall=100.0 * curves["recall"][j], precision=100.0 * curves["precision"][j],
                          detected=100.0 * float(confident[sounding].mean()) if sounding.any() else float("nan"))


def outcomes(confidence: np.ndarray, sounding: np.ndarray, cious: np.ndarray, threshold: float,
             ciou_threshold: float = 0.5) -> np.ndarray:
    """(N,) "TP", "FP", "FN" or "TN" of each sample at ``threshold``."""
    confident = np.asarray(confidence) >= threshold
    sounding = np.asarray(sounding, dtype=bool)
    good = ciou_success(cious, sounding, ciou_threshold)
    return np.where(confident, np.where(good, "TP", "FP"), np.where(sounding, "FN", "TN"))


def worst_first(confidence: np.ndarray, sounding: np.ndarray, cious: np.ndarray, ordering: str,
                threshold: float | None = None, ciou_threshold: float = 0.5) -> np.ndarray:
    """Sample indices in an ``ORDERINGS`` entry's order, worst first: the most confident non-sounding pairs; the
    sounding pairs of lowest cIoU (the more confident first among equals); or every false positive at
    ``threshold`` (confident, and non-sounding or mislocalized), most confident first."""
    confidence, sounding = np.asarray(confidence, dtype=np.float64), np.asarray(sounding, dtype=bool)
    cious = np.asarray(cious, dtype=np.float64)
    if ordering == ORDERINGS[0]:
        keep = np.flatnonzero(~sounding)
        return keep[np.argsort(-confidence[keep], kind="stable")]
    if ordering == ORDERINGS[1]:
        keep = np.flatnonzero(sounding)
        return keep[np.lexsort((-confidence[keep], cious[keep]))]
    if ordering == ORDERINGS[2]:
        if threshold is None:
            raise ValueError("the false-positive ordering needs a threshold")
        keep = np.flatnonzero(outcomes(confidence, sounding, cious, threshold, ciou_threshold) == "FP")
        return keep[np.argsort(-confidence[keep], kind="stable")]
    raise ValueError(f"unknown ordering {ordering!r}; use one of {ORDERINGS}")
