"""Metrics: hand-worked cases, and plain-loop transcriptions of the reference formulas on random inputs."""
from __future__ import annotations

import numpy as np
import pytest

from avdemo import metrics as M

# ---- plain transcriptions of the reference code (kaistmm/SSLalignment test.py/utils.py, SLAVC) ----------


def ref_normalize_img(value):
    vmin, vmax = value.min(), value.max()
    if not (vmax - vmin) == 0:
        value = (value - vmin) / (vmax - vmin)
    return value


def ref_cal_ciou(infer, gtmap, thres):
    infer_map = np.zeros(infer.shape)
    infer_map[infer > thres] = 1
    return np.sum(infer_map * gtmap) / (np.sum(gtmap) + np.sum(infer_map * (gtmap == 0)))


def ref_ciou_and_adaptive(heatmap, gt_map):
    pred = ref_normalize_img(heatmap)
    threshold = np.sort(pred.flatten())[int(pred.shape[0] * pred.shape[1] / 2)]
    ciou = ref_cal_ciou(pred, gt_map, threshold)
    gt_nums = (gt_map != 0).sum()
    if int(gt_nums) == 0:
        gt_nums = int(pred.shape[0] * pred.shape[1]) // 2
    threshold = np.sort(pred.flatten())[int(pred.shape[0] * pred.shape[1]) - int(gt_nums)]
    return ciou, ref_cal_ciou(pred, gt_map, threshold)


def ref_bbox2gtmap(bboxes, flickr):
    gt_map = np.zeros([224, 224])
    for xmin, ymin, xmax, ymax in bboxes:
        temp = np.zeros([224, 224])
        temp[ymin:ymax, xmin:xmax] = 1
        gt_map += temp
    if flickr:
        gt_map = gt_map / 2
        gt_map[gt_map > 1] = 1
    else:
        gt_map[gt_map > 0] = 1
    return gt_map


def ref_auc(cious):
    rates = [np.sum(np.array(cious) >= 0.05 * i) / len(cious) for i in range(21)]
    thr = [0.05 * i for i in range(21)]
    return np.trapezoid(rates, thr)   # sklearn.metrics.auc for increasing x


def ref_precision_recall(has_box, cious, confidences, confidence_thr, ciou_thr=0.5):
    true_pos, false_pos, false_neg = 0, 0, 0
    for bb, c, conf in zip(has_box, cious, confidences):
        if not bb:
            if conf >= confidence_thr:
                false_pos += 1
        elif conf >= confidence_thr:
            if c >= ciou_thr:
                true_pos += 1
            else:
                false_pos += 1
        else:
            false_neg += 1
    precision = 1. if true_pos + false_pos == 0 else true_pos / (true_pos + false_pos)
    recall = 1. if true_pos + false_neg == 0 else true_pos / (true_pos + false_neg)
    return precision, recall


def ref_ap_f1(has_box, cious, confidences):
    """SLAVC's calc_ap over every distinct threshold (high to low), and the best F1."""
    precision, recall, f1 = [], [], []
    for thr in sorted(set(confidences), reverse=True):
        p, r = ref_precision_recall(has_box, cious, confidences, thr)
        precision.append(p)
        recall.append(r)
        f1.append(2 * r * p / (r + p) if r + p > 0 else 0.)
    precision_max = [np.max(precision[i:]) for i in range(len(precision))]
    ap = sum([precision_max[i] * (recall[i + 1] - recall[i]) for i in range(len(precision_max) - 1)])
    return ap, max(f1)


def random_boxes(rng, n):
    x1, y1 = rng.uniform(0, 0.7, 2 * n).reshape(2, n)
    w, h = rng.uniform(0.05, 0.5, 2 * n).reshape(2, n)
    return [[float(a), float(b), float(a + c), float(b + d)] for a, b, c, d in zip(x1, y1, w, h)]


def random_maps(rng, n, quantize=False):
    maps = rng.normal(size=(n, 224, 224)).astype(np.float32)
    return np.round(maps, 1) if quantize else maps   # quantized maps have many ties at the median


# ---- ground truth ------------------------------------------------------------------------------------

