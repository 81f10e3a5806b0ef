"""False-positive statistics: rates at a threshold agree with direct counts and with avdemo.metrics."""
from __future__ import annotations

import numpy as np
import pytest

from avdemo import metrics as M
from avdemo import negatives as N


@pytest.fixture
def random_set():
    rng = np.random.default_rng(0)
    n = 200
    sounding = rng.random(n) < 0.5
    kinds = np.where(sounding, "sounding", rng.choice(["silence", "noise", "offscreen"], n))
    confidence = np.round(rng.random(n) + 0.3 * sounding, 2)          # rounded: ties on purpose
    cious = np.where(sounding, rng.random(n), np.nan)
    return confidence, sounding, kinds, cious


def test_rates_at_a_threshold_equal_direct_counts(random_set):
    confidence, sounding, kinds, cious = random_set
    curves = N.detection_summary(confidence, sounding, cious)["curves"]
    for t in (0.05, 0.37, 0.5, 0.815, 1.1):
        s = N.at_threshold(confidence, sounding, kinds, curves, t)
        confident = confidence >= t
        tp = (confident & sounding & (np.nan_to_num(cious, nan=-1) >= 0.5)).sum()
        fp, fn = confident.sum() - tp, (~confident & sounding).sum()
        assert s.recall == pytest.approx(100 * tp / (tp + fn))
        assert s.precision == pytest.approx(100 * tp / (tp + fp))
        assert s.fpr == pytest.approx(100 * confident[~sounding].mean())
        assert s.detected == pytest.approx(100 * confident[sounding].mean())
        for kind in ("silence", "noise", "offscreen"):
            assert s.fpr_by_kind[kind] == pytest.approx(100 * confident[kinds == kind].mean())


def test_a_threshold_above_every_confidence_finds_nothing(random_set):
    confidence, sounding, kinds, cious = random_set
    s = N.at_threshold(confidence, sounding, kinds, N.detection_summary(confidence, sounding, cious)["curves"], 5.0)
    assert (s.fpr, s.recall, s.precision, s.detected) == (0.0, 0.0, 100.0, 0.0)


def test_summary_is_the_metrics_module_plus_roc_auc(random_set):
    confidence, sounding, _, cious = random_set
    s = N.detection_summary(confidence, sounding, cious)
    fp = M.false_positive_metrics(confidence, sounding, cious)
    assert (s["AP"], s["max_F1"], s["best_threshold"]) == (fp["AP"], fp["max_F1"], fp["best_threshold"])
    assert s["roc_auc"] == M.roc_auc(confidence, sounding)


def test_worst_first_orderings_on_a_hand_made_set():
    confidence = np.array([0.9, 0.2, 0.8, 0.5, 0.7, 0.1])
    sounding = np.array([True, True, False, True, False, False])
    cious = np.array([0.3, 0.3, np.nan, 0.9, np.nan, np.nan])
    assert N.worst_first(confidence, sounding, cious, N.ORDERINGS[0]).tolist() == [2, 4, 5]
    assert N.worst_first(confidence, sounding, cious, N.ORDERINGS[1]).tolist() == [0, 1, 3]   # ties: confident first
    assert N.worst_first(confidence, sounding, cious, N.ORDERINGS[2], threshold=0.6).tolist() == [0, 2, 4]
    assert N.outcomes(confidence, sounding, cious, 0.6).tolist() == ["FP", "FN", "FP", "FN", "FP", "TN"]
    assert N.outcomes(confidence, sounding, cious, 0.5).tolist()[3] == "TP"
    with pytest.raises(ValueError, match="unknown ordering"):
        N.worst_first(confidence, sounding, cious, "best first")


def test_a_sounding_sample_at_exactly_the_ciou_threshold_is_a_true_positive():
    """cIoU >= the cIoU threshold localizes, and confidence >= the threshold is confident (SLAVC's rules)."""
    confidence = np.array([0.6, 0.6, 0.6, 0.6 - 1e-9])
    sounding = np.array([True, True, False, True])
    cious = np.array([0.5, 0.5 - 1e-9, np.nan, 0.5])
    assert N.outcomes(confidence, sounding, cious, 0.6).tolist() == ["TP", "FP", "FP", "FN"]
    assert N.worst_first(confidence, sounding, cious, N.ORDERINGS[2], threshold=0.6).tolist() == [1, 2]
    assert N.outcomes(confidence, sounding, [0.45, 0.4, np.nan, 0.45], 0.6, ciou_threshold=0.45).tolist()[:2] == \
        ["TP", "FP"]
