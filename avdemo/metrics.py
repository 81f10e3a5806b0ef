"""Benchmark metrics of sound source localization: vectorised transcriptions of the reference code.

Localization (kaistmm/SSLalignment, EZ-VSL): cIoU of the median-binarised map, its success rate and AUC,
the adaptive cIoU of the extended paper, and the pointing game. Retrieval: R@K in the alignment space.
False positives (SLAVC's extended benchmarks): AP and max-F1 over a sweep of confidence thresholds.
Maps are (N, H, W) arrays; all percentages are in 0..100.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

GT_SIZE = 224                       # the reference evaluates on 224 x 224 maps
FLICKR_ANNOTATION_SIZE = 256        # Flickr-SoundNet boxes are drawn on 256 x 256 images
AUC_THRESHOLDS = 0.05 * np.arange(21)   # 0, 0.05, ..., 1, as the reference's [0.05 * i for i in range(21)]
CHUNK = 256                         # maps processed at a time (bounds memory on large benchmarks)


def gt_map_from_boxes(boxes_norm_xyxy: list, size: int = GT_SIZE) -> np.ndarray:
    """VGG-SS ground truth: the binary union of the boxes (normalised xyxy, clipped to 0..1, times
    ``size``, cast to int, filled as [y1:y2, x1:x2]). Returns (size, size) float64."""
    gt = np.zeros((size, size))
    for box in boxes_norm_xyxy:
        x1, y1, x2, y2 = (np.clip(np.asarray(box, dtype=np.float64), 0, 1) * size).astype(int)
        gt[y1:y2, x1:x2] = 1
    return gt


def gt_map_consensus(annotator_boxes: list, size: int = GT_SIZE,
                     annotation_size: int = FLICKR_ANNOTATION_SIZE) -> np.ndarray:
    """Flickr-SoundNet consensus ground truth from per-annotator lists of xyxy boxes in
    ``annotation_size``-pixel coordinates: each box, scaled with ``int(size * v / annotation_size)``,
    adds 1 to its pixels; the sum is halved and clipped to 1 (so pixels two annotators agree on count
    fully). As in the reference, every box adds 1, also two overlapping boxes of one annotator."""
    gt = np.zeros((size, size))
    for boxes in annotator_boxes:
        for box in boxes:
            x1, y1, x2, y2 = (int(size * int(v) / annotation_size) for v in box)
            gt[y1:y2, x1:x2] += 1
    return np.minimum(gt / 2, 1)


def minmax_normalize(maps: np.ndarray) -> np.ndarray:
    """Per-map min-max scaling to 0..1 over the last two axes; constant maps become zeros.
    Float inputs keep their dtype (the reference works on float32 maps)."""
    maps = np.asarray(maps)
    maps = maps.astype(np.result_type(maps.dtype, np.float32), copy=False)
    lo = maps.min(axis=(-2, -1), keepdims=True)
    span = maps.max(axis=(-2, -1), keepdims=True) - lo
    return np.where(span > 0, (maps - lo) / np.where(span > 0, span, 1), 0).astype(maps.dtype, copy=False)


def _ciou_above_rank(pred_maps: np.ndarray, gt_maps: np.ndarray, rank_of) -> np.ndarray:
    """cIoU of each min-max normalised prediction binarised as ``pred > sorted(pred)[rank]``, where
    ``rank_of(gt (n, P)) -> (n,)`` picks the index into the ascending sort of each map's pixels."""
    out = []
    for i in range(0, len(pred_maps), CHUNK):
        pred = minmax_normalize(pred_maps[i:i + CHUNK])
        pred = pred.reshape(len(pred), -1)
        gt = np.asarray(gt_maps[i:i + CHUNK], dtype=np.float64).reshape(len(pred), -1)
        threshold = np.take_along_axis(np.sort(pred, axis=1), rank_of(gt)[:, None], axis=1)
        binary = pred > threshold
        inter = (binary * gt).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):   # empty gt and empty prediction: nan
            out.append(inter / (gt.sum(1) + (binary & (gt == 0)).sum(1)))
    return np.concatenate(out) if out else np.zeros(0)


def median_binarise(maps: np.ndarray) -> np.ndarray:
    """The pixels cIoU counts as predicted, (..., H, W) bool: above the value at index int(H*W/2) of each
    map's ascending sort (the reference's median rule; ties at it are dropped)."""
    maps = np.asarray(maps)
    flat = maps.reshape(*maps.shape[:-2], -1)
    threshold = np.sort(flat, axis=-1)[..., int(flat.shape[-1] / 2)]
    return maps > threshold[..., None, None]