def test_gt_map_from_boxes_truncates_clips_and_unites():
    gt = M.gt_map_from_boxes([[0.3, 0.0, 0.5, 0.25], [-0.1, 0.9, 1.2, 1.0]])
    assert gt.shape == (224, 224) and set(np.unique(gt)) == {0.0, 1.0}
    assert gt[:56, 67:112].all() and not gt[:56, 66].any() and not gt[:56, 112].any()   # 0.3*224 = 67.2 -> 67
    assert gt[201:, :].all()                                                             # clipped to the frame
    assert gt.sum() == 56 * 45 + 23 * 224


def test_gt_map_consensus_halves_counts_and_clips():
    # annotator 1: top-left quarter (256 px -> 224 px); annotator 2: whole image; annotator 3: the same quarter
    gt = M.gt_map_consensus([[[0, 0, 128, 128]], [[0, 0, 256, 256]], [[0, 0, 128, 128]]])
    assert gt[:112, :112].max() == 1.0 and gt[:112, :112].min() == 1.0    # 3 boxes / 2, clipped to 1
    assert (gt[112:, :] == 0.5).all() and (gt[:, 112:] == 0.5).all()       # only the whole-image box
    assert M.gt_map_consensus([[[10, 20, 30, 40]]])[17, 8] == 0.5          # int(224 * 20 / 256) = 17


def test_gt_maps_match_reference_bbox2gtmap_on_random_boxes():
    rng = np.random.default_rng(0)
    for _ in range(20):
        boxes = random_boxes(rng, int(rng.integers(1, 4)))
        ref = ref_bbox2gtmap([(np.clip(np.array(b), 0, 1) * 224).astype(int) for b in boxes], flickr=False)
        np.testing.assert_array_equal(M.gt_map_from_boxes(boxes), ref)
        px = [[int(v * 256) for v in b] for b in boxes]
        ref = ref_bbox2gtmap([[int(224 * v / 256) for v in b] for b in px], flickr=True)
        np.testing.assert_array_equal(M.gt_map_consensus([px[:1], px[1:]]), ref)


# ---- cIoU ----------------------------------------------------------------------------------------------

def test_ciou_hand_worked_keeps_pixels_strictly_above_the_median_index():
    pred = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    gt = np.zeros((1, 4, 4))
    gt[0, 2:] = 1                         # bottom half: values 8..15
    # threshold = sorted[int(16 / 2)] = 8 (8/15 after min-max): pixels 9..15 kept -> 7 of gt's 8
    assert M.ciou(pred, gt)[0] == pytest.approx(7 / 8)
    gt2 = np.zeros((1, 4, 4))
    gt2[0, 0] = 1                         # the map's minimum only: nothing kept inside, 7 outside
    assert M.ciou(pred, gt2)[0] == pytest.approx(0 / (1 + 7))


def test_ciou_ties_at_the_median_are_dropped_like_the_reference():
    gt = np.ones((1, 4, 4))
    few_high = np.array([0] * 10 + [1] * 6, dtype=np.float32).reshape(1, 4, 4)   # sorted[8] = 0 -> 6 kept
    many_high = np.array([0] * 6 + [1] * 10, dtype=np.float32).reshape(1, 4, 4)  # sorted[8] = 1 -> none kept
    assert M.ciou(few_high, gt)[0] == pytest.approx(6 / 16)
    assert M.ciou(many_high, gt)[0] == 0.0
    assert M.ciou(np.full((1, 4, 4), 3.0), gt)[0] == 0.0                           # constant map


def test_adaptive_ciou_hand_worked_uses_the_gt_area():
    pred = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    gt = np.zeros((1, 4, 4))
    gt[0, 3] = 1                          # area 4 = the values 12..15
    # threshold = sorted[16 - 4] = 12: values 13..15 kept (3 pixels, all inside)
    assert M.adaptive_ciou(pred, gt)[0] == pytest.approx(3 / 4)
    assert M.ciou(pred, gt)[0] == pytest.approx(4 / (4 + 3))   # the median keeps 9..15
    empty = np.zeros((1, 4, 4))                                   # empty gt: area taken as 16 // 2
    assert M.adaptive_ciou(pred, empty)[0] == 0.0


