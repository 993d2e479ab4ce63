"""Segmentation and clustering scores used by tests and benchmarks (numpy / scipy only)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def foreground_iou(pred_fg: np.ndarray, true_fg: np.ndarray) -> float:
    pred_fg, true_fg = pred_fg.astype(bool), true_fg.astype(bool)
    union = np.logical_or(pred_fg, true_fg).sum()
    return float(np.logical_and(pred_fg, true_fg).sum() / union) if union else 1.0


def _overlap_iou(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """IoU matrix between instances (rows: true 1..n, columns: pred 1..m)."""
    p = pred.ravel().astype(np.int64)
    t = true.ravel().astype(np.int64)
    n_t, n_p = int(t.max()) + 1, int(p.max()) + 1
    inter = np.bincount(t * n_p + p, minlength=n_t * n_p).reshape(n_t, n_p).astype(np.float64)
    area_t = inter.sum(1, keepdims=True)
    area_p = inter.sum(0, keepdims=True)
    union = area_t + area_p - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou[1:, 1:]


def instance_f1(pred: np.ndarray, true: np.ndarray, threshold: float = 0.5) -> float:
    """F1 of instance detection: a pair matches when IoU > ``threshold`` (unique for >= 0.5)."""
    from skimage.segmentation import relabel_sequential

    pred = relabel_sequential(pred.astype(np.int64))[0]
    true = relabel_sequential(true.astype(np.int64))[0]
    n_p, n_t = int(pred.max()), int(true.max())
    if n_p == 0 and n_t == 0:
        return 1.0
    if n_p == 0 or n_t == 0:
        return 0.0
    iou = _overlap_iou(pred, true)
    rows, cols = linear_sum_assignment(-iou)
    tp = int((iou[rows, cols] > threshold).sum())
    return 2.0 * tp / (n_p + n_t)


def clustering_accuracy(true: np.ndarray, pred: np.ndarray) -> float:
    """Accuracy under the best one-to-one mapping of predicted to true clusters (Hungarian)."""
    true = np.asarray(true).ravel()
    pred = np.asarray(pred).ravel()
    _, t = np.unique(true, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    cont = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(cont, (p, t), 1)
    rows, cols = linear_sum_assignment(-cont)
    return float(cont[rows, cols].sum() / len(true))


def matched_class_dice(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean Dice of the true classes after a one-to-one (Hungarian) matching of predicted labels.

    Every true class counts, matched or not (unmatched: Dice 0). Pixels of a predicted
    label left unmatched count against the Dice of the true classes they cover, so
    splitting a class in two, or predicting too many labels, costs.
    """
    _, t = np.unique(np.asarray(true).ravel(), return_inverse=True)
    _, p = np.unique(np.asarray(pred).ravel(), return_inverse=True)
    cont = np.zeros((p.max() + 1, t.max() + 1), dtype=np.float64)
    np.add.at(cont, (p, t), 1)
    size_p, size_t = cont.sum(1), cont.sum(0)
    dice = 2 * cont / (size_p[:, None] + size_t[None, :])
    rows, cols = linear_sum_assignment(-dice)
    per_class = np.zeros(len(size_t))
    per_class[cols] = dice[rows, cols]
    return float(per_class.mean())