def ciou(pred_maps: np.ndarray, gt_maps: np.ndarray) -> np.ndarray:
    """Per-sample cIoU (N,): min-max normalise, keep pixels above the value at index ``int(H*W/2)`` of
    the ascending sort (the reference's median: ties at it are dropped), then
    cIoU = sum(pred * gt) / (sum(gt) + sum(pred * (gt == 0)))."""
    h, w = np.shape(pred_maps)[-2:]
    return _ciou_above_rank(pred_maps, gt_maps, lambda gt: np.full(len(gt), int(h * w / 2)))


def adaptive_ciou(pred_maps: np.ndarray, gt_maps: np.ndarray) -> np.ndarray:
    """Per-sample adaptive cIoU (N,) of the extended paper: the threshold follows the ground truth's
    area k = count(gt != 0) (H*W // 2 when the map is empty) instead of the median.

    Reading, transcribed from the authors' test code: threshold = sorted(pred)[H*W - k] and pixels
    strictly above it are kept, i.e. the top k - 1 pixels when values are distinct (ties at the
    threshold dropped), the same strict rule as the median cIoU."""
    def rank_of(gt: np.ndarray) -> np.ndarray:
        area = (gt != 0).sum(1)
        return gt.shape[1] - np.where(area > 0, area, gt.shape[1] // 2)

    return _ciou_above_rank(pred_maps, gt_maps, rank_of)


def pointing_game(pred_maps: np.ndarray, gt_maps: np.ndarray) -> np.ndarray:
    """(N,) bool: the map's peak (first argmax in row-major order) lies where gt > 0."""
    pred = np.asarray(pred_maps).reshape(len(pred_maps), -1)
    gt = np.asarray(gt_maps).reshape(len(gt_maps), -1)
    peak = pred.argmax(1)
    return gt[np.arange(len(gt)), peak] > 0


def ciou_success(cious: np.ndarray, sounding: np.ndarray | None = None, ciou_threshold: float = 0.5) -> np.ndarray:
    """(N,) bool: the pair is localized, cIoU >= ``ciou_threshold`` (a NaN cIoU is a miss); with
    ``sounding`` (N,) bool, non-sounding pairs are never localized. The one definition of success."""
    good = np.nan_to_num(np.asarray(cious, dtype=np.float64), nan=-np.inf) >= ciou_threshold
    return good if sounding is None else good & np.asarray(sounding, dtype=bool)


def success_rate(cious: np.ndarray, threshold: float = 0.5) -> float:
    """Percent of samples with cIoU >= threshold (the number papers call "cIoU")."""
    return 100.0 * float(np.mean(ciou_success(cious, ciou_threshold=threshold)))


def ciou_auc(cious: np.ndarray) -> float:
    """Percent area under the success rate as the cIoU threshold sweeps 0, 0.05, ..., 1 (trapezoid rule,
    as sklearn.metrics.auc)."""
    cious = np.asarray(cious)
    rates = (cious[None, :] >= AUC_THRESHOLDS[:, None]).sum(1) / len(cious)
    return 100.0 * float(np.trapezoid(rates, AUC_THRESHOLDS))


def group_success_rate(cious: np.ndarray, groups: np.ndarray, threshold: float = 0.5) -> float:
    """IS3's instance-level success (iIoU at ``threshold``): percent of groups (the objects of one scene)
    whose every member has cIoU >= threshold."""
    _, group_of = np.unique(np.asarray(groups), return_inverse=True)
    worst = np.full(group_of.max() + 1, np.inf)
    np.minimum.at(worst, group_of, np.asarray(cious, dtype=np.float64))
    return 100.0 * float(np.mean(ciou_success(worst, ciou_threshold=threshold)))


def group_auc(cious: np.ndarray, groups: np.ndarray) -> float:
    """iAUC: percent area under the group success rate over the thresholds 0, 0.05, ..., 1 (trapezoid)."""
    rates = [group_success_rate(cious, groups, t) / 100.0 for t in AUC_THRESHOLDS]
    return 100.0 * float(np.trapezoid(rates, AUC_THRESHOLDS))


def gt_map_from_pixel_boxes(boxes_xyxy: list, size: int = GT_SIZE) -> np.ndarray:
    """IS3 / VPO / AVSBench ground truth: the binary union of ``size``-pixel xyxy boxes, cast to int and
    filled as [y1:y2, x1:x2]. Returns (size, size) float64 (all zero for an all-zero box)."""
    gt = np.zeros((size, size))
    for box in boxes_xyxy:
        x1, y1, x2, y2 = (max(0, int(v)) for v in box)
        gt[y1:y2, x1:x2] = 1
    return gt


def best_match_rank(sims: np.ndarray, match: np.ndarray) -> np.ndarray:
    """0-based rank (Q,) of each query's best-ranked matching gallery item when the gallery is sorted by
    similarity, ties ranked by gallery index; inf for a query with no match. Computed without sorting:
    the number of items more similar than it, plus equally similar ones before it."""
    sims, match = np.atleast_2d(sims), np.atleast_2d(match)
    best = np.where(match, sims, -np.inf).argmax(1)                         # first of equally similar
    s_best = sims[np.arange(len(sims)), best][:, None]
    rank = (sims > s_best).sum(1) + ((sims == s_best) & (np.arange(sims.shape[1]) < best[:, None])).sum(1)
    return np.where(match.any(1), rank, np.inf)


def retrieval_recall(query_emb: np.ndarray, gallery_emb: np.ndarray, query_labels: np.ndarray,
                     gallery_labels: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """R@K in percent: a query hits when any of its K most similar gallery items (dot product of
    L2-normalised embeddings; ties ranked by gallery index) has the query's label. Class-level with
    class labels; instance-level with ``np.arange(N)`` as the labels of both sides."""
    sims = np.asarray(query_emb) @ np.asarray(gallery_emb).T                # (Q, G)
    match = np.asarray(gallery_labels)[None, :] == np.asarray(query_labels)[:, None]
    rank = best_match_rank(sims, match)
    return {f"R@{k}": 100.0 * float(np.mean(rank < k)) for k in ks}


def map_confidence(maps: np.ndarray, kind: str = "top25") -> np.ndarray:
    """Confidence (N,) that something in the frame is sounding, from raw cosine maps: ``top25`` is the
    mean of the highest ceil(H*W/4) values (SLAVC's ``sort(map)[-n//4:].mean()``), ``peak`` the max."""
    flat = np.asarray(maps).reshape(len(maps), -1)
    if kind == "peak":
        return flat.max(1)
    if kind == "top25":
        n = flat.shape[1]
        return np.sort(flat, axis=1)[:, n - (n + 3) // 4:].mean(1)
    raise ValueError(f"unknown confidence {kind!r}; use 'top25' or 'peak'")


def false_positive_metrics(confidence: np.ndarray, sounding: np.ndarray, cious: np.ndarray,
                           ciou_threshold: float = 0.5) -> dict[str, Any]:
    """SLAVC's extended-benchmark metrics over every distinct confidence value t as a threshold:
    TP = conf >= t, sounding and cIoU >= ciou_threshold; FP = conf >= t and (not sounding or cIoU below);
    FN = conf < t and sounding. Precision (1 when nothing is confident) and recall are swept from the
    highest threshold down; AP = sum_i max(P[i:]) * (R[i+1] - R[i]) as SLAVC computes it (there over a
    strided subset of thresholds; here all of them). Returns percentages, the best-F1 threshold, the
    localization precision (percent of sounding samples with cIoU >= ciou_threshold, and of all samples
    counted as TP when every sample is confident), and the curves, fpr being the share of
    non-sounding samples that are confident."""
    conf = np.asarray(confidence, dtype=np.float64)
    sounding = np.asarray(sounding, dtype=bool)
    good = ciou_success(cious, sounding, ciou_threshold)
    thresholds = np.unique(conf)[::-1]                                       # high -> low

    def confident(mask):   # how many of ``mask`` have conf >= each threshold
        return mask.sum() - np.searchsorted(np.sort(conf[mask]), thresholds, side="left")

    tp, n_conf = confident(good), confident(np.ones_like(sounding))
    fp, fn = n_conf - tp, sounding.sum() - confident(sounding)
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 1.0)
    fpr = confident(~sounding) / max(int((~sounding).sum()), 1)
    best_precision = np.maximum.accumulate(precision[::-1])[::-1]
    ap = float(np.sum(best_precision[:-1] * np.diff(recall)))
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    best = int(np.argmax(f1))
    return {
        "AP": 100.0 * ap,
        "max_F1": 100.0 * float(f1[best]),
        "best_threshold": float(thresholds[best]),
        "precision_sounding": 100.0 * float(good[sounding].mean()) if sounding.any() else float("nan"),
        "precision_all": 100.0 * float(good.mean()),
        "curves": {"thresholds": thresholds.tolist(), "precision": precision.tolist(),
                   "recall": recall.tolist(), "fpr": fpr.tolist()},
    }


def roc_auc(confidence: np.ndarray, sounding: np.ndarray) -> float:
    """Percent probability that a sounding sample is more confident than a non-sounding one (ties count
    half): the Mann-Whitney U statistic over n_pos * n_neg, from average ranks. nan without both."""
    sounding = np.asarray(sounding, dtype=bool)
    n_pos, n_neg = int(sounding.sum()), int((~sounding).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(confidence, dtype=np.float64))
    u = ranks[sounding].sum() - n_pos * (n_pos + 1) / 2
    return 100.0 * float(u / (n_pos * n_neg))