@pytest.mark.parametrize("quantize", [False, True])
@pytest.mark.parametrize("flickr", [False, True])
def test_ciou_and_adaptive_match_reference_loop_on_random_maps(quantize, flickr):
    rng = np.random.default_rng(1 + quantize + 2 * flickr)
    maps = random_maps(rng, 12, quantize)
    maps[3] = 0.25                                                # a constant map
    boxes = [random_boxes(rng, int(rng.integers(1, 3))) for _ in maps]
    if flickr:
        gt = np.stack([M.gt_map_consensus([[[int(v * 256) for v in b]] for b in bs]) for bs in boxes])
    else:
        gt = np.stack([M.gt_map_from_boxes(bs) for bs in boxes])
    ref = np.array([ref_ciou_and_adaptive(m, g) for m, g in zip(maps, gt)])
    np.testing.assert_array_equal(M.ciou(maps, gt), ref[:, 0])
    np.testing.assert_array_equal(M.adaptive_ciou(maps, gt), ref[:, 1])
    old_chunk, M.CHUNK = M.CHUNK, 5                               # chunking changes nothing
    try:
        np.testing.assert_array_equal(M.ciou(maps, gt), ref[:, 0])
    finally:
        M.CHUNK = old_chunk


def test_minmax_normalize_spans_zero_to_one_per_map():
    maps = np.stack([np.arange(4.0).reshape(2, 2), np.full((2, 2), 7.0)]).astype(np.float32)
    out = M.minmax_normalize(maps)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [[0, 1 / 3], [2 / 3, 1]])
    assert (out[1] == 0).all()


# ---- pointing game, success rate, AUC -----------------------------------------------------------------

def test_pointing_game_peak_inside_or_outside_and_first_of_ties():
    gt = np.zeros((3, 4, 4))
    gt[:, :2, :2] = 1
    maps = np.zeros((3, 4, 4))
    maps[0, 1, 1] = 5          # peak inside
    maps[1, 3, 3] = 5          # peak outside
    maps[2, 0, 0] = maps[2, 3, 3] = 5   # tie: the first (row-major) wins -> inside
    assert M.pointing_game(maps, gt).tolist() == [True, False, True]


def test_pointing_game_on_a_flickr_consensus_map_counts_a_single_annotators_box():
    """Flickr ground truth is a consensus: 1 where two annotators' boxes overlap, 0.5 under one box, 0
    elsewhere. A peak on a 0.5 pixel is a hit (``gt > 0``), a peak on a 0 pixel a miss."""
    gt = M.gt_map_consensus([[[0, 0, 128, 128]], [[64, 64, 256, 256]]])        # 224-px: [0:112], [56:224]
    assert gt[100, 100] == 1.0 and gt[20, 20] == 0.5 and gt[200, 200] == 0.5 and gt[20, 200] == 0.0
    maps = np.zeros((4, 224, 224), np.float32)
    for k, (y, x) in enumerate([(100, 100), (20, 20), (200, 200), (20, 200)]):
        maps[k, y, x] = 1.0
    assert M.pointing_game(maps, np.stack([gt] * 4)).tolist() == [True, True, True, False]


def test_a_ciou_of_exactly_the_threshold_is_a_success():
    pred = np.arange(16, dtype=np.float32).reshape(1, 4, 4)     # keeps the values 9..15 (7 pixels)
    gt = np.ones((1, 4, 4))
    gt[0, 0, :2] = 0                                           # 14 pixels, holding all 7 kept ones
    cious = M.ciou(pred, gt)
    assert cious[0] == 0.5                                     # 7 / (14 + 0), exactly
    assert M.success_rate(cious) == 100.0 and M.success_rate(cious, 0.45) == 100.0
    assert M.success_rate(np.nextafter(cious, 0)) == 0.0
    # AUC: the sweep's 0.5 threshold counts it too: success 1 up to 0.5, 0 from 0.55
    assert M.ciou_auc(cious) == pytest.approx(100 * (0.5 + 0.05 / 2))


