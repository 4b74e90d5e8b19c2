"""Evaluation metrics with scikit-learn: ranking, thresholded and calibration metrics, pooled and per cell line.

The decision threshold for precision, recall and F1 is 0.5 on the predicted probability by default: it is
the threshold a calibrated model would use, so recall inflation from upward probability drift (the log's
v1 story) shows up as high recall with low precision instead of being tuned away per variant.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

DEFAULT_THRESHOLD = 0.5
METRIC_KEYS = ("aupr", "auroc", "precision", "recall", "f1", "threshold", "mean_prob", "base_rate", "ece",
               "n", "n_pos")


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-width probability bins: sum_b (n_b / n) * |mean prob_b - positive rate_b|."""
    labels, probs = np.asarray(labels, float), np.asarray(probs, float)
    if labels.size == 0:
        return math.nan
    bins = np.minimum((probs * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    prob_sums = np.bincount(bins, weights=probs, minlength=n_bins)
    label_sums = np.bincount(bins, weights=labels, minlength=n_bins)
    filled = counts > 0
    gap = np.abs(prob_sums[filled] - label_sums[filled]) / counts[filled]
    return float((gap * counts[filled]).sum() / labels.size)


def binary_metrics(labels: Sequence[int], probs: Sequence[float],
                   threshold: float = DEFAULT_THRESHOLD) -> dict[str, float]:
    """All keys of ``METRIC_KEYS`` for one group. Ranking metrics are NaN when only one class is present."""
    labels = np.asarray(labels).astype(int)
    probs = np.asarray(probs, dtype=float)
    if labels.shape != probs.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and probabilities {probs.shape} must be 1-D and equally long")
    if probs.size and (np.nanmin(probs) < 0 or np.nanmax(probs) > 1 or np.isnan(probs).any()):
        raise ValueError("probabilities must lie in [0, 1] and contain no NaN")
    both_classes = labels.size > 0 and 0 < labels.sum() < labels.size
    predicted = (probs >= threshold).astype(int)
    return {
        "aupr": float(average_precision_score(labels, probs)) if both_classes else math.nan,
        "auroc": float(roc_auc_score(labels, probs)) if both_classes else math.nan,
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "threshold": float(threshold),
        "mean_prob": float(probs.mean()) if probs.size else math.nan,
        "base_rate": float(labels.mean()) if labels.size else math.nan,
        "ece": expected_calibration_error(labels, probs),
        "n": int(labels.size),
        "n_pos": int(labels.sum()),
    }


def evaluate(labels: Sequence[int], probs: Sequence[float], cell_lines: Optional[Sequence[str]] = None,
             threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Metrics pooled over all pairs and per cell line.

    Returns
    -------
    dict
        ``{"pooled": {...}, "per_cell_line": {cell_line: {...}}}`` with the keys of ``METRIC_KEYS``.
        For a held-out cell line split the test set is that cell line, so its entry is the "unseen" score.
    """
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=float)
    out = {"pooled": binary_metrics(labels, probs, threshold), "per_cell_line": {}}
    if cell_lines is not None:
        cell_lines = np.asarray(cell_lines).astype(str)
        for name in sorted(set(cell_lines)):
            chosen = cell_lines == name
            out["per_cell_line"][name] = binary_metrics(labels[chosen], probs[chosen], threshold)
    return out