def test_success_rate_and_auc_hand_worked():
    cious = np.array([0.0, 0.5, 1.0])
    assert M.success_rate(cious) == pytest.approx(200 / 3)
    # success rate: 1 at t=0; 2/3 for 0 < t <= 0.5; 1/3 above. Trapezoid with step 0.05:
    expected = (1 + 2 / 3) / 2 * 0.05 + 9 * 0.05 * 2 / 3 + (2 / 3 + 1 / 3) / 2 * 0.05 + 9 * 0.05 / 3
    assert M.ciou_auc(cious) == pytest.approx(100 * expected)


def test_auc_matches_reference_loop_on_random_cious():
    cious = np.random.default_rng(2).uniform(0, 1, 500)
    cious[:50] = np.round(cious[:50], 2)          # values exactly on the thresholds
    assert M.ciou_auc(cious) == 100 * ref_auc(cious)
    assert M.success_rate(cious) == 100 * np.sum(cious >= 0.5) / len(cious)


# ---- retrieval -----------------------------------------------------------------------------------------

def test_retrieval_recall_hand_worked():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    # query 0 ranks gallery 0, 2, 1; query 1 ranks 1, 2, 0
    inst = M.retrieval_recall(queries, gallery, np.arange(2), np.arange(3), ks=(1, 2))
    assert inst == {"R@1": 100.0, "R@2": 100.0}
    cls = M.retrieval_recall(queries, gallery, np.array(["dog", "cat"]), np.array(["cat", "dog", "dog"]),
                             ks=(1, 2, 3))
    # query 0 (dog): top-1 is a cat, top-2 adds a dog; query 1 (cat): top-1 dog, top-2 dog, top-3 cat
    assert cls == {"R@1": 0.0, "R@2": 50.0, "R@3": 100.0}


@pytest.mark.parametrize("ties", [False, True])
def test_retrieval_recall_matches_sorting_loop_on_random_embeddings(ties):
    rng = np.random.default_rng(3)
    q, g = rng.normal(size=(40, 8)), rng.normal(size=(50, 8))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    if ties:                                     # coarse values: many equal similarities
        q, g = np.round(q), np.round(g)
    ql, gl = rng.integers(0, 8, 40), rng.integers(0, 6, 50)   # labels 6, 7: queries without any match
    out = M.retrieval_recall(q, g, ql, gl)
    for k in (1, 5, 10):
        hits = [any(gl[j] == ql[i] for j in sorted(range(50), key=lambda j: -float(q[i] @ g[j]))[:k])
                for i in range(40)]
        assert out[f"R@{k}"] == pytest.approx(100 * np.mean(hits))


# ---- confidence and false positives --------------------------------------------------------------------

def test_map_confidence_top_quarter_and_peak():
    maps = np.arange(9.0).reshape(1, 3, 3)      # ceil(9 / 4) = 3 highest: 6, 7, 8
    assert M.map_confidence(maps)[0] == pytest.approx(7.0)
    assert M.map_confidence(maps, "peak")[0] == 8.0
    rng = np.random.default_rng(4)
    maps = rng.normal(size=(5, 224, 224)).astype(np.float32)
    ref = [np.sort(m.flatten())[-m.size // 4:].mean() for m in maps]   # SLAVC's reading
    np.testing.assert_array_equal(M.map_confidence(maps), ref)
    with pytest.raises(ValueError, match="unknown confidence"):
        M.map_confidence(maps, "mean")


def test_false_positive_metrics_hand_worked():
    conf = [0.9, 0.8, 0.7, 0.6]
    sounding = [True, False, True, True]
    cious = [0.8, np.nan, 0.3, 0.9]
    # thresholds 0.9, 0.8, 0.7, 0.6 -> (P, R) = (1, 1/3), (1/2, 1/3), (1/3, 1/2), (1/2, 1)
    out = M.false_positive_metrics(conf, sounding, cious)
    np.testing.assert_allclose(out["curves"]["precision"], [1, 1 / 2, 1 / 3, 1 / 2])
    np.testing.assert_allclose(out["curves"]["recall"], [1 / 3, 1 / 3, 1 / 2, 1])
    assert out["curves"]["fpr"] == [0.0, 1.0, 1.0, 1.0]
    assert out["AP"] == pytest.approx(100 * (1 * 0 + 0.5 * (1 / 2 - 1 / 3) + 0.5 * (1 - 1 / 2)))
    assert out["max_F1"] == pytest.approx(100 * 2 / 3) and out["best_threshold"] == 0.6
    assert out["precision_sounding"] == pytest.approx(200 / 3) and out["precision_all"] == 50.0
    assert M.roc_auc(conf, sounding) == pytest.approx(100 / 3)   # only 0.9 beats the negative's 0.8


def test_a_sounding_sample_at_exactly_the_ciou_threshold_is_a_true_positive():
    conf = [0.9, 0.8, 0.7]
    sounding = [True, False, True]
    cious = [0.5, np.nan, 0.5 - 1e-9]                          # at the threshold; just below it
    out = M.false_positive_metrics(conf, sounding, cious)
    # at 0.9: 1 TP, 1 FN; at 0.8: 1 TP, 1 FP, 1 FN; at 0.7: 1 TP, 2 FP (the silent pair, the one below)
    np.testing.assert_allclose(out["curves"]["precision"], [1, 1 / 2, 1 / 3])
    np.testing.assert_allclose(out["curves"]["recall"], [1 / 2, 1 / 2, 1])
    assert out["AP"] == pytest.approx(100 * 1 / 2 * 1 / 2) and out["max_F1"] == pytest.approx(100 * 2 / 3)
    assert out["precision_sounding"] == 50.0
    assert M.false_positive_metrics(conf, sounding, [0.45, np.nan, 0.45], ciou_threshold=0.45)["precision_sounding"] \
        == 100.0


def test_false_positive_metrics_and_roc_auc_match_loops_on_random_inputs():
    rng = np.random.default_rng(5)
    n = 300
    sounding = rng.random(n) < 0.5
    cious = np.where(sounding, rng.uniform(0, 1, n), np.nan)
    conf = np.round(rng.normal(size=n) + sounding, 1)            # rounded: many tied confidences
    out = M.false_positive_metrics(conf, sounding, cious)
    ap, f1 = ref_ap_f1(sounding, cious, list(conf))
    assert out["AP"] == pytest.approx(100 * ap, abs=1e-9)
    assert out["max_F1"] == pytest.approx(100 * f1, abs=1e-9)
    pos, neg = conf[sounding], conf[~sounding]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert M.roc_auc(conf, sounding) == pytest.approx(100 * pairs / (len(pos) * len(neg)))
    assert np.isnan(M.roc_auc(conf, np.ones(n, bool)))


def test_median_binarise_selects_the_pixels_ciou_counts():
    rng = np.random.default_rng(7)
    maps = rng.random((5, 9, 11))
    gt = (rng.random((5, 9, 11)) > 0.6).astype(float)
    binary = M.median_binarise(maps)
    expected = (binary * gt).sum((1, 2)) / (gt.sum((1, 2)) + (binary & (gt == 0)).sum((1, 2)))
    np.testing.assert_allclose(M.ciou(maps, gt), expected)


def test_group_success_and_auc_equal_plain_loops():
    """IS3's iIoU / iAUC: a scene succeeds only when its worst object does."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(1, 40))
        cious = rng.choice([0.0, 0.25, 0.5, 0.5, 0.75, 1.0], size=n) if rng.random() < 0.5 else rng.random(n)
        groups = rng.integers(0, max(1, n // 2), size=n).astype(str)
        names = sorted(set(groups))

        def rate(t):
            ok = 0
            for g in names:
                if all(c >= t for c, h in zip(cious, groups) if h == g):
                    ok += 1
            return ok / len(names)

        assert M.group_success_rate(cious, groups, 0.5) == pytest.approx(100 * rate(0.5))
        rates = [rate(t) for t in [0.05 * i for i in range(21)]]
        area = sum((rates[i] + rates[i + 1]) / 2 * 0.05 for i in range(20))
        assert M.group_auc(cious, groups) == pytest.approx(100 * area)
    assert len(M.AUC_THRESHOLDS) == 21
    # a scene whose one object is exactly at the threshold succeeds; one below it fails the scene
    assert M.group_success_rate([0.5, 0.9, 0.49, 1.0], ["a", "a", "b", "b"], 0.5) == 50.0
